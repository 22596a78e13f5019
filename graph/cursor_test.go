package graph

import (
	"encoding/base64"
	"errors"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/db"
)

// urlSafe is the alphabet of unpadded base64url: a cursor goes into GET
// query strings unescaped.
var urlSafe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// wantBadInput fails unless err is a client error with BAD_USER_INPUT
// whose message contains want.
func wantBadInput(t *testing.T, err error, want string) {
	t.Helper()
	var appErr *Error
	if !errors.As(err, &appErr) {
		t.Fatalf("error = %v, want a BAD_USER_INPUT client error", err)
	}
	if appErr.Code != CodeBadUserInput {
		t.Errorf("code = %s, want %s", appErr.Code, CodeBadUserInput)
	}
	if !strings.Contains(appErr.Message, want) {
		t.Errorf("message %q lacks %q", appErr.Message, want)
	}
}

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	id := uuid.MustParse("0b6c1a52-7a3c-4f7e-9d55-3b8f0e6a2c11")
	// PostgreSQL keeps microseconds; the zone is whatever pgx returned.
	at := time.Date(2026, 11, 24, 10, 15, 0, 123456000, time.FixedZone("CET", 3600))

	for _, title := range []string{"The Fox", "", `quo"tes \ and: colons`, "story:{}", "Ünïcödé 狐狸 🦊", strings.Repeat("long ", 60)} {
		c := storyCursor(db.Story{Title: title, ID: id, Content: "not in the cursor"})
		if !urlSafe.MatchString(c) {
			t.Errorf("story cursor %q is not unpadded base64url", c)
		}
		got, err := decodeCursor[db.StoryKey](cursorStory, &c)
		if err != nil {
			t.Fatalf("decode story cursor of %q: %v", title, err)
		}
		if got.Title != title || got.ID != id {
			t.Errorf("story cursor of %q decodes to %+v", title, *got)
		}
	}

	gc := generationCursor(db.Generation{ID: id, CreatedAt: at})
	g, err := decodeCursor[db.GenerationKey](cursorGeneration, &gc)
	wantKey(t, "generation", g, err, func(k db.GenerationKey) (time.Time, uuid.UUID) { return k.CreatedAt, k.ID }, at, id)
	lc := logCursor(db.Log{ID: id, OccurredAt: at})
	l, err := decodeCursor[db.LogKey](cursorLog, &lc)
	wantKey(t, "log", l, err, func(k db.LogKey) (time.Time, uuid.UUID) { return k.OccurredAt, k.ID }, at, id)

	if key, err := decodeCursor[db.StoryKey](cursorStory, nil); key != nil || err != nil {
		t.Errorf("no cursor = %v, %v; want the first page (nil, nil)", key, err)
	}
}

// wantKey checks a decoded time-ordered key: the same instant, whatever
// the zone, and the same id.
func wantKey[K any](t *testing.T, kind string, key *K, err error, fields func(K) (time.Time, uuid.UUID), at time.Time, id uuid.UUID) {
	t.Helper()
	if err != nil || key == nil {
		t.Fatalf("decode %s cursor: %v", kind, err)
	}
	gotAt, gotID := fields(*key)
	if !gotAt.Equal(at) || gotID != id {
		t.Errorf("%s cursor decodes to %v %v, want %v %v", kind, gotAt, gotID, at, id)
	}
}

func TestCursorRejected(t *testing.T) {
	t.Parallel()
	raw := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	id := uuid.NewString()
	valid := raw(`story:{"Title":"a","ID":"` + id + `"}`)
	tests := []struct {
		name, cursor, want string
	}{
		{"empty", "", "not a cursor of this connection"},
		{"not base64", "!!!!", "not a valid cursor"},
		{"padded", base64.URLEncoding.EncodeToString([]byte(`story:{"Title":"a"}`)), "not a valid cursor"},
		{"standard alphabet", "c3Rvcnk6e30+/w", "not a valid cursor"},
		{"spaces", "c3Rv cnk6e30", "not a valid cursor"},
		{"one character cut", valid[:len(valid)-1], "not a valid cursor"},
		{"a generation's cursor", generationCursor(db.Generation{ID: uuid.New(), CreatedAt: time.Now()}), "not a cursor of this connection"},
		{"a log's cursor", logCursor(db.Log{ID: uuid.New(), OccurredAt: time.Now()}), "not a cursor of this connection"},
		{"no kind", raw(`{"Title":"a","ID":"` + id + `"}`), "not a cursor of this connection"},
		{"a kind that starts the same", raw(`storyline:{"Title":"a"}`), "not a cursor of this connection"},
		{"kind in capitals", raw(`STORY:{"Title":"a"}`), "not a cursor of this connection"},
		{"not JSON", raw("story:title=a"), "not a valid cursor"},
		{"JSON then garbage", raw(`story:{"Title":"a","ID":"` + id + `"}; DROP TABLE stories`), "not a valid cursor"},
		{"a JSON string", raw(`story:"a"`), "not a valid cursor"},
		{"a JSON array", raw(`story:["a"]`), "not a valid cursor"},
		{"a title of the wrong type", raw(`story:{"Title":7}`), "not a valid cursor"},
		{"an id that is no UUID", raw(`story:{"Title":"a","ID":"1 OR 1=1"}`), "not a valid cursor"},
		{"SQL", "' OR 1=1 --", "not a valid cursor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key, err := decodeCursor[db.StoryKey](cursorStory, &tt.cursor)
			if key != nil {
				t.Errorf("decoded to %+v", *key)
			}
			wantBadInput(t, err, tt.want)
			if tt.cursor != "" && strings.Contains(err.Error(), tt.cursor) {
				t.Errorf("message %q echoes the cursor", err.Error())
			}
		})
	}

	// Times are checked too: a generation cursor with a time that is not
	// RFC 3339.
	bad := raw(`generation:{"CreatedAt":"yesterday","ID":"` + id + `"}`)
	_, err := decodeCursor[db.GenerationKey](cursorGeneration, &bad)
	wantBadInput(t, err, "not a valid cursor")
}

func TestPageSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		first *int
		def   int
		want  int // when ok
		ok    bool
	}{
		{"omitted", nil, defaultPageSize, defaultPageSize, true},
		{"omitted log page", nil, defaultLogPageSize, defaultLogPageSize, true},
		{"zero", pointerTo(0), defaultPageSize, 0, true},
		{"one", pointerTo(1), defaultPageSize, 1, true},
		{"the maximum", pointerTo(maxPageSize), defaultPageSize, maxPageSize, true},
		{"one over", pointerTo(maxPageSize + 1), defaultPageSize, 0, false},
		{"minus one", pointerTo(-1), defaultPageSize, 0, false},
		{"huge", pointerTo(math.MaxInt32), defaultPageSize, 0, false},
		{"most negative", pointerTo(math.MinInt), defaultPageSize, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := pageSize(tt.first, tt.def)
			if !tt.ok {
				wantBadInput(t, err, "first must be between 0 and 100")
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("pageSize = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestCheckPage(t *testing.T) {
	t.Parallel()
	logs := logCursor(db.Log{ID: uuid.New(), OccurredAt: time.Now()})
	story := storyCursor(db.Story{ID: uuid.New(), Title: "a"})
	garbage := "%%%"
	tests := []struct {
		name   string
		first  *int
		after  *string
		want   int
		errMsg string // empty: ok
	}{
		{"defaults", nil, nil, defaultLogPageSize, ""},
		{"a page after a log", pointerTo(10), &logs, 10, ""},
		{"the first page of zero", pointerTo(0), nil, 0, ""},
		{"a story's cursor", pointerTo(10), &story, 0, "not a cursor of this connection"},
		{"garbage", nil, &garbage, 0, "not a valid cursor"},
		{"size is checked first", pointerTo(101), &garbage, 0, "first must be between 0 and 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := checkPage[db.LogKey](cursorLog, tt.first, tt.after, defaultLogPageSize)
			if tt.errMsg != "" {
				wantBadInput(t, err, tt.errMsg)
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("checkPage = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

// TestConnectionPage checks how a page is cut from rows fetched with one
// extra row, and that its end cursor continues after its last node.
func TestConnectionPage(t *testing.T) {
	t.Parallel()
	rows := make([]db.Story, 4)
	for i := range rows {
		rows[i] = db.Story{ID: uuid.New(), Title: string(rune('a' + i))}
	}
	tests := []struct {
		name     string
		rows     int // fetched
		size     int
		wantNext bool
	}{
		{"empty", 0, 3, false},
		{"short page", 2, 3, false},
		{"exactly full", 3, 3, false},
		{"one more row fetched", 4, 3, true},
		{"a page of zero with rows left", 1, 0, true},
		{"a page of zero with none", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn := storyConnection(rows[:tt.rows], tt.size, pageShape{edges: true, pageInfo: true})
			kept := min(tt.rows, tt.size)
			if len(conn.Nodes) != kept || len(conn.Edges) != kept {
				t.Fatalf("%d nodes and %d edges, want %d", len(conn.Nodes), len(conn.Edges), kept)
			}
			if conn.PageInfo.HasNextPage != tt.wantNext {
				t.Errorf("hasNextPage = %v, want %v", conn.PageInfo.HasNextPage, tt.wantNext)
			}
			for i, e := range conn.Edges {
				if e.Node.ID != rows[i].ID || e.Cursor != storyCursor(rows[i]) {
					t.Errorf("edge %d = %s %q, want %s", i, e.Node.ID, e.Cursor, rows[i].ID)
				}
			}
			if kept == 0 {
				if conn.PageInfo.EndCursor != nil {
					t.Errorf("endCursor = %q on an empty page, want null", *conn.PageInfo.EndCursor)
				}
				return
			}
			if conn.PageInfo.EndCursor == nil {
				t.Fatal("endCursor is null on a page with nodes")
			}
			key, err := decodeCursor[db.StoryKey](cursorStory, conn.PageInfo.EndCursor)
			if err != nil {
				t.Fatal(err)
			}
			if last := rows[kept-1]; key.ID != last.ID || key.Title != last.Title {
				t.Errorf("endCursor is at %+v, want the last node %s", *key, last.ID)
			}
		})
	}
}

func pointerTo[T any](v T) *T { return &v }
