package voice

import (
	"context"
	"errors"
)

// ErrNotConfigured is returned by every method of Unconfigured:
// the server has no voice provider to clone, transcribe or narrate with.
var ErrNotConfigured = errors.New("no voice provider is configured on this server (set ELEVENLABS_API_KEY)")

// Unconfigured is the provider of a production server started without
// ELEVENLABS_API_KEY or VOICE_PROVIDER=local: it refuses every operation
// with ErrNotConfigured, so the rest of the API keeps serving while voice
// operations fail clearly, and never falls back to the local provider,
// which accepts any verification recording.
type Unconfigured struct{}

// Name identifies the provider in logs, metrics and metadata.
func (Unconfigured) Name() string { return "none" }

// ChunkLimit is only there to satisfy the worker: nothing is narrated.
func (Unconfigured) ChunkLimit() int { return 1000 }

// CloneVoice refuses: there is no provider.
func (Unconfigured) CloneVoice(context.Context, string, []File) (Clone, error) {
	return Clone{}, ErrNotConfigured
}

// DeleteVoice refuses: there is no provider.
func (Unconfigured) DeleteVoice(context.Context, string) error { return ErrNotConfigured }

// Transcribe refuses: there is no provider.
func (Unconfigured) Transcribe(context.Context, File) (string, error) { return "", ErrNotConfigured }

// Synthesize refuses: there is no provider. The error is not an *Error, so
// the worker does not retry it.
func (Unconfigured) Synthesize(context.Context, SynthesisRequest) (*Audio, error) {
	return nil, ErrNotConfigured
}
