// Package app assembles the whole server from its configuration: the
// database (or a local development cluster), the pool, the notification
// listener, the realtime hub and its bridge, the GraphQL resolver, the HTTP
// handler with its websockets, the audio storage, the voice provider, the
// worker and the metrics. It is the only place that wires these parts
// together; the server's commands and every test harness use it, so what
// runs in production is what the tests exercise.
//
// An App is built by New, started by Start and stopped by Shutdown, which
// stops the parts in one defined order (see Shutdown). Run does all three
// for a process that serves until its context ends.
package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/narrate/narrate/api"
	"github.com/narrate/narrate/auth"
	"github.com/narrate/narrate/config"
	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/graph"
	"github.com/narrate/narrate/realtime"
	"github.com/narrate/narrate/recovery"
	"github.com/narrate/narrate/storage"
	"github.com/narrate/narrate/worker"
)

// App is one assembled server process.
type App struct {
	cfg    config.Config
	set    settings
	logger *slog.Logger

	// Database is where the data lives, with the local cluster this
	// process runs, if any.
	Database *Database
	// DB is the application's connection pool.
	DB *db.DB
	// Registry holds every metric the process records and serves on
	// /metrics.
	Registry *prometheus.Registry
	// Panics counts the panics every part recovered at its goroutine
	// boundaries (narrate_panics_total).
	Panics *recovery.Metrics
	// Secret is the HS256 key tokens are verified with; nil with JWKS.
	Secret []byte
	// devToken is the development token GraphiQL gets, in local
	// development only.
	devToken string

	// The HTTP side; nil in worker-only mode.
	Listener *realtime.Listener
	Hub      *realtime.Hub
	Sockets  *api.Sockets
	Handler  http.Handler
	// URL is the base URL the server listens on, such as
	// "http://127.0.0.1:8080"; empty in worker-only mode.
	URL string

	// Worker is the narration worker; nil when the process runs none.
	Worker *worker.Worker
	Store  storage.Store
	Voice  Voice
	Signer *storage.Signer

	ln  net.Listener
	srv *http.Server

	// closers release what New built, in the reverse order; Shutdown runs
	// them after the running parts have stopped.
	closers []func()

	startOnce sync.Once
	stopOnce  sync.Once
	stopErr   error
	// served receives the HTTP server's result; running parts are joined
	// through their done channels.
	served       chan error
	listenerDone chan struct{}
	workerDone   chan struct{}
	cancelListen context.CancelFunc
	cancelWorker context.CancelFunc
}

// Voice is what the server needs of a voice provider: the worker
// synthesises with it, the voice-sample mutations clone voices and
// transcribe verification recordings.
type Voice interface {
	worker.Synthesizer
	graph.Voices
}

// Mode selects which parts a process runs.
type Mode int

// Modes.
const (
	// ModeServe runs the API and, when WORKER_CONCURRENCY > 0, the worker.
	ModeServe Mode = iota
	// ModeWorker runs the worker alone, without HTTP: it finds work by
	// polling, since there is no notification listener.
	ModeWorker
)

// New builds every part of the server from cfg without starting any of
// them; Start starts them. With no DATABASE_URL it starts the local
// development cluster, and with MIGRATE_ON_START it brings the schema up
// to date. On error, whatever was built is released.
func New(ctx context.Context, cfg config.Config, opts ...Option) (_ *App, err error) {
	set := defaults()
	for _, o := range opts {
		o(&set)
	}
	a := &App{cfg: cfg, set: set, logger: set.logger, served: make(chan error, 1)}
	defer func() {
		if err != nil {
			a.release()
		}
	}()

	if a.Database, err = OpenDatabase(ctx, cfg, a.logger, cfg.MigrateOnStart); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.Database.Close)

	dbOptions := set.dbOptions
	if dbOptions.MaxConns == 0 {
		// pgxpool's default size, plus a connection for each concurrent
		// re-read of subscription events, so that a burst of notifications
		// does not queue requests behind it.
		dbOptions.MaxConns = int32(max(4, runtime.NumCPU()) + cmp.Or(cfg.EventReaders, graph.DefaultEventReaders))
	}
	if a.DB, err = db.Open(ctx, a.Database.URL, dbOptions); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.DB.Close)

	if a.Secret, err = JWTSecret(cfg, a.logger); err != nil {
		return nil, err
	}
	if a.Database.Local() && !set.skipDevSetup {
		// The token also fills GraphiQL's Headers tab, in local
		// development only.
		if a.devToken, err = devSetup(ctx, cfg, a.DB, a.Secret, a.logger); err != nil {
			return nil, err
		}
	}
	if cfg.TrustedDocuments != "" {
		if err := trustDocuments(ctx, a.DB, cfg.TrustedDocuments, a.logger); err != nil {
			return nil, err
		}
	}
	// The quotas are enforced by the database, for every server sharing
	// it and for Supabase's REST API alike; this server's configuration
	// sets them.
	if err := a.DB.SetGenerationLimits(ctx, cfg.Limits.MaxActiveGenerations, cfg.Limits.DailyCharacters); err != nil {
		return nil, fmt.Errorf("generation quotas: %w", err)
	}

	a.Registry = prometheus.NewRegistry()
	a.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if a.Panics, err = recovery.NewMetrics(a.Registry); err != nil {
		return nil, err
	}

	if a.Voice = set.voice; a.Voice == nil {
		if a.Voice, err = newProvider(cfg, a.logger); err != nil {
			return nil, err
		}
	}
	if a.Store = set.store; a.Store == nil {
		var closeStore func()
		if a.Store, closeStore, err = newStore(ctx, cfg, a.logger); err != nil {
			return nil, err
		}
		a.closers = append(a.closers, closeStore)
	}

	concurrency := cfg.WorkerConcurrency
	if set.mode == ModeWorker {
		concurrency = max(concurrency, 1)
	}
	if concurrency > 0 {
		if a.Worker, err = a.newWorker(concurrency); err != nil {
			return nil, err
		}
	}
	if set.mode == ModeWorker {
		return a, nil
	}
	if err := a.buildHTTP(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// newWorker builds the narration worker.
func (a *App) newWorker(concurrency int) (*worker.Worker, error) {
	metrics, err := worker.NewMetrics(a.Registry)
	if err != nil {
		return nil, err
	}
	return worker.New(worker.Config{
		Queue:        a.DB,
		Provider:     a.Voice,
		Store:        a.Store,
		Concurrency:  concurrency,
		Lease:        a.cfg.WorkerLease,
		PollInterval: a.cfg.WorkerPollInterval,
		Logger:       a.logger,
		Metrics:      metrics,
		Panics:       a.Panics,
	})
}

// buildHTTP builds the API side: the listener feeding the hub, the
// resolver, the sockets and the handler, and binds the HTTP port.
func (a *App) buildHTTP(ctx context.Context) error {
	verifier := a.set.verifier
	if verifier == nil {
		var err error
		verifier, err = auth.NewVerifier(ctx, auth.Config{
			Secret: a.Secret, JWKSURL: a.cfg.JWKSURL, Audience: a.cfg.JWTAudience, Logger: a.logger,
		})
		if err != nil {
			return fmt.Errorf("token verifier: %w", err)
		}
	}

	// Realtime: one dedicated listener connection per process feeds the hub
	// that subscriptions read from.
	metrics, err := realtime.NewMetrics(a.Registry)
	if err != nil {
		return err
	}
	a.Hub = realtime.NewHub(realtime.WithHubMetrics(metrics))
	bridge := realtime.NewBridge(a.Hub, a.DB.GenerationEvents, a.logger)
	onEvent, onReconnect := bridge.OnEvent, bridge.OnReconnect
	if wk := a.Worker; wk != nil {
		// A queued (or released) generation wakes the embedded worker at
		// once; after a reconnect some may have been missed, so it looks
		// too. Polling remains the fallback.
		onEvent = func(e generation.Event) {
			bridge.OnEvent(e)
			if e.Status == generation.Pending {
				wk.Wake()
			}
		}
		onReconnect = func(ctx context.Context) {
			bridge.OnReconnect(ctx)
			wk.Wake()
		}
	}
	a.Listener = realtime.NewListener(realtime.ListenerConfig{
		ConnString:  a.cfg.ListenDatabaseURL(a.Database.URL),
		OnEvent:     onEvent,
		OnReconnect: onReconnect,
		Logger:      a.logger,
		Metrics:     metrics,
		Panics:      a.Panics,
		MinBackoff:  a.set.listenBackoff,
		MaxBackoff:  4 * a.set.listenBackoff,
	})

	// The port is bound before the handler is built: with PORT=0 (tests)
	// the public URL, which signed audio links carry, is known only now.
	a.ln, err = net.Listen("tcp", net.JoinHostPort(a.set.host, strconv.Itoa(a.cfg.Port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	a.closers = append(a.closers, func() { _ = a.ln.Close() })
	a.URL = "http://" + a.ln.Addr().String()
	publicURL := a.cfg.PublicURL
	if publicURL == "" {
		publicURL = a.URL
	}

	audioKey, err := AudioSecret(a.cfg, a.Secret, a.logger)
	if err != nil {
		return err
	}
	a.Signer = storage.NewSigner(audioKey, publicURL)
	ttl := a.cfg.AudioURLTTL
	resolver := &graph.Resolver{
		DB: a.DB, Logger: a.logger, Hub: a.Hub, Metrics: metrics, Voice: a.Voice, Panics: a.Panics,
		SignAudio:    func(key string) string { return a.Signer.URL(key, ttl) },
		EventReaders: a.cfg.EventReaders,
	}
	if a.set.editResolver != nil {
		a.set.editResolver(resolver)
	}

	socketMetrics, err := api.NewSocketMetrics(a.Registry)
	if err != nil {
		return err
	}
	a.Sockets = api.NewSockets(verifier, a.cfg.CORSOrigins, socketMetrics, a.Panics, a.logger)
	a.Sockets.Limits = api.SocketLimits(a.cfg.Sockets)
	if a.set.keepAlive > 0 {
		a.Sockets.KeepAlive = a.set.keepAlive
	}
	if a.set.sockets != nil {
		a.set.sockets(a.Sockets)
	}
	a.Handler = api.New(api.Options{
		DB:          a.DB,
		Verifier:    verifier,
		Logger:      a.logger,
		Resolver:    resolver,
		Audio:       storage.Handler(a.Store, a.Signer),
		Registry:    a.Registry,
		CORSOrigins: a.cfg.CORSOrigins,
		CORSHeaders: a.cfg.CORSHeaders,
		Sockets:     a.Sockets,
		Ready:       Readiness(a.DB.Ping, a.Listener.Connected),
		DevToken:    a.devToken,
		Limits:      &a.cfg.Limits,

		PersistedLimit:   a.cfg.PersistedOperationsMax,
		TrustedDocuments: a.cfg.TrustedDocuments != "",
	})
	a.srv = &http.Server{
		Handler:  a.Handler,
		ErrorLog: slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn),
	}
	api.ConfigureServer(a.srv, a.cfg.Limits)
	return nil
}

// Start starts the parts New built: the notification listener, the
// worker and the HTTP server. It returns at once; the parts run until
// Shutdown.
func (a *App) Start() {
	a.startOnce.Do(func() {
		// The running parts get contexts of their own, not a caller's:
		// Shutdown stops each at its turn.
		if a.Listener != nil {
			ctx, cancel := context.WithCancel(context.Background())
			a.cancelListen, a.listenerDone = cancel, make(chan struct{})
			go func() {
				defer close(a.listenerDone)
				_ = a.Listener.Run(ctx)
			}()
		}
		if a.Worker != nil {
			ctx, cancel := context.WithCancel(context.Background())
			a.cancelWorker, a.workerDone = cancel, make(chan struct{})
			go func() {
				defer close(a.workerDone)
				if err := a.Worker.Run(ctx); err != nil {
					a.logger.Error("worker stopped", "err", err)
				}
			}()
		}
		if a.srv != nil {
			go func() { a.served <- a.srv.Serve(a.ln) }()
			a.logger.Info("serving", "graphql", a.URL+"/graphql", "graphiql", a.URL+"/", "public_url", a.cfg.PublicURL)
		} else {
			a.logger.Info("worker-only mode", "poll_interval", a.cfg.WorkerPollInterval)
		}
	})
}

// Run starts the App, serves until ctx ends (SIGINT, SIGTERM) or the HTTP
// server fails, and then shuts everything down in order. It returns nil
// after a clean shutdown.
func (a *App) Run(ctx context.Context) error {
	a.Start()
	var serveErr error
	select {
	case <-ctx.Done():
	case err := <-a.served:
		serveErr = fmt.Errorf("http server: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), a.set.shutdownTimeout)
	defer cancel()
	return errors.Join(serveErr, a.Shutdown(shutdownCtx))
}

// Shutdown stops the App in one defined order, each step only after the
// one before has finished, so that no part outlives what it depends on:
//
//  1. stop accepting connections;
//  2. close websockets and event streams (1001) and wait for their
//     goroutines, while in-flight requests finish (both within ctx);
//  3. stop the worker, which finishes or releases its current chunk;
//  4. stop the notification listener;
//  5. close the pool, the audio storage and the local cluster.
//
// It may be called more than once and returns the first call's result.
func (a *App) Shutdown(ctx context.Context) error {
	a.stopOnce.Do(func() { a.stopErr = a.shutdown(ctx) })
	return a.stopErr
}

func (a *App) shutdown(ctx context.Context) error {
	a.logger.Info("shutting down")
	var errs []error
	if a.srv != nil {
		// 1 and 2. http.Server.Shutdown closes the listener at once and then
		// waits for in-flight requests, event streams among them; it does
		// not know hijacked websockets, which the sockets close and wait
		// for themselves.
		httpDone := make(chan error, 1)
		go func() { httpDone <- a.srv.Shutdown(ctx) }()
		a.Sockets.Shutdown()
		if err := a.Sockets.Wait(ctx); err != nil {
			errs = append(errs, fmt.Errorf("websockets: %w", err))
		}
		if err := <-httpDone; err != nil {
			a.logger.Warn("in-flight requests did not finish in time", "err", err)
			_ = a.srv.Close()
		}
	}
	// 3. The worker.
	if a.workerDone != nil { // started
		a.cancelWorker()
		<-a.workerDone
	}
	// 4. The listener.
	if a.listenerDone != nil { // started
		a.cancelListen()
		<-a.listenerDone
	}
	// 5. Pool, storage, cluster (reverse order of creation).
	a.release()
	if len(errs) == 0 {
		a.logger.Info("stopped")
	}
	return errors.Join(errs...)
}

// release closes what New built, newest first.
func (a *App) release() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}
