package generation_test

import (
	"bytes"
	"testing"

	"github.com/narrate/narrate/generation"
)

func TestTerminal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status generation.Status
		want   bool
	}{
		{generation.Pending, false},
		{generation.InProgress, false},
		{generation.Completed, true},
		{generation.Failed, true},
	}
	for _, tt := range tests {
		if got := tt.status.Terminal(); got != tt.want {
			t.Errorf("%s.Terminal() = %v, want %v", tt.status, got, tt.want)
		}
		if got := (generation.Event{Status: tt.status}).Terminal(); got != tt.want {
			t.Errorf("Event{Status: %s}.Terminal() = %v, want %v", tt.status, got, tt.want)
		}
		if !tt.status.Valid() {
			t.Errorf("%s.Valid() = false", tt.status)
		}
	}
}

// TestGraphQL checks the one mapping between the database's spelling and the
// API's, both ways.
func TestGraphQL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status generation.Status
		name   string
	}{
		{generation.Pending, "PENDING"},
		{generation.InProgress, "IN_PROGRESS"},
		{generation.Completed, "COMPLETED"},
		{generation.Failed, "FAILED"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		tt.status.MarshalGQL(&b)
		if want := `"` + tt.name + `"`; b.String() != want {
			t.Errorf("MarshalGQL(%s) = %s, want %s", tt.status, b.String(), want)
		}
		var got generation.Status
		if err := got.UnmarshalGQL(tt.name); err != nil || got != tt.status {
			t.Errorf("UnmarshalGQL(%q) = %q, %v; want %q", tt.name, got, err, tt.status)
		}
	}
	for _, bad := range []any{"in_progress", "DONE", "", 3, nil} {
		var got generation.Status
		if err := got.UnmarshalGQL(bad); err == nil {
			t.Errorf("UnmarshalGQL(%#v) = %q, want an error", bad, got)
		}
	}
	for _, bad := range []generation.Status{"", "IN_PROGRESS", "done"} {
		if bad.Valid() {
			t.Errorf("%q.Valid() = true", bad)
		}
	}
}
