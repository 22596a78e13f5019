// Package scalar marshals the API's custom scalars: ID as a UUID, Time as
// RFC 3339 with microsecond precision, and JSON as raw JSON.
package scalar

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// CodeBadUserInput is the error code of a malformed argument.
const CodeBadUserInput = "BAD_USER_INPUT"

func badInput(format string, args ...any) error {
	err := gqlerror.Errorf(format, args...)
	err.Extensions = map[string]any{"code": CodeBadUserInput}
	return err
}

// MarshalUUID writes an ID in its canonical textual form. It is encoded
// straight into the response (Scratch), quotes included: a listing writes
// hundreds of IDs and timestamps, and the strings String and
// strconv.Quote made for each were a measurable share of its allocations.
func MarshalUUID(id uuid.UUID) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) { WriteUUID(w, id) })
}

// WriteUUID writes what MarshalUUID's marshaler writes.
func WriteUUID(w io.Writer, id uuid.UUID) {
	b := Scratch(w, 38)
	if b == nil {
		b = make([]byte, 0, 38)
	}
	b = append(b, '"')
	b = hex.AppendEncode(b, id[0:4])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[4:6])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[6:8])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[8:10])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[10:16])
	_, _ = w.Write(append(b, '"'))
}

// Scratch returns room for at least n bytes past the end of w's contents
// when w is a *bytes.Buffer, as it is when gqlgen marshals a response,
// and nil otherwise. A value appended there and written back costs no
// allocation; the same bytes in an array on the stack would, since
// w.Write through an interface makes them escape, and a response writes
// hundreds of IDs, numbers and timestamps.
func Scratch(w io.Writer, n int) []byte {
	if buf, ok := w.(*bytes.Buffer); ok {
		buf.Grow(n)
		return buf.AvailableBuffer()
	}
	return nil
}

// UnmarshalUUID reads an ID. Every ID of this API is a UUID, so anything else
// is the client's mistake and answers BAD_USER_INPUT.
func UnmarshalUUID(v any) (uuid.UUID, error) {
	s, ok := v.(string)
	if !ok {
		return uuid.Nil, badInput("an ID must be a string")
	}
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return uuid.Nil, badInput("%q is not a valid ID", s)
	}
	return id, nil
}

// timeLayout is RFC 3339 with microseconds, the precision PostgreSQL stores.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// MarshalTime writes a timestamp in UTC with microsecond precision, quoted
// (the layout has nothing JSON must escape), straight into the response.
func MarshalTime(t time.Time) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) { WriteTime(w, t) })
}

// WriteTime writes what MarshalTime's marshaler writes.
func WriteTime(w io.Writer, t time.Time) {
	b := Scratch(w, 40)
	if b == nil {
		b = make([]byte, 0, 40)
	}
	_, _ = w.Write(append(t.UTC().AppendFormat(append(b, '"'), timeLayout), '"'))
}

// FormatTime formats t the way the API shows timestamps.
func FormatTime(t time.Time) string {
	return t.UTC().Format(timeLayout)
}

// UnmarshalTime reads an RFC 3339 timestamp.
func UnmarshalTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, badInput("a Time must be an RFC 3339 string")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, badInput("%q is not an RFC 3339 timestamp", s)
	}
	return t, nil
}

// MarshalJSON writes stored JSON as it is; a nil value is null.
func MarshalJSON(raw json.RawMessage) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		if len(raw) == 0 {
			_, _ = io.WriteString(w, "null")
			return
		}
		_, _ = w.Write(raw)
	})
}

// UnmarshalJSON accepts any JSON value.
func UnmarshalJSON(v any) (json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, badInput("invalid JSON value: %v", err)
	}
	return b, nil
}
