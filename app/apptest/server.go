// Package apptest starts complete Narrate servers for tests, assembled by
// package app exactly as `server serve` assembles them, on a fresh
// database of their own, and gives tests what they need around them: users
// and tokens, a superuser pool for fixtures and checks, a GraphQL HTTP
// client and one GraphQL websocket client for both subprotocols.
//
// A test package wires it up once:
//
//	func TestMain(m *testing.M) { dbtest.Main(m, migrations.Up) }
//
// and each test calls New (a fresh database) or Start (another server on a
// database it already has).
package apptest

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/narrate/narrate/app"
	"github.com/narrate/narrate/config"
	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/limit"
	"github.com/narrate/narrate/voice/local"
)

// Secret signs the tokens of test servers.
var Secret = []byte("test-secret-test-secret-test-secret")

// Server is one test's running server.
type Server struct {
	t testing.TB
	// URL is the server's base URL, such as http://127.0.0.1:41234.
	URL string
	// App is the assembled server, for its parts (Hub, Sockets, Registry,
	// Listener, Signer...).
	App *app.App
	// DB is the server's database.
	DB *dbtest.DB
	// Admin is a superuser pool on the database, for fixtures and for
	// checking what really happened, bypassing row-level security.
	Admin *pgxpool.Pool
	// Statements counts the SQL statements the server ran, not counting
	// the transaction control and session settings around them.
	Statements *atomic.Int64
	// RoundTrips counts the server's exchanges with the database: a batch
	// (pipeline) or a statement sent on its own.
	RoundTrips *atomic.Int64
}

// Option changes what Start assembles.
type Option func(*startConfig)

type startConfig struct {
	cfg  config.Config
	opts []app.Option
}

// WithConfig edits the server's configuration before it is assembled.
func WithConfig(edit func(*config.Config)) Option {
	return func(c *startConfig) { edit(&c.cfg) }
}

// WithApp passes options to app.New, such as a voice provider or a
// verifier of its own.
func WithApp(opts ...app.Option) Option {
	return func(c *startConfig) { c.opts = append(c.opts, opts...) }
}

// WithWorker runs the embedded narration worker, polling often so tests
// need not wait for it.
func WithWorker() Option {
	return WithConfig(func(c *config.Config) {
		c.WorkerConcurrency = 1
		c.WorkerPollInterval = 20 * time.Millisecond
	})
}

// WithCORSOrigins restricts the browser origins allowed for HTTP and
// websockets.
func WithCORSOrigins(origins ...string) Option {
	return WithConfig(func(c *config.Config) { c.CORSOrigins = origins })
}

// New starts a server on a fresh database.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return Start(t, dbtest.New(t), opts...)
}

// Config is the configuration Start begins with for a server on d: d's
// application login, a DATA_DIR of the test's own, a free port on
// loopback, the test secret, no embedded worker.
func Config(t testing.TB, d *dbtest.DB) config.Config {
	t.Helper()
	return config.Config{
		DatabaseURL:             d.AppURL,
		DataDir:                 t.TempDir(),
		Port:                    0,
		JWTSecret:               string(Secret),
		JWTAudience:             config.DefaultAudience,
		WorkerConcurrency:       0,
		WorkerPollInterval:      config.DefaultWorkerPollInterval,
		WorkerLease:             config.DefaultWorkerLease,
		ElevenLabsMaxConcurrent: config.DefaultElevenLabsMaxConcurrent,
		AudioURLTTL:             config.DefaultAudioURLTTL,
		Limits:                  limit.Defaults(),
	}
}

// Logger is the logger of test servers: silent (and free: nothing is
// formatted), unless TEST_LOG is set, which logs everything to stderr.
func Logger() *slog.Logger {
	if os.Getenv("TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Start starts a server on database d and waits until its notification
// listener is connected. It shuts down, in order, when the test ends.
func Start(t testing.TB, d *dbtest.DB, opts ...Option) *Server {
	t.Helper()
	ctx := context.Background()
	sc := startConfig{cfg: Config(t, d)}
	logger := Logger()
	counter := &statementCounter{}
	sc.opts = []app.Option{
		app.WithLogger(logger),
		app.WithHost("127.0.0.1"),
		app.WithDBOptions(db.Options{Tracer: counter}),
		app.WithListenBackoff(50 * time.Millisecond),
		// A small chunk limit, so that stories take several chunks, and no
		// espeak: the local provider's tones are enough for tests.
		app.WithVoice(local.New(local.Config{ChunkLimit: 60, EspeakPath: "-", Logger: logger})),
	}
	for _, o := range opts {
		o(&sc)
	}
	a, err := app.New(ctx, sc.cfg, sc.opts...)
	if err != nil {
		t.Fatalf("assemble server: %v", err)
	}
	a.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), app.ShutdownTimeout)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	admin, err := pgxpool.New(ctx, d.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	if a.Listener != nil {
		waitCtx, cancel := context.WithTimeout(ctx, dbtest.WaitLimit)
		defer cancel()
		if err := a.Listener.WaitConnected(waitCtx); err != nil {
			t.Fatalf("notification listener: %v", err)
		}
	}
	return &Server{t: t, URL: a.URL, App: a, DB: d, Admin: admin, Statements: &counter.n, RoundTrips: &counter.trips}
}

// On returns the server reporting to t, for use inside t's own goroutine:
// a subtest must not fail its parent with Fatal.
func (s *Server) On(t testing.TB) *Server {
	c := *s
	c.t = t
	return &c
}

// statementCounter counts statements, leaving out BEGIN, COMMIT,
// ROLLBACK and the session settings, which every transaction has, and
// round trips.
type statementCounter struct{ n, trips atomic.Int64 }

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.trips.Add(1)
	c.count(d.SQL)
	return ctx
}
func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *statementCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.trips.Add(1)
	return ctx
}
func (c *statementCounter) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	c.count(d.SQL)
}
func (c *statementCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (c *statementCounter) count(sql string) {
	s := strings.ToUpper(strings.TrimSpace(sql))
	if strings.HasPrefix(s, "BEGIN") || s == "COMMIT" || s == "ROLLBACK" || strings.HasPrefix(s, "SELECT SET_CONFIG('ROLE'") {
		return
	}
	c.n.Add(1)
}
