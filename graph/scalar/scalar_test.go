package scalar

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
)

// TestMarshalMatchesTheTextForms: the IDs and timestamps written in place
// are the quoted canonical forms, after what a buffer already holds, and
// into a writer that is not a buffer.
func TestMarshalMatchesTheTextForms(t *testing.T) {
	t.Parallel()
	written := func(m graphql.Marshaler) []string {
		var empty, after bytes.Buffer
		var other strings.Builder
		after.WriteString(`{"a":`)
		m.MarshalGQL(&empty)
		m.MarshalGQL(&after)
		m.MarshalGQL(&other)
		rest, _ := strings.CutPrefix(after.String(), `{"a":`)
		return []string{empty.String(), rest, other.String()}
	}
	for _, id := range []uuid.UUID{uuid.Nil, uuid.Max, uuid.MustParse("d6d77053-92bc-7af6-3332-8bea8c4c6904"), uuid.New()} {
		for _, got := range written(MarshalUUID(id)) {
			if want := strconv.Quote(id.String()); got != want {
				t.Errorf("MarshalUUID(%v) = %s, want %s", id, got, want)
			}
		}
	}
	paris := time.FixedZone("CET", 3600)
	for _, ts := range []time.Time{
		{},
		time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 2, 8, 30, 1, 123456789, paris),
		time.Date(12026, 6, 1, 0, 0, 0, 0, time.UTC),
	} {
		for _, got := range written(MarshalTime(ts)) {
			if want := strconv.Quote(FormatTime(ts)); got != want {
				t.Errorf("MarshalTime(%v) = %s, want %s", ts, got, want)
			}
		}
	}
}

// TestWriteIntoABufferAllocatesNothing: written into the response's
// buffer, an ID or a timestamp costs no allocation once the buffer has
// grown.
func TestWriteIntoABufferAllocatesNothing(t *testing.T) {
	id, ts := uuid.New(), time.Now()
	var buf bytes.Buffer
	buf.Grow(1 << 10)
	if n := testing.AllocsPerRun(100, func() {
		buf.Reset()
		WriteUUID(&buf, id)
		WriteTime(&buf, ts)
	}); n != 0 {
		t.Errorf("%v allocations per ID and timestamp, want 0", n)
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
