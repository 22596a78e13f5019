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
	UserID      uuid.UUID `db:"user_id"`
	DisplayName *string   `db:"display_name"`
	AvatarURL   *string   `db:"avatar_url"`
	CreatedAt   time.Time `db:"created_at"`
	UpdatedAt   time.Time `db:"updated_at"`
}

// VoiceSample is a user's cloned voice and its verification state.
type VoiceSample struct {
	ID                 uuid.UUID `db:"id"`
	UserID             uuid.UUID `db:"user_id"`
	ElevenlabsVoiceID  string    `db:"elevenlabs_voice_id"`
	VerificationPhrase string    `db:"verification_phrase"`
	Verified           bool      `db:"verified"`
	// ProviderVerificationRequired is true while the voice provider holds
	// the cloned voice back until it is verified there.
	ProviderVerificationRequired bool      `db:"provider_verification_required"`
	CreatedAt                    time.Time `db:"created_at"`
}

// Story is a catalogue entry.
type Story struct {
	ID        uuid.UUID `db:"id"`
	Title     string    `db:"title"`
	Slug      string    `db:"slug"`
	Content   string    `db:"content"`
	Version   int       `db:"version"`
	CreatedAt time.Time `db:"created_at"`
	UpdatedAt time.Time `db:"updated_at"`
}

// Generation is one narration of a story in a user's voice.
type Generation struct {
	ID       uuid.UUID `db:"id"`
	UserID   uuid.UUID `db:"user_id"`
	StoryID  uuid.UUID `db:"story_id"`
	Status   Status    `db:"status"`
	Progress int       `db:"progress"`
	// ResultKey is the storage key of the finished audio (the result_url
	// column); clients see a signed URL made from it.
	ResultKey *string         `db:"result_url"`
	Metadata  json.RawMessage `db:"metadata"`
	CreatedAt time.Time       `db:"created_at"`
	UpdatedAt time.Time       `db:"updated_at"`
}

// Log is one event in a generation's history.
type Log struct {
	ID           uuid.UUID `db:"id"`
	GenerationID uuid.UUID `db:"generation_id"`
	Event        string    `db:"event"`
	OccurredAt   time.Time `db:"occurred_at"`
}
