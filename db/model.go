package db

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/generation"
)

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
	// ProviderVerificationRequired is true while the voice provider holds
	// the cloned voice back until it is verified there.
	ProviderVerificationRequired bool
	CreatedAt                    time.Time
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
	Status   generation.Status
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
