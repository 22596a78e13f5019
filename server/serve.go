package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/narrate/narrate/api"
	"github.com/narrate/narrate/auth"
	"github.com/narrate/narrate/config"
	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/graph"
	"github.com/narrate/narrate/realtime"
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

	registry := prometheus.NewRegistry()
	registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	if !opts.http {
		logger.Info("worker-only mode")
		<-ctx.Done()
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
	bridge := realtime.NewBridge(hub, changedGenerations(pool), logger)
	listener := realtime.NewListener(realtime.ListenerConfig{
		ConnString:  cfg.ListenDatabaseURL(database.URL),
		OnEvent:     bridge.OnEvent,
		OnReconnect: bridge.OnReconnect,
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

	sockets := api.NewSockets(verifier, cfg.CORSOrigins, metrics, logger)
	handler := api.New(api.Options{
		DB:          pool,
		Verifier:    verifier,
		Logger:      logger,
		Resolver:    &graph.Resolver{DB: pool, Logger: logger, Hub: hub, Metrics: metrics},
		Registry:    registry,
		CORSOrigins: cfg.CORSOrigins,
		Sockets:     sockets,
		Ready: func(ctx context.Context) error {
			if err := pool.Ping(ctx); err != nil {
				return fmt.Errorf("database: %w", err)
			}
			if !listener.Connected() {
				return errors.New("notification listener is not connected")
			}
			return nil
		},
	})

	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(cfg.Port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
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
	logger.Info("stopped")
	return nil
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
	logger.Info("JWT_SECRET and JWKS_URL are not set: using the development secret", "file", cfg.DataDir+"/jwt-secret")
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

// changedGenerations reads generation state back for the realtime bridge's
// resync, as the service role.
func changedGenerations(pool *db.DB) realtime.StateReader {
	return func(ctx context.Context, ids, users []uuid.UUID, since time.Time) ([]realtime.Event, error) {
		rows, err := pool.ChangedGenerations(ctx, ids, users, since)
		if err != nil {
			return nil, err
		}
		events := make([]realtime.Event, len(rows))
		for i, g := range rows {
			events[i] = realtime.Event{
				GenerationID: g.ID, UserID: g.UserID, StoryID: g.StoryID,
				Status: g.Status.GraphQL(), Progress: g.Progress, UpdatedAt: g.UpdatedAt,
			}
		}
		return events, nil
	}
}
