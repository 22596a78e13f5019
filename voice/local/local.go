// Package local is a voice provider without any network, for development
// when no ElevenLabs API key is configured.
//
// Synthesize returns real, playable WAV audio so the whole narration flow
// (chunking, storage, signed links, <audio> playback) can be exercised end
// to end. If espeak-ng is installed the audio is intelligible speech;
// otherwise a small built-in synthesiser produces speech-like babble whose
// rhythm follows the text.
package local

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"unicode/utf8"

	"github.com/narrate/narrate/voice"
)

// DefaultChunkLimit is the per-call character limit when Config.ChunkLimit
// is zero. It is lower than ElevenLabs' limit so that development runs
// exercise multi-chunk narration with short stories too.
const DefaultChunkLimit = 2000

// Config configures a Provider. The zero value is ready to use.
type Config struct {
	// ChunkLimit is the most characters one Synthesize call accepts;
	// default DefaultChunkLimit.
	ChunkLimit int
	// EspeakPath is the espeak-ng binary to use. Empty means look it up on
	// PATH; "-" disables espeak-ng and always uses the built-in
	// synthesiser.
	EspeakPath string
	// Logger receives a warning when espeak-ng fails and the built-in
	// synthesiser is used instead; default slog.Default().
	Logger *slog.Logger
}

// Provider is the local development voice provider. It is safe for
// concurrent use.
type Provider struct {
	chunkLimit int
	espeak     string
	log        *slog.Logger
}

// New returns a Provider for cfg.
func New(cfg Config) *Provider {
	p := &Provider{chunkLimit: cfg.ChunkLimit, log: cfg.Logger}
	if p.chunkLimit <= 0 {
		p.chunkLimit = DefaultChunkLimit
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	switch cfg.EspeakPath {
	case "-":
	case "":
		if path, err := exec.LookPath("espeak-ng"); err == nil {
			p.espeak = path
		}
	default:
		p.espeak = cfg.EspeakPath
	}
	return p
}

// Name returns "local".
func (p *Provider) Name() string { return "local" }

// ChunkLimit returns the configured per-call character limit.
func (p *Provider) ChunkLimit() int { return p.chunkLimit }

// CloneVoice returns a new random voice id starting with "local-". Nothing
// is stored: the id only seeds the pitch of the synthesised voice.
func (p *Provider) CloneVoice(ctx context.Context, name string, samples []voice.File) (voice.Clone, error) {
	if err := ctx.Err(); err != nil {
		return voice.Clone{}, err
	}
	if len(samples) == 0 {
		return voice.Clone{}, &voice.Error{Provider: p.Name(), Kind: voice.KindBadRequest, Message: "clone voice: no samples"}
	}
	return voice.Clone{VoiceID: "local-" + randomID()}, nil
}

// DeleteVoice does nothing, since local voices have no state.
func (p *Provider) DeleteVoice(ctx context.Context, voiceID string) error {
	return ctx.Err()
}

// Transcribe does not listen: the local provider cannot recognise speech,
// so it fails with voice.ErrTranscriptionUnsupported rather than answer
// with a transcript that could only be taken for a mismatch.
func (p *Provider) Transcribe(ctx context.Context, recording voice.File) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s: %w", p.Name(), voice.ErrTranscriptionUnsupported)
}

// Synthesize returns 16-bit mono PCM WAV audio of req.Text, from espeak-ng
// when available and otherwise from the built-in synthesiser. The built-in
// output is deterministic for a given voice id and text.
func (p *Provider) Synthesize(ctx context.Context, req voice.SynthesisRequest) (*voice.Audio, error) {
	switch {
	case strings.TrimSpace(req.Text) == "":
		return nil, &voice.Error{Provider: p.Name(), Kind: voice.KindBadRequest, Message: "synthesize: empty text"}
	case utf8.RuneCountInString(req.Text) > p.chunkLimit:
		return nil, &voice.Error{Provider: p.Name(), Kind: voice.KindBadRequest,
			Message: fmt.Sprintf("synthesize: text longer than %d characters", p.chunkLimit)}
	}

	var data []byte
	if p.espeak != "" {
		wav, err := p.runEspeak(ctx, req.Text)
		switch {
		case err == nil:
			data = wav
		case ctx.Err() != nil:
			return nil, fmt.Errorf("synthesize: %w", ctx.Err())
		default:
			p.log.WarnContext(ctx, "espeak-ng failed; using the built-in synthesiser", "error", err)
		}
	}
	if data == nil {
		samples, err := babble(ctx, req.Text, pitchFor(req.VoiceID))
		if err != nil {
			return nil, fmt.Errorf("synthesize: %w", err)
		}
		data = encodeWAV(samples, sampleRate)
	}
	return &voice.Audio{
		Data:        data,
		ContentType: "audio/wav",
		Extension:   "wav",
		RequestID:   "local-" + randomID(),
	}, nil
}

// runEspeak synthesises text with espeak-ng, passing the text on stdin so
// that nothing in it can be taken for a command-line option.
func (p *Provider) runEspeak(ctx context.Context, text string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, p.espeak, "--stdout")
	cmd.Stdin = strings.NewReader(text)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("run %s: %w: %s", p.espeak, err, strings.TrimSpace(stderr.String()))
	}
	wav, err := fixWAVSizes(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("read %s output: %w", p.espeak, err)
	}
	return wav, nil
}

// randomID returns 26 random base32 characters in lower case.
func randomID() string {
	return strings.ToLower(rand.Text())
}
