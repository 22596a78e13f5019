package scalar

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestMarshalMatchesTheTextForms: the stack-encoded IDs and timestamps are
// the quoted canonical forms.
func TestMarshalMatchesTheTextForms(t *testing.T) {
	t.Parallel()
	for _, id := range []uuid.UUID{uuid.Nil, uuid.Max, uuid.MustParse("d6d77053-92bc-7af6-3332-8bea8c4c6904"), uuid.New()} {
		var b bytes.Buffer
		MarshalUUID(id).MarshalGQL(&b)
		if want := strconv.Quote(id.String()); b.String() != want {
			t.Errorf("MarshalUUID(%v) = %s, want %s", id, b.String(), want)
		}
	}
	paris := time.FixedZone("CET", 3600)
	for _, ts := range []time.Time{
		{},
		time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 2, 8, 30, 1, 123456789, paris),
		time.Date(12026, 6, 1, 0, 0, 0, 0, time.UTC),
	} {
		var b bytes.Buffer
		MarshalTime(ts).MarshalGQL(&b)
		if want := strconv.Quote(FormatTime(ts)); b.String() != want {
			t.Errorf("MarshalTime(%v) = %s, want %s", ts, b.String(), want)
		}
	}
}

func BenchmarkMarshalScalars(b *testing.B) {
	id, ts := uuid.New(), time.Now()
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		MarshalUUID(id).MarshalGQL(&buf)
		MarshalTime(ts).MarshalGQL(&buf)
	}
}
