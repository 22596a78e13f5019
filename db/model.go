package db

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Status is a generation's state. Stored as the generation_status enum
// ('pending', ...), shown in GraphQL as PENDING, ...
type Status string

// The generation states.
const (
	StatusPending    Status = "pending"
	StatusInProgress Status = "in_progress"
	StatusCompleted  Status = "completed"
	StatusFailed     Status = "failed"
)

// Terminal reports whether a generation in this state is finished.
func (s Status) Terminal() bool { return s == StatusCompleted || s == StatusFailed }

// Valid reports whether s is one of the states.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusInProgress, StatusCompleted, StatusFailed:
		return true
	}
	return false
}

// GraphQL is the enum value's name in the API.
func (s Status) GraphQL() string { return strings.ToUpper(string(s)) }

// ParseStatus reads a status in either spelling.
func ParseStatus(v string) (Status, error) {
	s := Status(strings.ToLower(v))
	if !s.Valid() {
		return "", fmt.Errorf("%q is not a valid GenerationStatus", v)
	}
	return s, nil
}

// MarshalGQL writes the API's enum value.
func (s Status) MarshalGQL(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(s.GraphQL())) }

// UnmarshalGQL reads the API's enum value.
func (s *Status) UnmarshalGQL(v any) error {
	str, ok := v.(string)
	if !ok {
		return fmt.Errorf("GenerationStatus must be a string")
	}
	parsed, err := ParseStatus(str)
	if err != nil {
		return err
	}
	*s = parsed
	return nil
}

// User is an account in auth.users.
type User struct {
	ID uuid.UUID
}

// Profile is a user's public profile.
type Profile struct {
	UserID      uuid.UUID
	DisplayName *string
	AvatarURL   *string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// VoiceSample is a user's cloned voice and its verification state.
type VoiceSample struct {
	ID                 uuid.UUID
	UserID             uuid.UUID
	ElevenlabsVoiceID  string
	VerificationPhrase string
	Verified           bool
	CreatedAt          time.Time
}

// Story is a catalogue entry.
type Story struct {
	ID        uuid.UUID
	Title     string
	Slug      string
	Content   string
	Version   int
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Generation is one narration of a story in a user's voice.
type Generation struct {
	ID       uuid.UUID
	UserID   uuid.UUID
	StoryID  uuid.UUID
	Status   Status
	Progress int
	// ResultKey is the storage key of the finished audio (the result_url
	// column); clients see a signed URL made from it.
	ResultKey *string
	Metadata  json.RawMessage
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Log is one event in a generation's history.
type Log struct {
	ID           uuid.UUID
	GenerationID uuid.UUID
	Event        string
	OccurredAt   time.Time
}
