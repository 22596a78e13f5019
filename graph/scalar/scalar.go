// Package scalar marshals the API's custom scalars: ID as a UUID, Time as
// RFC 3339 with microsecond precision, and JSON as raw JSON.
package scalar

import (
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
// into a buffer on the stack, quotes included: a listing writes hundreds
// of IDs and timestamps, and the strings String and strconv.Quote made
// for each were a measurable share of its allocations.
func MarshalUUID(id uuid.UUID) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) { WriteUUID(w, id) })
}

// WriteUUID writes what MarshalUUID's marshaler writes.
func WriteUUID(w io.Writer, id uuid.UUID) {
	var b [38]byte
	b[0], b[37] = '"', '"'
	hex.Encode(b[1:9], id[0:4])
	b[9] = '-'
	hex.Encode(b[10:14], id[4:6])
	b[14] = '-'
	hex.Encode(b[15:19], id[6:8])
	b[19] = '-'
	hex.Encode(b[20:24], id[8:10])
	b[24] = '-'
	hex.Encode(b[25:37], id[10:16])
	_, _ = w.Write(b[:])
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
// (the layout has nothing JSON must escape), from a buffer on the stack.
func MarshalTime(t time.Time) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) { WriteTime(w, t) })
}

// WriteTime writes what MarshalTime's marshaler writes.
func WriteTime(w io.Writer, t time.Time) {
	var b [40]byte
	_, _ = w.Write(append(t.UTC().AppendFormat(append(b[:0], '"'), timeLayout), '"'))
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
