package graph

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/graph/model"
	"github.com/narrate/narrate/voice"
)

// maxVoiceName is the longest display name accepted for a cloned voice.
const maxVoiceName = 100

// cleanupTimeout bounds the provider calls made after a request's outcome
// is settled (deleting a replaced voice, or a new one the database did not
// keep). They run detached from the request's context, so that a client
// hanging up at the last moment does not leave a cloned voice behind.
const cleanupTimeout = 30 * time.Second

// errNoProvider is the internal error of a server started without a voice
// provider; the server always configures one, so it means a wiring bug.
var errNoProvider = errors.New("no voice provider configured")

// voiceViewer returns the signed-in viewer and the voice provider every
// voice-sample mutation needs.
func (r *Resolver) voiceViewer(ctx context.Context) (Viewer, Voices, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return v, nil, err
	}
	if r.Voice == nil {
		return v, nil, errNoProvider
	}
	return v, r.Voice, nil
}

// createVoiceSample validates and reads the uploaded recordings, clones the
// voice at the provider and stores it as the viewer's only voice sample,
// unverified and with a fresh verification phrase. The earlier sample's
// voice is deleted at the provider once the new one is stored.
func (r *Resolver) createVoiceSample(ctx context.Context, input model.CreateVoiceSampleInput) (*db.VoiceSample, error) {
	v, provider, err := r.voiceViewer(ctx)
	if err != nil {
		return nil, err
	}
	name := v.Email + "'s voice"
	if v.Email == "" {
		name = "Narrate voice " + v.UserID.String()
	}
	if value := input.Name.Value(); value != nil {
		if err := checkText("name", value, maxVoiceName); err != nil {
			return nil, err
		}
		name = *value
	}
	// Checking the count before reading anything keeps a request with
	// hundreds of files from being read into memory first.
	if err := voice.ValidateSampleCount(len(input.Samples)); err != nil {
		return nil, badInput(err.Error())
	}
	files := make([]voice.File, len(input.Samples))
	for i, u := range input.Samples {
		if files[i], err = readUpload(u); err != nil {
			return nil, uploadError(err)
		}
	}

	if err := r.takeToken(ctx, v, actionCreateVoiceSample); err != nil {
		return nil, err
	}
	clone, err := provider.CloneVoice(ctx, name, files)
	if err != nil {
		return nil, providerError(err, "clone voice", "the voice service could not use the recordings")
	}
	voiceID := clone.VoiceID
	if clone.RequiresVerification {
		r.logger().WarnContext(ctx, "the voice provider holds the new voice back until it is verified there",
			"user_id", v.UserID, "voice_id", voiceID)
	}
	sample, previous, err := r.DB.ReplaceVoiceSample(ctx, v.UserID, voiceID, clone.RequiresVerification, voice.Phrase())
	if err != nil {
		// The new voice belongs to no sample: delete it, or it would stay
		// at the provider (and count against the account's voice limit)
		// forever.
		r.deleteVoiceQuietly(ctx, provider, voiceID, "discard voice of a sample that was not stored")
		if errors.Is(err, db.ErrConflict) {
			return nil, &Error{Code: CodeConflict, Message: "another voice sample was created at the same time; try again", Err: err}
		}
		return nil, fmt.Errorf("store voice sample: %w", err)
	}
	// The replaced sample is gone from the database whatever happens now,
	// so a provider failure only leaves a stray voice, which is logged
	// rather than turned into a failure of a request that succeeded.
	if previous != nil && previous.ElevenlabsVoiceID != voiceID {
		r.deleteVoiceQuietly(ctx, provider, previous.ElevenlabsVoiceID, "delete replaced voice")
	}
	return &sample, nil
}

// verifyVoiceSample checks a recording of the viewer's verification phrase
// and marks the sample verified when the transcript matches. A sample that
// is already verified is returned as it is, without asking the provider.
func (r *Resolver) verifyVoiceSample(ctx context.Context, recording graphql.Upload) (*db.VoiceSample, error) {
	v, provider, err := r.voiceViewer(ctx)
	if err != nil {
		return nil, err
	}
	sample, err := r.DB.VoiceSample(ctx, v.Session)
	if err != nil {
		return nil, fromDB(err, "you have no voice sample; create one first")
	}
	file, err := readUpload(recording)
	if err != nil {
		return nil, uploadError(err)
	}
	if sample.Verified {
		return &sample, nil
	}
	if err := r.takeToken(ctx, v, actionVerifyVoiceSample); err != nil {
		return nil, err
	}

	transcript, err := provider.Transcribe(ctx, file)
	switch {
	case errors.Is(err, voice.ErrTranscriptionUnsupported):
		// Only the local development provider cannot transcribe; refusing
		// every recording would make narration impossible to try out.
		r.logger().WarnContext(ctx, "voice sample verified without checking the recording",
			"err", err, "user_id", v.UserID, "sample_id", sample.ID)
	case err != nil:
		return nil, providerError(err, "transcribe recording", "the voice service could not use the recording")
	default:
		if ok, detail := voice.MatchPhrase(sample.VerificationPhrase, transcript); !ok {
			return nil, badInput("the recording does not match the verification phrase: " + detail +
				"; record it again, reading the phrase exactly as shown")
		}
	}

	verified, err := r.DB.VerifyVoiceSample(ctx, v.UserID, sample.ID)
	if errors.Is(err, db.ErrNotFound) {
		return nil, &Error{Code: CodeConflict, Message: "your voice sample was replaced while this recording was checked; verify the new sample's phrase", Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("verify voice sample: %w", err)
	}
	return &verified, nil
}

// deleteVoiceSample deletes the viewer's voice sample and its voice at the
// provider; false when the viewer has none. The provider goes first: if it
// fails, the sample stays and the client can retry, instead of the sample
// disappearing while the cloned voice lives on at the provider.
func (r *Resolver) deleteVoiceSample(ctx context.Context) (bool, error) {
	v, provider, err := r.voiceViewer(ctx)
	if err != nil {
		return false, err
	}
	sample, err := r.DB.VoiceSample(ctx, v.Session)
	if errors.Is(err, db.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("load voice sample: %w", err)
	}
	if err := provider.DeleteVoice(ctx, sample.ElevenlabsVoiceID); err != nil {
		if voice.KindOf(err) == voice.KindRateLimited {
			return false, &Error{Code: CodeRateLimited, Message: "the voice service is busy; try again in a minute", Err: err}
		}
		return false, fmt.Errorf("delete voice at provider: %w", err)
	}
	if _, err := r.DB.DeleteVoiceSample(ctx, v.Session, sample.ID); err != nil {
		if errors.Is(err, db.ErrNotFound) {
			return false, &Error{Code: CodeConflict, Message: "your voice sample was replaced while it was being deleted; try again", Err: err}
		}
		return false, fmt.Errorf("delete voice sample: %w", err)
	}
	return true, nil
}

// readUpload reads one uploaded file, never more than one byte past
// voice.MaxUploadBytes, and validates it with voice.ValidateUpload. Errors
// wrapping voice.ErrInvalidUpload are the client's; others are internal.
func readUpload(u graphql.Upload) (voice.File, error) {
	f := voice.File{Name: u.Filename, ContentType: u.ContentType}
	// The declared size is checked first to refuse an oversized file
	// without reading it; the limited read below still holds when a
	// size was not declared.
	if u.Size > voice.MaxUploadBytes {
		return f, fmt.Errorf("file %q: %w", u.Filename, voice.ErrFileTooLarge)
	}
	if u.File != nil {
		data, err := io.ReadAll(io.LimitReader(u.File, voice.MaxUploadBytes+1))
		if err != nil {
			return f, fmt.Errorf("read upload %q: %w", u.Filename, err)
		}
		f.Data = data
	}
	return voice.ValidateUpload(f)
}

// uploadError turns a readUpload error into a client error when it is the
// upload's fault.
func uploadError(err error) error {
	if errors.Is(err, voice.ErrInvalidUpload) {
		return &Error{Code: CodeBadUserInput, Message: err.Error(), Err: err}
	}
	return err
}

// providerError maps a provider failure to what the client can act on: a
// rate limit asks it to retry later, a rejected request is its input's
// fault (rejected, followed by the provider's explanation); everything
// else is internal, logged by the error presenter and hidden from the
// client.
func providerError(err error, op, rejected string) error {
	var pe *voice.Error
	if errors.As(err, &pe) {
		switch pe.Kind {
		case voice.KindRateLimited:
			return &Error{Code: CodeRateLimited, Message: "the voice service is busy; try again in a minute", Err: err}
		case voice.KindBadRequest:
			msg := rejected
			if pe.Message != "" {
				msg += ": " + pe.Message
			}
			return &Error{Code: CodeBadUserInput, Message: msg, Err: err}
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// deleteVoiceQuietly deletes a voice at the provider after the request's
// outcome is settled, logging a failure instead of returning it.
func (r *Resolver) deleteVoiceQuietly(ctx context.Context, provider Voices, voiceID, why string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	// A provider's error (*voice.Error) names the provider.
	if err := provider.DeleteVoice(ctx, voiceID); err != nil {
		r.logger().ErrorContext(ctx, why+": the voice stays at the provider",
			"voice_id", voiceID, "err", err)
	}
}

// logger returns the resolver's logger, or slog's default when none is set.
func (r *Resolver) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}
