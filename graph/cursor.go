package graph

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/narrate/narrate/db"
)

// Cursors are opaque to clients: a kind prefix and the keyset position as
// JSON, base64url-encoded. The kind stops a cursor of one connection from
// being replayed against another.
const (
	cursorStory      = "story"
	cursorGeneration = "generation"
	cursorLog        = "log"
)

func encodeCursor(kind string, key any) string {
	b, err := json.Marshal(key)
	if err != nil {
		// The keys are plain structs of strings, UUIDs and times.
		panic(fmt.Sprintf("encode cursor: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(append([]byte(kind+":"), b...))
}

// decodeCursor reads a cursor of the given kind; a nil cursor gives a nil
// key (the first page).
func decodeCursor[K any](kind string, cursor *string) (*K, error) {
	if cursor == nil {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(*cursor)
	if err != nil {
		return nil, badInput("after is not a valid cursor")
	}
	body, ok := strings.CutPrefix(string(raw), kind+":")
	if !ok {
		return nil, badInput("after is not a cursor of this connection")
	}
	var key K
	if err := json.Unmarshal([]byte(body), &key); err != nil {
		return nil, badInput("after is not a valid cursor")
	}
	return &key, nil
}

func storyCursor(s db.Story) string {
	return encodeCursor(cursorStory, db.StoryKey{Title: s.Title, ID: s.ID})
}

func generationCursor(g db.Generation) string {
	return encodeCursor(cursorGeneration, db.GenerationKey{CreatedAt: g.CreatedAt, ID: g.ID})
}

func logCursor(l db.Log) string {
	return encodeCursor(cursorLog, db.LogKey{OccurredAt: l.OccurredAt, ID: l.ID})
}

// Page sizes: the schema's defaults apply when first is omitted; an
// explicit null means the default too.
const (
	maxPageSize        = 100
	defaultPageSize    = 20
	defaultLogPageSize = 50
)

func pageSize(first *int, def int) (int, error) {
	if first == nil {
		return def, nil
	}
	if *first < 0 || *first > maxPageSize {
		return 0, badInput(fmt.Sprintf("first must be between 0 and %d", maxPageSize))
	}
	return *first, nil
}

// checkPage validates the arguments of a nested connection's page: its
// size and, if any, a cursor of kind K. Nested connections load through
// loaders, which decode the cursor themselves; validating here gives the
// client the error on the field that has the bad argument.
func checkPage[K any](kind string, first *int, after *string, def int) (int, error) {
	size, err := pageSize(first, def)
	if err != nil {
		return 0, err
	}
	if _, err := decodeCursor[K](kind, after); err != nil {
		return 0, err
	}
	return size, nil
}
