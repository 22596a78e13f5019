// Package graph is the GraphQL layer: gqlgen's generated executor, the
// resolvers, the per-response dataloaders and the mapping of errors to the
// API's codes.
package graph

import (
	"context"
	"log/slog"
	"sync"

	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/realtime"
	"github.com/narrate/narrate/voice"
)

// Resolver is the root of all resolvers; it holds the process-wide
// dependencies. Per-request state (the viewer, the loaders) travels in the
// context.
type Resolver struct {
	DB     *db.DB
	Logger *slog.Logger
	// SignAudio turns a stored audio key into a signed, expiring URL; nil
	// while no audio storage is configured.
	SignAudio func(key string) string
	// Hub delivers generation changes to subscriptions; nil serves none.
	Hub *realtime.Hub
	// Metrics records subscription activity; nil records nothing.
	Metrics *realtime.Metrics
	// Voice clones voices and transcribes verification recordings for the
	// voice-sample mutations; they fail with an internal error while nil.
	Voice Voices
	// EventReaders is how many re-reads of subscription events run at
	// once, each on a pool connection; zero uses DefaultEventReaders.
	EventReaders int

	readerOnce sync.Once
	reader     *eventReader
}

// Voices is the part of a voice provider the voice-sample mutations use.
// voice/elevenlabs and voice/local implement it.
type Voices interface {
	// CloneVoice creates a voice from samples. The provider may hold the
	// voice back until it is verified there (Clone.RequiresVerification).
	CloneVoice(ctx context.Context, name string, samples []voice.File) (voice.Clone, error)
	// DeleteVoice removes a cloned voice. Deleting a voice that is already
	// gone succeeds, so it can be retried safely.
	DeleteVoice(ctx context.Context, voiceID string) error
	// Transcribe returns the words spoken in recording, or an error
	// wrapping voice.ErrTranscriptionUnsupported from a provider that
	// cannot recognise speech.
	Transcribe(ctx context.Context, recording voice.File) (text string, err error)
}
