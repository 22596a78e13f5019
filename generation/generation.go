// Package generation is the vocabulary every part of Narrate uses for a
// story generation: its status and the event announcing one of its changes.
// It depends on nothing else in Narrate, so db, realtime, graph and worker
// share one definition instead of converting between their own.
//
// A status is spelled everywhere as the database's generation_status enum
// spells it ("in_progress"): in the rows, in the change notifications and in
// Go. Only the GraphQL API shows another spelling (IN_PROGRESS), and
// MarshalGQL and UnmarshalGQL below are the one place that maps it.
package generation

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Status is a generation's state, with the values of the database's
// generation_status enum.
type Status string

// The states a generation passes through: pending until a worker claims it,
// in_progress while it is synthesised, then completed or failed.
const (
	Pending    Status = "pending"
	InProgress Status = "in_progress"
	Completed  Status = "completed"
	Failed     Status = "failed"
)

// Terminal reports whether a generation in this state is finished,
// successfully or not; no further change follows.
func (s Status) Terminal() bool { return s == Completed || s == Failed }

// Valid reports whether s is one of the states.
func (s Status) Valid() bool {
	_, ok := graphQLNames[s]
	return ok
}

// graphQLNames are the GraphQL GenerationStatus enum's values.
var graphQLNames = map[Status]string{
	Pending:    "PENDING",
	InProgress: "IN_PROGRESS",
	Completed:  "COMPLETED",
	Failed:     "FAILED",
}

// MarshalGQL writes the GraphQL enum value of s; gqlgen binds the
// GenerationStatus enum to Status (gqlgen.yml).
func (s Status) MarshalGQL(w io.Writer) {
	_, _ = io.WriteString(w, strconv.Quote(graphQLNames[s]))
}

// UnmarshalGQL reads a GraphQL enum value. gqlgen has already checked it
// against the schema, so an unknown value here means the schema and this
// package disagree.
func (s *Status) UnmarshalGQL(v any) error {
	name, ok := v.(string)
	if !ok {
		return fmt.Errorf("GenerationStatus must be a string, not %T", v)
	}
	for status, n := range graphQLNames {
		if n == name {
			*s = status
			return nil
		}
	}
	return fmt.Errorf("%q is not a valid GenerationStatus", name)
}

// Event is one change of a generation, as the database announces it.
type Event struct {
	GenerationID uuid.UUID
	UserID       uuid.UUID
	StoryID      uuid.UUID
	Status       Status
	Progress     int
	UpdatedAt    time.Time
	// ReceivedAt is when the notification arrived (zero for events read
	// back from the database); delivery latency is measured from it.
	ReceivedAt time.Time
}

// Terminal reports whether the event is the generation's last: no further
// change follows a completed or failed status.
func (e Event) Terminal() bool { return e.Status.Terminal() }
