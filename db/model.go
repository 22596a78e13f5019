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
	ID       uuid.UUID         `db:"id"`
	UserID   uuid.UUID         `db:"user_id"`
	StoryID  uuid.UUID         `db:"story_id"`
	Status   generation.Status `db:"status"`
	Progress int               `db:"progress"`
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
