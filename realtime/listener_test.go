package realtime_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/localdb"
	"github.com/narrate/narrate/realtime"
	"github.com/narrate/narrate/recovery/recoverytest"
)

// waitTimeout only keeps a broken listener from hanging the test run; no
// test asserts how fast anything happens.
const waitTimeout = 20 * time.Second

// shared is one cluster for the listener tests that do not stop the server;
// each test gets its own database, since notifications are per database.
var shared struct {
	once    sync.Once
	cluster *localdb.Cluster
	dir     string
	err     error
	dbMu    sync.Mutex
	dbCount int
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := shared.cluster.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "stop shared cluster:", err)
			code = 1
		}
		cancel()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// startCluster starts a throwaway cluster in dir, a directory the postgres
// user can reach (t.TempDir is not: see package localdb).
func startCluster(ctx context.Context, dir string, port int) (*localdb.Cluster, error) {
	return localdb.Start(ctx, localdb.Options{
		Dir:       dir,
		Port:      port,
		Ephemeral: true,
		Temporary: true,
		Logger:    slog.New(slog.DiscardHandler),
	})
}

func clusterDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "realtime-test-")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// testDatabase creates a fresh database on the shared cluster and returns
// its superuser URL.
func testDatabase(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "realtime-test-")
		if shared.err == nil {
			shared.cluster, shared.err = startCluster(context.Background(), shared.dir, 0)
		}
	})
	if shared.err != nil {
		t.Fatalf("start PostgreSQL: %v", shared.err)
	}
	// CREATE DATABASE copies template1 and fails while another copy of it
	// is under way, so databases are created one at a time.
	shared.dbMu.Lock()
	defer shared.dbMu.Unlock()
	shared.dbCount++
	name := fmt.Sprintf("listener_%d", shared.dbCount)
	conn := dbtest.Connect(t, shared.cluster.AdminURL("postgres"))
	if _, err := conn.Exec(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return shared.cluster.AdminURL(name)
}

func newPool(t *testing.T, connString string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), connString)
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// withAppName tags the listener's session so the test can find its backend.
func withAppName(t *testing.T, connString, name string) string {
	t.Helper()
	u, err := url.Parse(connString)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// runListener runs l until the test ends and checks that Run then returns nil.
func runListener(t *testing.T, l *realtime.Listener) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
		if l.Connected() {
			t.Error("listener reports connected after Run returned")
		}
	})
	waitConnected(t, l)
}

func waitConnected(t *testing.T, l *realtime.Listener) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := l.WaitConnected(ctx); err != nil {
		t.Fatalf("listener did not connect: %v", err)
	}
	if !l.Connected() {
		t.Fatal("Connected() is false after WaitConnected returned")
	}
}

func payload(e generation.Event) string {
	return fmt.Sprintf(`{"id":%q,"user_id":%q,"story_id":%q,"status":%q,"progress":%d,"updated_at":%q}`,
		e.GenerationID, e.UserID, e.StoryID, e.Status, e.Progress, e.UpdatedAt.Format("2006-01-02T15:04:05.000000Z07:00"))
}

// execer is what *pgx.Conn and *pgxpool.Pool have in common.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func notify(t *testing.T, db execer, channel, msg string) {
	t.Helper()
	if _, err := db.Exec(context.Background(), "SELECT pg_notify($1, $2)", channel, msg); err != nil {
		t.Errorf("notify: %v", err)
	}
}

func newEvent(progress int) generation.Event {
	return generation.Event{
		GenerationID: uuid.New(),
		UserID:       uuid.New(),
		StoryID:      uuid.New(),
		Status:       generation.InProgress,
		Progress:     progress,
		UpdatedAt:    time.Date(2026, 11, 24, 10, 15, 0, 123456000, time.UTC),
	}
}

func receive(t *testing.T, events <-chan generation.Event, want generation.Event) {
	t.Helper()
	select {
	case got := <-events:
		if got.ReceivedAt.IsZero() {
			t.Errorf("received %+v without ReceivedAt", got)
		}
		got.ReceivedAt = time.Time{}
		if got != want {
			t.Fatalf("received %+v, want %+v", got, want)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("event %+v not received", want)
	}
}

func TestListenerDeliversEvents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		channel string // configured; empty means the default
		notify  string // the channel notified
	}{
		{"default channel", "", realtime.DefaultChannel},
		{"channel needing quotes", `Generation "Changes"`, `Generation "Changes"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dbURL := testDatabase(t)
			events := make(chan generation.Event, 16)
			l := realtime.NewListener(realtime.ListenerConfig{
				ConnString: dbURL,
				Channel:    tt.channel,
				OnEvent:    func(e generation.Event) { events <- e },
				Logger:     slog.New(slog.DiscardHandler),
			})
			runListener(t, l)
			conn := dbtest.Connect(t, dbURL)

			notify(t, conn, "some_other_channel", payload(newEvent(1)))
			notify(t, conn, tt.notify, `{"not":"an event"}`)
			want := newEvent(42)
			notify(t, conn, tt.notify, payload(want))
			// The invalid payload and the other channel are skipped, so the
			// valid event is the first one delivered.
			receive(t, events, want)

			// Notifications sent in one transaction arrive in order.
			batch := []generation.Event{newEvent(1), newEvent(2), newEvent(3)}
			tx, err := conn.Begin(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range batch {
				notify(t, tx.Conn(), tt.notify, payload(e))
			}
			if err := tx.Commit(t.Context()); err != nil {
				t.Fatal(err)
			}
			for _, e := range batch {
				receive(t, events, e)
			}
		})
	}
}

func TestListenerReconnectsAfterTermination(t *testing.T) {
	t.Parallel()
	dbURL := testDatabase(t)
	appName := "realtime-listener-" + uuid.NewString()[:8]
	pool := newPool(t, dbURL)
	reg := prometheus.NewRegistry()
	metrics, err := realtime.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}

	events := make(chan generation.Event, 16)
	reconnects := make(chan generation.Event, 4)
	l := realtime.NewListener(realtime.ListenerConfig{
		ConnString: withAppName(t, dbURL, appName),
		OnEvent:    func(e generation.Event) { events <- e },
		OnReconnect: func(ctx context.Context) {
			// A notification sent from here must arrive: LISTEN has to be
			// in place before the caller resyncs, or changes made during
			// the resync would be lost.
			marker := newEvent(99)
			notify(t, pool, realtime.DefaultChannel, payload(marker))
			reconnects <- marker
		},
		Logger:     slog.New(slog.DiscardHandler),
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 100 * time.Millisecond,
		Metrics:    metrics,
	})
	runListener(t, l)

	first := newEvent(1)
	notify(t, pool, realtime.DefaultChannel, payload(first))
	receive(t, events, first)
	select {
	case <-reconnects:
		t.Fatal("OnReconnect called for the first connection")
	default:
	}

	for round := 1; round <= 2; round++ {
		terminateListener(t, pool, appName)

		var marker generation.Event
		select {
		case marker = <-reconnects:
		case <-time.After(waitTimeout):
			t.Fatalf("round %d: OnReconnect not called", round)
		}
		receive(t, events, marker)
		waitConnected(t, l)

		later := newEvent(round * 10)
		notify(t, pool, realtime.DefaultChannel, payload(later))
		receive(t, events, later)
	}
	if got := gather(t, reg, "narrate_realtime_listener_reconnects_total"); got != 2 {
		t.Fatalf("reconnects metric %v, want 2", got)
	}
	if got := gather(t, reg, "narrate_realtime_listener_connected"); got != 1 {
		t.Fatalf("connected metric %v, want 1", got)
	}
}

// terminateListener ends the backend of the listener connected as appName.
func terminateListener(t *testing.T, pool *pgxpool.Pool, appName string) {
	t.Helper()
	var terminated int
	err := pool.QueryRow(t.Context(),
		"SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
		appName).Scan(&terminated)
	if err != nil || terminated != 1 {
		t.Fatalf("terminate listener backend: %d terminated, %v", terminated, err)
	}
}

// TestListenerSurvivesPanickingCallbacks: a panic in OnEvent costs that
// event and one in OnReconnect that resync; the listener, and with it
// every subscription it feeds, keeps delivering.
func TestListenerSurvivesPanickingCallbacks(t *testing.T) {
	t.Parallel()
	dbURL := testDatabase(t)
	appName := "realtime-listener-" + uuid.NewString()[:8]
	pool := newPool(t, dbURL)
	panics := recoverytest.Metrics(t)
	const poisoned = 13
	events := make(chan generation.Event, 16)
	reconnected := make(chan struct{}, 1)
	l := realtime.NewListener(realtime.ListenerConfig{
		ConnString: withAppName(t, dbURL, appName),
		OnEvent: func(e generation.Event) {
			if e.Progress == poisoned {
				panic("bad event")
			}
			events <- e
		},
		OnReconnect: func(context.Context) {
			reconnected <- struct{}{}
			panic("bad resync")
		},
		Logger:     slog.New(slog.DiscardHandler),
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 100 * time.Millisecond,
		Panics:     panics,
	})
	runListener(t, l)

	notify(t, pool, realtime.DefaultChannel, payload(newEvent(poisoned)))
	after := newEvent(1)
	notify(t, pool, realtime.DefaultChannel, payload(after))
	receive(t, events, after)

	terminateListener(t, pool, appName)
	select {
	case <-reconnected:
	case <-time.After(waitTimeout):
		t.Fatal("OnReconnect not called")
	}
	later := newEvent(2)
	notify(t, pool, realtime.DefaultChannel, payload(later))
	receive(t, events, later)
	if got := panics.Count("listener"); got != 2 {
		t.Fatalf("narrate_panics_total{where=listener} = %v, want 2", got)
	}
}

// TestListenerSurvivesOutage stops the server under a connected listener,
// so that reconnection attempts fail for a while, then starts it again.
func TestListenerSurvivesOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	t.Parallel()
	dir := clusterDir(t)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	cluster, err := startCluster(t.Context(), dir, 0)
	if err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cluster.Stop(ctx); err != nil {
			t.Fatalf("stop PostgreSQL: %v", err)
		}
	}
	t.Cleanup(func() { stop() })
	dbURL := cluster.AdminURL("postgres")

	events := make(chan generation.Event, 16)
	var reconnects atomic.Int32
	attempts := &failedConnects{}
	l := realtime.NewListener(realtime.ListenerConfig{
		ConnString:  dbURL,
		OnEvent:     func(e generation.Event) { events <- e },
		OnReconnect: func(context.Context) { reconnects.Add(1) },
		Logger:      slog.New(attempts),
		MinBackoff:  10 * time.Millisecond,
		MaxBackoff:  100 * time.Millisecond,
	})
	runListener(t, l)

	port := cluster.Port()
	stop()
	dbtest.WaitFor(t, waitTimeout, func() bool { return !l.Connected() },
		"listener still reports connected with the server stopped")
	// A connection attempt must fail against the stopped server before it
	// comes back, or the test would not cover retrying.
	dbtest.WaitFor(t, waitTimeout, func() bool { return attempts.count.Load() > 0 },
		"no connection attempt failed against the stopped server")

	cluster, err = startCluster(t.Context(), dir, port)
	if err != nil {
		t.Fatalf("restart PostgreSQL: %v", err)
	}
	waitConnected(t, l)
	want := newEvent(7)
	notify(t, dbtest.Connect(t, dbURL), realtime.DefaultChannel, payload(want))
	receive(t, events, want)
	// The listener marks itself connected before it calls OnReconnect, and
	// delivers notifications only after OnReconnect returns: counting
	// after an event, not after WaitConnected, is what does not race.
	if got := reconnects.Load(); got != 1 {
		t.Fatalf("OnReconnect called %d times, want 1", got)
	}
}

// failedConnects is a log handler that counts the listener's reports of a
// failed connection attempt. The listener logs a failure that repeats only
// once, so the count tells that attempts failed, not how many.
type failedConnects struct {
	count atomic.Int32
}

func (h *failedConnects) Enabled(context.Context, slog.Level) bool { return true }

func (h *failedConnects) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if strings.HasPrefix(a.Value.String(), "connect: ") {
			h.count.Add(1)
		}
		return true
	})
	return nil
}

func (h *failedConnects) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *failedConnects) WithGroup(string) slog.Handler      { return h }

func TestListenerStopsWhileDisconnected(t *testing.T) {
	t.Parallel()
	// A port nothing listens on: every connection attempt fails.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	l := realtime.NewListener(realtime.ListenerConfig{
		ConnString: "postgres://nobody@" + addr + "/none?sslmode=disable&connect_timeout=5",
		Logger:     slog.New(slog.DiscardHandler),
		MinBackoff: 5 * time.Millisecond,
		MaxBackoff: 20 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()

	waitCtx, waitCancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer waitCancel()
	if err := l.WaitConnected(waitCtx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitConnected = %v, want a deadline error", err)
	}
	if l.Connected() {
		t.Fatal("Connected() with no server")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v after cancel, want nil", err)
	}
}

func TestListenerRunErrors(t *testing.T) {
	t.Parallel()
	t.Run("bad connection string", func(t *testing.T) {
		t.Parallel()
		l := realtime.NewListener(realtime.ListenerConfig{ConnString: "postgres://%zz", Logger: slog.New(slog.DiscardHandler)})
		if err := l.Run(t.Context()); err == nil {
			t.Fatal("Run accepted an unparsable connection string")
		}
	})
	t.Run("already running", func(t *testing.T) {
		t.Parallel()
		dbURL := testDatabase(t)
		l := realtime.NewListener(realtime.ListenerConfig{ConnString: dbURL, Logger: slog.New(slog.DiscardHandler)})
		runListener(t, l)
		if err := l.Run(t.Context()); !errors.Is(err, realtime.ErrListenerRunning) {
			t.Fatalf("second Run = %v, want ErrListenerRunning", err)
		}
	})
}
