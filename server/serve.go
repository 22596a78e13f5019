package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/narrate/narrate/api"
	"github.com/narrate/narrate/auth"
	"github.com/narrate/narrate/config"
	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/graph"
	"github.com/narrate/narrate/realtime"
	"github.com/narrate/narrate/storage"
	"github.com/narrate/narrate/voice"
	"github.com/narrate/narrate/voice/elevenlabs"
	"github.com/narrate/narrate/voice/local"
	"github.com/narrate/narrate/worker"
)

type serveOptions struct {
	http   bool
	worker bool
}

// serve runs the API and/or the worker until ctx is cancelled (SIGINT,
// SIGTERM), then shuts down gracefully: it stops accepting, lets in-flight
// requests finish for up to shutdownGrace, and returns nil.
func serve(ctx context.Context, cfg config.Config, logger *slog.Logger, opts serveOptions) error {
	database, err := openDatabase(ctx, cfg, logger, cfg.MigrateOnStart)
	if err != nil {
		return err
	}
	defer database.Close()

	pool, err := db.Open(ctx, database.URL, db.Options{})
	if err != nil {
		return err
	}
	defer pool.Close()

	secret, err := jwtSecret(cfg, logger)
	if err != nil {
		return err
	}
	if database.Local() {
		if err := devSetup(ctx, cfg, pool, secret, logger); err != nil {
			return err
		}
	}
	if err := pool.SetGenerationLimits(ctx, cfg.Limits.MaxActiveGenerations, cfg.Limits.DailyCharacters); err != nil {
		return fmt.Errorf("generation quotas: %w", err)
	}

	registry := prometheus.NewRegistry()
	registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	provider, err := newProvider(cfg, logger)
	if err != nil {
		return err
	}
	store, closeStore, err := newStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeStore()

	// The worker stops after the HTTP server and before the listener and
	// the pool it uses (deferred earlier, so closed later).
	var wk *worker.Worker
	stopWorker := func() {}
	if opts.worker {
		concurrency := cfg.WorkerConcurrency
		if !opts.http {
			concurrency = max(concurrency, 1)
		}
		if wk, stopWorker, err = startWorker(ctx, cfg, pool, provider, store, registry, concurrency, logger); err != nil {
			return err
		}
		defer stopWorker()
	}

	if !opts.http {
		// Without the HTTP server there is no notification listener: the
		// worker finds new generations by polling.
		logger.Info("worker-only mode", "poll_interval", cfg.WorkerPollInterval)
		<-ctx.Done()
		logger.Info("shutting down")
		stopWorker()
		logger.Info("stopped")
		return nil
	}

	verifier, err := auth.NewVerifier(ctx, auth.Config{
		Secret: secret, JWKSURL: cfg.JWKSURL, Audience: cfg.JWTAudience, Logger: logger,
	})
	if err != nil {
		return fmt.Errorf("token verifier: %w", err)
	}

	// Realtime: one dedicated listener connection per process feeds the hub
	// that subscriptions read from.
	metrics, err := realtime.NewMetrics(registry)
	if err != nil {
		return err
	}
	hub := realtime.NewHub(realtime.WithHubMetrics(metrics))
	bridge := realtime.NewBridge(hub, pool.GenerationEvents, logger)
	onEvent, onReconnect := bridge.OnEvent, bridge.OnReconnect
	if wk != nil {
		// A queued (or released) generation wakes the embedded worker at
		// once; after a reconnect some may have been missed, so it looks
		// too. Polling remains the fallback.
		onEvent = func(e realtime.Event) {
			bridge.OnEvent(e)
			if e.Status == realtime.StatusPending {
				wk.Wake()
			}
		}
		onReconnect = func(ctx context.Context) {
			bridge.OnReconnect(ctx)
			wk.Wake()
		}
	}
	listener := realtime.NewListener(realtime.ListenerConfig{
		ConnString:  cfg.ListenDatabaseURL(database.URL),
		OnEvent:     onEvent,
		OnReconnect: onReconnect,
		Logger:      logger,
		Metrics:     metrics,
	})
	listenCtx, stopListener := context.WithCancel(context.WithoutCancel(ctx))
	listening := make(chan error, 1)
	go func() { listening <- listener.Run(listenCtx) }()
	defer func() {
		stopListener()
		<-listening
	}()

	// Registered again after the listener's deferred stop, so that on
	// every path the worker stops before the listener (stopWorker is
	// idempotent).
	defer stopWorker()

	audioKey, err := audioSecret(cfg, secret, logger)
	if err != nil {
		return err
	}
	signer := storage.NewSigner(audioKey, cfg.PublicURL)
	resolver := &graph.Resolver{
		DB: pool, Logger: logger, Hub: hub, Metrics: metrics, Voice: provider,
		SignAudio: func(key string) string { return signer.URL(key, cfg.AudioURLTTL) },
	}

	sockets := api.NewSockets(verifier, cfg.CORSOrigins, metrics, logger)
	handler := api.New(api.Options{
		DB:          pool,
		Verifier:    verifier,
		Logger:      logger,
		Resolver:    resolver,
		Audio:       storage.Handler(store, signer),
		Registry:    registry,
		CORSOrigins: cfg.CORSOrigins,
		Sockets:     sockets,
		Ready:       readiness(pool.Ping, listener.Connected),
		Limits:      &cfg.Limits,
	})

	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(cfg.Port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:     handler,
		ErrorLog:    slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	api.ConfigureServer(srv, cfg.Limits)
	// Shutdown does not wait for hijacked connections: close the websockets
	// (with 1001) as it starts.
	srv.RegisterOnShutdown(sockets.Shutdown)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("serving", "graphql", cfg.PublicURL+"/graphql", "graphiql", cfg.PublicURL+"/", "addr", ln.Addr().String())

	select {
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("in-flight requests did not finish in time", "err", err)
		_ = srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	stopWorker()
	logger.Info("stopped")
	return nil
}

// readiness is /readyz's check: the process serves only while the
// database answers and the notification listener is connected, since
// without the listener subscriptions would silently stop receiving changes.
func readiness(ping func(context.Context) error, listening func() bool) func(context.Context) error {
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

// jwtSecret is JWT_SECRET, or the development secret kept in DATA_DIR when
// neither JWT_SECRET nor JWKS_URL is set.
func jwtSecret(cfg config.Config, logger *slog.Logger) ([]byte, error) {
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
	logger.Info("JWT_SECRET and JWKS_URL are not set: using the development secret", "file", filepath.Join(cfg.DataDir, auth.DevSecretFile))
	return secret, nil
}

// devSetup loads the demo stories into an empty local catalogue and shows
// how to get a token.
func devSetup(ctx context.Context, cfg config.Config, pool *db.DB, secret []byte, logger *slog.Logger) error {
	added, err := pool.SeedStories(ctx, demoStories)
	if err != nil {
		return err
	}
	if added > 0 {
		logger.Info("loaded demo stories", "count", added)
	}
	if secret == nil {
		return nil
	}
	const email = "alice@example.com"
	userID, err := pool.EnsureUser(ctx, email)
	if err != nil {
		return err
	}
	token, err := auth.Mint(secret, userID, email, false, cfg.JWTAudience, 24*time.Hour)
	if err != nil {
		return err
	}
	logger.Info("development token for "+email+" (valid 24h); more with: go run ./server token --email you@example.com [--admin]",
		"authorization", "Bearer "+token)
	return nil
}

// newProvider is ElevenLabs or the local development provider, which needs
// no network, as the configuration chose (config refuses the local one
// outside development unless VOICE_PROVIDER=local asks for it).
func newProvider(cfg config.Config, logger *slog.Logger) (voice.Provider, error) {
	if cfg.VoiceProvider == config.VoiceLocal {
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
	dir := filepath.Join(cfg.DataDir, "audio")
	store, err := storage.NewLocal(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("audio storage: %w", err)
	}
	return store, func() { _ = store.Close() }, nil
}

// startWorker runs a narration worker until the returned stop function is
// called; stop waits for it to finish or release its generations and may
// be called more than once. The worker does not stop with ctx itself, so
// that the HTTP server can shut down first.
func startWorker(ctx context.Context, cfg config.Config, pool *db.DB, provider voice.Provider, store worker.Store,
	registry prometheus.Registerer, concurrency int, logger *slog.Logger) (*worker.Worker, func(), error) {
	metrics, err := worker.NewMetrics(registry)
	if err != nil {
		return nil, nil, err
	}
	wk, err := worker.New(worker.Config{
		Queue:        pool,
		Provider:     provider,
		Store:        store,
		Concurrency:  concurrency,
		Lease:        cfg.WorkerLease,
		PollInterval: cfg.WorkerPollInterval,
		Logger:       logger,
		Metrics:      metrics,
	})
	if err != nil {
		return nil, nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := wk.Run(runCtx); err != nil {
			logger.Error("worker stopped", "err", err)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	return wk, stop, nil
}

// audioSecretFile holds the random audio-link secret when there is no
// other to derive it from.
const audioSecretFile = "audio-link-secret"

// audioSecret is the HMAC key of signed audio links:
//   - AUDIO_SIGNING_SECRET when set;
//   - otherwise derived from the HS256 JWT secret (JWT_SECRET, or the
//     development secret), so that every server sharing that secret accepts
//     the others' links with no extra setting, while the JWT secret itself
//     is never used as a link key;
//   - otherwise (JWKS only) a random secret kept in DATA_DIR, which servers
//     on several hosts must then share through AUDIO_SIGNING_SECRET.
func audioSecret(cfg config.Config, jwtSecret []byte, logger *slog.Logger) ([]byte, error) {
	if cfg.AudioSigningSecret != "" {
		return []byte(cfg.AudioSigningSecret), nil
	}
	if len(jwtSecret) > 0 {
		mac := hmac.New(sha256.New, jwtSecret)
		mac.Write([]byte("narrate audio link signing key v1"))
		return mac.Sum(nil), nil
	}
	path := filepath.Join(cfg.DataDir, audioSecretFile)
	secret, err := auth.SecretFile(path)
	if err != nil {
		return nil, fmt.Errorf("audio link secret: %w", err)
	}
	logger.Info("AUDIO_SIGNING_SECRET is not set and there is no JWT_SECRET: signing audio links with a secret kept in DATA_DIR; "+
		"set AUDIO_SIGNING_SECRET when several servers serve audio", "file", path)
	return secret, nil
}
