// Package realtime carries generation changes from PostgreSQL to live
// subscribers.
//
// A database trigger announces every change of a story generation with
// pg_notify on the "generation_changes" channel. A Listener holds one
// dedicated connection that LISTENs on that channel, parses each payload into
// a generation.Event and hands it on, typically to a Hub, which fans events
// out to the subscriptions watching one generation or all of one user's
// generations. Notifications sent while the Listener is disconnected are
// lost, so the Listener tells its caller after every reconnect, and the
// caller re-reads the state of what is subscribed (Hub.Generations) and
// publishes it.
package realtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/generation"
)

// ErrInvalidPayload is returned (wrapped) by ParseEvent when a notification
// payload is not a valid generation change.
var ErrInvalidPayload = errors.New("invalid generation change payload")

// wireEvent is the JSON the trigger sends.
type wireEvent struct {
	ID      uuid.UUID `json:"id"`
	UserID  uuid.UUID `json:"user_id"`
	StoryID uuid.UUID `json:"story_id"`
	// Status is the enum's own value: the trigger sends NEW.status as is.
	Status    generation.Status `json:"status"`
	Progress  int               `json:"progress"`
	UpdatedAt string            `json:"updated_at"`
}

// timestampLayouts are accepted for updated_at: RFC 3339 (what the trigger
// sends through to_json), then PostgreSQL's text output for timestamptz, so
// a trigger that concatenates the column as text still works.
var timestampLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999-07:00",
	"2006-01-02 15:04:05.999999-07",
}

// ParseEvent decodes a generation_changes notification payload. Errors wrap
// ErrInvalidPayload.
func ParseEvent(payload []byte) (generation.Event, error) {
	var w wireEvent
	if err := json.Unmarshal(payload, &w); err != nil {
		return generation.Event{}, fmt.Errorf("%w: %w", ErrInvalidPayload, err)
	}
	if w.ID == uuid.Nil {
		return generation.Event{}, fmt.Errorf("%w: missing id", ErrInvalidPayload)
	}
	if !w.Status.Valid() {
		return generation.Event{}, fmt.Errorf("%w: unknown status %q", ErrInvalidPayload, w.Status)
	}
	updatedAt, err := parseTimestamp(w.UpdatedAt)
	if err != nil {
		return generation.Event{}, fmt.Errorf("%w: updated_at: %w", ErrInvalidPayload, err)
	}
	return generation.Event{
		GenerationID: w.ID,
		UserID:       w.UserID,
		StoryID:      w.StoryID,
		Status:       w.Status,
		Progress:     w.Progress,
		UpdatedAt:    updatedAt,
	}, nil
}

func parseTimestamp(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("missing")
	}
	var firstErr error
	for _, layout := range timestampLayouts {
		t, err := time.Parse(layout, s)
		if err == nil {
			return t.UTC(), nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return time.Time{}, firstErr
}
