package realtime_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/realtime"
)

func TestParseEvent(t *testing.T) {
	t.Parallel()
	id := uuid.MustParse("6f1c1c52-3b7e-4a51-9d1a-0c9f6f1f2a01")
	user := uuid.MustParse("1b2c3d4e-5f60-4718-8a9b-0c1d2e3f4a5b")
	story := uuid.MustParse("9a8b7c6d-5e4f-4031-8201-a1b2c3d4e5f6")
	at := time.Date(2026, 11, 24, 10, 15, 0, 123456000, time.UTC)
	valid := generation.Event{GenerationID: id, UserID: user, StoryID: story, Status: generation.InProgress, Progress: 42, UpdatedAt: at}

	tests := []struct {
		name    string
		payload string
		want    generation.Event
		wantErr bool
	}{
		{
			name:    "trigger payload",
			payload: `{"id":"6f1c1c52-3b7e-4a51-9d1a-0c9f6f1f2a01","user_id":"1b2c3d4e-5f60-4718-8a9b-0c1d2e3f4a5b","story_id":"9a8b7c6d-5e4f-4031-8201-a1b2c3d4e5f6","status":"in_progress","progress":42,"updated_at":"2026-11-24T10:15:00.123456Z"}`,
			want:    valid,
		},
		{
			name:    "to_json offset form",
			payload: `{"id":"6f1c1c52-3b7e-4a51-9d1a-0c9f6f1f2a01","user_id":"1b2c3d4e-5f60-4718-8a9b-0c1d2e3f4a5b","story_id":"9a8b7c6d-5e4f-4031-8201-a1b2c3d4e5f6","status":"in_progress","progress":42,"updated_at":"2026-11-24T11:15:00.123456+01:00"}`,
			want:    valid,
		},
		{
			name:    "timestamptz text form",
			payload: `{"id":"6f1c1c52-3b7e-4a51-9d1a-0c9f6f1f2a01","user_id":"1b2c3d4e-5f60-4718-8a9b-0c1d2e3f4a5b","story_id":"9a8b7c6d-5e4f-4031-8201-a1b2c3d4e5f6","status":"in_progress","progress":42,"updated_at":"2026-11-24 10:15:00.123456+00"}`,
			want:    valid,
		},
		{name: "not json", payload: `generation changed`, wantErr: true},
		{name: "missing id", payload: `{"status":"pending","progress":0,"updated_at":"2026-11-24T10:15:00Z"}`, wantErr: true},
		{name: "malformed id", payload: `{"id":"42","status":"pending","updated_at":"2026-11-24T10:15:00Z"}`, wantErr: true},
		{name: "unknown status", payload: `{"id":"6f1c1c52-3b7e-4a51-9d1a-0c9f6f1f2a01","status":"done","updated_at":"2026-11-24T10:15:00Z"}`, wantErr: true},
		// The trigger sends the enum's own spelling; the API's is not a
		// status on this hop.
		{name: "GraphQL spelling", payload: `{"id":"6f1c1c52-3b7e-4a51-9d1a-0c9f6f1f2a01","status":"IN_PROGRESS","updated_at":"2026-11-24T10:15:00Z"}`, wantErr: true},
		{name: "missing updated_at", payload: `{"id":"6f1c1c52-3b7e-4a51-9d1a-0c9f6f1f2a01","status":"pending"}`, wantErr: true},
		{name: "malformed updated_at", payload: `{"id":"6f1c1c52-3b7e-4a51-9d1a-0c9f6f1f2a01","status":"pending","updated_at":"yesterday"}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := realtime.ParseEvent([]byte(tt.payload))
			if tt.wantErr {
				if !errors.Is(err, realtime.ErrInvalidPayload) {
					t.Fatalf("error %v, want ErrInvalidPayload", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.UpdatedAt.Equal(tt.want.UpdatedAt) {
				t.Fatalf("updated_at %v, want %v", got.UpdatedAt, tt.want.UpdatedAt)
			}
			got.UpdatedAt, tt.want.UpdatedAt = time.Time{}, time.Time{}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
