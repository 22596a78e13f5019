package realtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/narrate/narrate/backoff"
	"github.com/narrate/narrate/generation"
)

// Listener defaults, applied when the ListenerConfig field is zero.
const (
	DefaultChannel             = "generation_changes"
	DefaultMinBackoff          = 200 * time.Millisecond
	DefaultMaxBackoff          = 5 * time.Second
	DefaultHealthCheckInterval = 30 * time.Second
)

// closeTimeout bounds closing a connection, which sends a Terminate message
// to a server that may no longer answer.
const closeTimeout = 2 * time.Second

// ErrListenerRunning is returned by Run when the Listener is already running.
var ErrListenerRunning = errors.New("listener already running")

// ListenerConfig configures a Listener.
type ListenerConfig struct {
	// ConnString is the PostgreSQL connection string. The Listener opens its
	// own connection with it: LISTEN needs a dedicated session, never a pooled
	// connection or a transaction-mode pooler.
	ConnString string
	// Channel is the notification channel; DefaultChannel when empty.
	Channel string
	// OnEvent receives every parsed event, on the listener goroutine; it
	// must not block long or notifications back up.
	OnEvent func(generation.Event)
	// OnReconnect is called, on the listener goroutine, after every
	// successful connect that followed a drop (not after the first), once
	// LISTEN is in place, so the caller can re-read state it may have missed.
	// Notifications that arrive meanwhile are delivered after it returns.
	OnReconnect func(ctx context.Context)
	// Logger receives connection state changes; slog.Default when nil.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the jittered exponential delay between
	// connection attempts.
	MinBackoff, MaxBackoff time.Duration
	// HealthCheckInterval is how long the connection may stay silent before
	// it is pinged, so a peer that vanished without closing the TCP
	// connection is noticed.
	HealthCheckInterval time.Duration
	// Metrics records notifications and reconnects; optional.
	Metrics *Metrics
}

// Listener LISTENs on one channel over one dedicated connection and
// reconnects with backoff when that connection drops. Create it with
// NewListener and start it with Run.
type Listener struct {
	cfg     ListenerConfig
	logger  *slog.Logger
	running atomic.Bool

	mu        sync.Mutex
	connected bool
	// up is closed while connected and replaced by an open channel when the
	// connection drops, so WaitConnected can block on it.
	up chan struct{}
}

// NewListener returns a Listener for cfg, filling in defaults.
func NewListener(cfg ListenerConfig) *Listener {
	if cfg.Channel == "" {
		cfg.Channel = DefaultChannel
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	if cfg.HealthCheckInterval <= 0 {
		cfg.HealthCheckInterval = DefaultHealthCheckInterval
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Listener{
		cfg:    cfg,
		logger: logger.With("component", "realtime.listener", "channel", cfg.Channel),
		up:     make(chan struct{}),
	}
}

// Run connects, listens and delivers events until ctx is done, reconnecting
// whenever the connection drops. It returns nil when ctx is cancelled, and an
// error only for a connection string that cannot be parsed or when the
// Listener is already running.
func (l *Listener) Run(ctx context.Context) error {
	connConfig, err := pgx.ParseConfig(l.cfg.ConnString)
	if err != nil {
		return fmt.Errorf("listener: parse connection string: %w", err)
	}
	if !l.running.CompareAndSwap(false, true) {
		return ErrListenerRunning
	}
	defer l.running.Store(false)

	var (
		failures      int
		wasConnected  bool
		lastConnError string
	)
	for {
		up, err := l.session(ctx, connConfig, wasConnected)
		if up {
			wasConnected = true
			failures = 0
			lastConnError = ""
		}
		if ctx.Err() != nil {
			return nil
		}
		delay := backoff.Policy{Min: l.cfg.MinBackoff, Max: l.cfg.MaxBackoff}.Delay(failures + 1)
		// Log a connection failure that repeats while the database is down
		// once, not at every attempt.
		if msg := err.Error(); msg != lastConnError {
			l.logger.WarnContext(ctx, "listener not connected; retrying", "error", err, "retry_in", delay)
			lastConnError = msg
		}
		failures++
		if !backoff.Sleep(ctx, delay) {
			return nil
		}
	}
}

// session runs one connection from connect to drop. It reports whether
// LISTEN was put in place, and calls OnReconnect once it is when reconnect is
// set. It always returns a non-nil error: the reason the session ended.
func (l *Listener) session(ctx context.Context, connConfig *pgx.ConnConfig, reconnect bool) (bool, error) {
	conn, err := pgx.ConnectConfig(ctx, connConfig)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer func() {
		l.setConnected(false)
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()

	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{l.cfg.Channel}.Sanitize()); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	l.setConnected(true)
	if reconnect {
		l.cfg.Metrics.incReconnects()
		l.logger.InfoContext(ctx, "listener reconnected", "pid", conn.PgConn().PID())
		if l.cfg.OnReconnect != nil {
			l.cfg.OnReconnect(ctx)
		}
	} else {
		l.logger.InfoContext(ctx, "listener connected", "pid", conn.PgConn().PID())
	}

	for {
		if err := l.wait(ctx, conn); err != nil {
			return true, err
		}
	}
}

// wait delivers the next notification, or checks the connection with a ping
// when none arrives within the health check interval.
func (l *Listener) wait(ctx context.Context, conn *pgx.Conn) error {
	waitCtx, cancel := context.WithTimeout(ctx, l.cfg.HealthCheckInterval)
	n, err := conn.WaitForNotification(waitCtx)
	cancel()
	if n != nil {
		l.deliver(ctx, n.Payload)
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if !errors.Is(err, context.DeadlineExceeded) || conn.IsClosed() {
		return fmt.Errorf("wait for notification: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, l.cfg.HealthCheckInterval)
	defer cancel()
	if err := conn.Ping(pingCtx); err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	return nil
}

func (l *Listener) deliver(ctx context.Context, payload string) {
	l.cfg.Metrics.incNotifications()
	e, err := ParseEvent([]byte(payload))
	if err != nil {
		l.cfg.Metrics.incInvalidPayloads()
		l.logger.WarnContext(ctx, "ignoring notification", "error", err, "payload", truncate(payload, 200))
		return
	}
	e.ReceivedAt = time.Now()
	if l.cfg.OnEvent != nil {
		l.cfg.OnEvent(e)
	}
}

// Connected reports whether the Listener currently holds a connection with
// LISTEN in place.
func (l *Listener) Connected() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.connected
}

// WaitConnected blocks until the Listener is connected or ctx is done, and
// returns ctx's error in the latter case.
func (l *Listener) WaitConnected(ctx context.Context) error {
	l.mu.Lock()
	up := l.up
	l.mu.Unlock()
	select {
	case <-up:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for listener: %w", ctx.Err())
	}
}

func (l *Listener) setConnected(connected bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.connected == connected {
		return
	}
	l.connected = connected
	if connected {
		close(l.up)
	} else {
		l.up = make(chan struct{})
	}
	l.cfg.Metrics.setConnected(connected)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
