// Package voice holds what Narrate's voice providers (the services that clone
// voices, synthesise speech and transcribe recordings: voice/elevenlabs and
// voice/local) and their callers share: the request and result types, the
// provider errors, and the provider-independent pieces around them: text
// chunking, verification phrases and upload validation. Each caller declares
// the interface it needs of a provider (worker.Synthesizer, graph.Voices).
package voice

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// File is one uploaded or recorded audio file.
type File struct {
	// Name is the client's file name, used only for display and as a hint
	// to the provider.
	Name string
	// ContentType is the media type the client declared, such as
	// "audio/webm;codecs=opus".
	ContentType string
	// Data is the whole file.
	Data []byte
}

// ErrTranscriptionUnsupported is returned (wrapped) by the Transcribe
// method of a provider that cannot recognise speech, such as the local
// development provider. The caller decides what a recording it cannot check
// is worth.
var ErrTranscriptionUnsupported = errors.New("the voice provider cannot transcribe recordings")

// Clone is a voice created by a provider's CloneVoice.
type Clone struct {
	// VoiceID is the voice's provider id.
	VoiceID string
	// RequiresVerification is true when the provider holds the voice back
	// until its owner verifies it at the provider: it exists (and must be
	// deleted like any other) but cannot narrate yet.
	RequiresVerification bool
}

// SynthesisRequest is one chunk of text to narrate.
type SynthesisRequest struct {
	// VoiceID is the provider id of a voice made by CloneVoice.
	VoiceID string
	// Text is the chunk to narrate.
	Text string
	// PreviousRequestIDs are the Audio.RequestID values of the chunks
	// narrated before this one, oldest first. Providers that support it use
	// the most recent ones, as many as they accept, to keep the intonation
	// continuous across chunks.
	PreviousRequestIDs []string
}

// Audio is the result of synthesising one SynthesisRequest.
type Audio struct {
	// Data is the encoded audio.
	Data []byte
	// ContentType is the media type of Data, e.g. "audio/mpeg".
	ContentType string
	// Extension is the file extension matching ContentType, without a dot:
	// "mp3" or "wav".
	Extension string
	// RequestID identifies this synthesis at the provider; pass it in
	// SynthesisRequest.PreviousRequestIDs for the next chunk.
	RequestID string
}

// ErrorKind classifies provider failures into the cases callers handle
// differently.
type ErrorKind int

// The kinds of provider failure.
const (
	// KindOther is a failure that fits no other kind.
	KindOther ErrorKind = iota
	// KindRateLimited means the provider asked us to slow down (HTTP 429).
	KindRateLimited
	// KindServer is a provider-side failure (HTTP 5xx).
	KindServer
	// KindNetwork is a transport failure or timeout before a response arrived.
	KindNetwork
	// KindVoiceNotFound means the voice id is unknown to the provider.
	KindVoiceNotFound
	// KindQuota means the account has run out of credits.
	KindQuota
	// KindUnauthorized means the API key was rejected.
	KindUnauthorized
	// KindBadRequest means the provider rejected the request itself; sending
	// it again will not help.
	KindBadRequest
)

var kindNames = [...]string{
	KindOther:         "other",
	KindRateLimited:   "rate limited",
	KindServer:        "server error",
	KindNetwork:       "network error",
	KindVoiceNotFound: "voice not found",
	KindQuota:         "quota exceeded",
	KindUnauthorized:  "unauthorized",
	KindBadRequest:    "bad request",
}

// String returns a short human-readable name of the kind.
func (k ErrorKind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("ErrorKind(%d)", int(k))
}

// Error is a provider failure callers branch on.
type Error struct {
	// Provider names the provider that failed, e.g. "elevenlabs".
	Provider string
	// Kind classifies the failure.
	Kind ErrorKind
	// Status is the HTTP status, or 0 when no response arrived.
	Status int
	// Code is the provider's machine-readable error code, if any, such as
	// "too_many_concurrent_requests".
	Code string
	// Message is the provider's human-readable explanation, if any.
	Message string
	// RetryAfter is how long the provider asked us to wait before retrying,
	// or 0 when it did not say.
	RetryAfter time.Duration
	// Err is the underlying error, such as a transport error.
	Err error
}

// Error describes the failure without any request payload or credentials.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Provider != "" {
		b.WriteString(e.Provider)
		b.WriteString(": ")
	}
	b.WriteString(e.Kind.String())
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d", e.Status)
		if e.Code != "" {
			b.WriteString(" ")
			b.WriteString(e.Code)
		}
		b.WriteString(")")
	} else if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether sending the same request again later may
// succeed: rate limits, server errors and network failures.
func (e *Error) Retryable() bool {
	switch e.Kind {
	case KindRateLimited, KindServer, KindNetwork:
		return true
	default:
		return false
	}
}

// IsRetryable reports whether err contains a retryable *Error. Context
// cancellation is never retryable, even when it surfaced as a network
// failure, because the caller has given up.
func IsRetryable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var e *Error
	return errors.As(err, &e) && e.Retryable()
}

// KindOf returns the kind of the *Error in err's chain, or KindOther when
// there is none.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindOther
}
