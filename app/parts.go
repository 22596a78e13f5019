package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/narrate/narrate/api"
	"github.com/narrate/narrate/auth"
	"github.com/narrate/narrate/config"
	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/storage"
	"github.com/narrate/narrate/voice"
	"github.com/narrate/narrate/voice/elevenlabs"
	"github.com/narrate/narrate/voice/local"
)

// Readiness is /readyz's check: the process serves only while the
// database answers and the notification listener is connected, since
// without the listener subscriptions would silently stop receiving changes.
func Readiness(ping func(context.Context) error, listening func() bool) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := ping(ctx); err != nil {
			return fmt.Errorf("database: %w", err)
		}
		if !listening() {
			return errors.New("notification listener is not connected")
		}
		return nil
	}
}

// JWTSecret is JWT_SECRET, or the development secret kept in DATA_DIR when
// neither JWT_SECRET nor JWKS_URL is set; nil with JWKS_URL alone.
func JWTSecret(cfg config.Config, logger *slog.Logger) ([]byte, error) {
	if cfg.JWTSecret != "" {
		return []byte(cfg.JWTSecret), nil
	}
	if cfg.JWKSURL != "" {
		return nil, nil
	}
	secret, err := auth.DevSecret(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("development JWT secret: %w", err)
	}
	logger.Info("JWT_SECRET and JWKS_URL are not set: using the development secret", "file", Layout{DataDir: cfg.DataDir}.JWTSecretFile())
	return secret, nil
}

// devSetup loads the demo stories into an empty local catalogue and
// returns a development token, which it also logs.
func devSetup(ctx context.Context, cfg config.Config, pool *db.DB, secret []byte, logger *slog.Logger) (string, error) {
	added, err := pool.SeedStories(ctx, DemoStories)
	if err != nil {
		return "", err
	}
	if added > 0 {
		logger.Info("loaded demo stories", "count", added)
	}
	if secret == nil {
		return "", nil
	}
	const email = "alice@example.com"
	userID, err := pool.EnsureUser(ctx, email)
	if err != nil {
		return "", err
	}
	token, err := auth.Mint(secret, userID, email, false, cfg.JWTAudience, 24*time.Hour)
	if err != nil {
		return "", err
	}
	logger.Info("development token for "+email+" (valid 24h, and already in GraphiQL's Headers tab); more with: make token EMAIL=you@example.com [ADMIN=1]",
		"authorization", "Bearer "+token)
	return token, nil
}

// trustDocuments registers the manifest's operations as trusted documents,
// the only ones the server then runs.
func trustDocuments(ctx context.Context, pool *db.DB, path string, logger *slog.Logger) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("TRUSTED_DOCUMENTS: %w", err)
	}
	defer f.Close()
	docs, err := api.ReadTrustedDocuments(f)
	if err != nil {
		return fmt.Errorf("TRUSTED_DOCUMENTS %s: %w", path, err)
	}
	if err := pool.TrustOperations(ctx, docs); err != nil {
		return err
	}
	logger.Info("trusted documents only: other operations are refused", "file", path, "operations", len(docs))
	return nil
}

// newProvider is ElevenLabs, the local development provider, which needs
// no network, or none, as the configuration chose (config gives a
// production server without ELEVENLABS_API_KEY none, unless
// VOICE_PROVIDER=local asks for the local one).
func newProvider(cfg config.Config, logger *slog.Logger) (Voice, error) {
	if cfg.VoiceProvider == config.VoiceNone {
		logger.Warn("no voice provider: cloning, verification and narration are refused (set ELEVENLABS_API_KEY, or VOICE_PROVIDER=local for the local provider)")
		return voice.Unconfigured{}, nil
	}
	// A configuration not read by config.Parse may leave the choice
	// empty: then the key decides.
	if cfg.VoiceProvider == config.VoiceLocal || cfg.VoiceProvider == "" && cfg.ElevenLabsAPIKey == "" {
		logger.Warn("using the local voice provider (development only: it does not check verification recordings)")
		return local.New(local.Config{Logger: logger}), nil
	}
	client, err := elevenlabs.New(elevenlabs.Config{
		APIKey:        cfg.ElevenLabsAPIKey,
		BaseURL:       cfg.ElevenLabsBaseURL,
		ModelID:       cfg.ElevenLabsModelID,
		MaxConcurrent: cfg.ElevenLabsMaxConcurrent,

		TranscriptionModelID: cfg.ElevenLabsSTTModelID,
	})
	if err != nil {
		return nil, fmt.Errorf("voice provider: %w", err)
	}
	logger.Info("using ElevenLabs", "base_url", cfg.ElevenLabsBaseURL, "max_concurrent", cfg.ElevenLabsMaxConcurrent)
	return client, nil
}

// s3CheckTimeout bounds the start-up check of the S3 bucket, so that an
// unreachable endpoint fails the start rather than hanging it.
const s3CheckTimeout = 30 * time.Second

// newStore is the S3-compatible bucket when STORAGE_S3_BUCKET is set, which
// every host of a deployment shares, and otherwise a directory under
// DATA_DIR. The returned function releases the store.
func newStore(ctx context.Context, cfg config.Config, logger *slog.Logger) (storage.Store, func(), error) {
	if s3cfg := cfg.StorageS3; s3cfg.Enabled() {
		checkCtx, cancel := context.WithTimeout(ctx, s3CheckTimeout)
		defer cancel()
		store, err := storage.NewS3(checkCtx, storage.S3Config{
			Endpoint:        s3cfg.Endpoint,
			Region:          s3cfg.Region,
			Bucket:          s3cfg.Bucket,
			Prefix:          s3cfg.Prefix,
			AccessKeyID:     s3cfg.AccessKeyID,
			SecretAccessKey: s3cfg.SecretAccessKey,
			PathStyle:       s3cfg.PathStyle,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("audio storage: %w", err)
		}
		logger.Info("storing audio in S3", "endpoint", s3cfg.Endpoint, "bucket", s3cfg.Bucket, "prefix", s3cfg.Prefix)
		return store, func() {}, nil
	}
	store, err := storage.NewLocal(Layout{DataDir: cfg.DataDir}.AudioDir())
	if err != nil {
		return nil, nil, fmt.Errorf("audio storage: %w", err)
	}
	return store, func() { _ = store.Close() }, nil
}

// AudioSecret is the HMAC key of signed audio links:
//   - AUDIO_SIGNING_SECRET when set;
//   - otherwise derived from the HS256 JWT secret (JWT_SECRET, or the
//     development secret), so that every server sharing that secret accepts
//     the others' links with no extra setting, while the JWT secret itself
//     is never used as a link key;
//   - otherwise (JWKS only) a random secret kept in DATA_DIR, which servers
//     on several hosts must then share through AUDIO_SIGNING_SECRET.
func AudioSecret(cfg config.Config, jwtSecret []byte, logger *slog.Logger) ([]byte, error) {
	if cfg.AudioSigningSecret != "" {
		return []byte(cfg.AudioSigningSecret), nil
	}
	if len(jwtSecret) > 0 {
		mac := hmac.New(sha256.New, jwtSecret)
		mac.Write([]byte("narrate audio link signing key v1"))
		return mac.Sum(nil), nil
	}
	path := Layout{DataDir: cfg.DataDir}.AudioSecretFile()
	secret, err := auth.SecretFile(path)
	if err != nil {
		return nil, fmt.Errorf("audio link secret: %w", err)
	}
	logger.Info("AUDIO_SIGNING_SECRET is not set and there is no JWT_SECRET: signing audio links with a secret kept in DATA_DIR; "+
		"set AUDIO_SIGNING_SECRET when several servers serve audio", "file", path)
	return secret, nil
}
