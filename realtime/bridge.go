package realtime

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/backoff"
	"github.com/narrate/narrate/generation"
)

// StateReader reads back, with a privileged role, the current state of the
// given generations and of the given users' generations changed since a
// time.
type StateReader func(ctx context.Context, generations, users []uuid.UUID, since time.Time) ([]generation.Event, error)

// resyncMargin widens the window re-read after a reconnect, for changes
// whose transaction began (and took its updated_at) before the last change
// the listener saw but committed after it.
const resyncMargin = 5 * time.Second

// resyncAttempts bounds the reads of one resync: with backoff.Database,
// about 30 s, long enough for a restarting database to accept connections
// again.
const resyncAttempts = 10

// Bridge connects a Listener to a Hub: it publishes every notification
// and, after every reconnect, re-reads what subscribers are watching and
// publishes that too, so a change announced while the listener was down
// (a terminal status above all) still reaches them. Subscriptions drop
// events they have already seen, so a re-read that found nothing new
// sends nothing.
type Bridge struct {
	hub    *Hub
	read   StateReader
	logger *slog.Logger

	mu       sync.Mutex
	lastSeen time.Time
}

// NewBridge returns a bridge publishing to hub.
func NewBridge(hub *Hub, read StateReader, logger *slog.Logger) *Bridge {
	if logger == nil {
		logger = slog.Default()
	}
	return &Bridge{hub: hub, read: read, logger: logger, lastSeen: time.Now()}
}

// OnEvent publishes a notification; use it as ListenerConfig.OnEvent.
func (b *Bridge) OnEvent(e generation.Event) {
	b.mu.Lock()
	if e.UpdatedAt.After(b.lastSeen) {
		b.lastSeen = e.UpdatedAt
	}
	b.mu.Unlock()
	b.hub.Publish(e)
}

// OnReconnect re-reads and publishes the state of every watched generation
// and of the watched users' recently changed generations; use it as
// ListenerConfig.OnReconnect.
func (b *Bridge) OnReconnect(ctx context.Context) {
	generations, users := b.hub.Generations(), b.hub.Users()
	if len(generations) == 0 && len(users) == 0 {
		return
	}
	b.mu.Lock()
	since := b.lastSeen.Add(-resyncMargin)
	b.mu.Unlock()
	// The database may still be coming back (the listener reconnected to a
	// server that is starting up): retry for a while. Notifications queue
	// on the listener's connection meanwhile.
	var events []generation.Event
	var err error
	for attempt := 1; ; attempt++ {
		if events, err = b.read(ctx, generations, users, since); err == nil {
			break
		}
		if attempt == resyncAttempts || ctx.Err() != nil {
			// Later changes still arrive, and a subscriber's next event
			// carries the current state; only what changed while the
			// listener was down may be missed.
			b.logger.ErrorContext(ctx, "resync after listener reconnect", "err", err, "attempts", attempt)
			return
		}
		delay := backoff.Database.Delay(attempt)
		b.logger.WarnContext(ctx, "resync after listener reconnect; retrying", "err", err, "in", delay)
		if !backoff.Sleep(ctx, delay) {
			return
		}
	}
	for _, e := range events {
		b.OnEvent(e)
	}
	b.logger.InfoContext(ctx, "resynced after listener reconnect",
		"generations", len(generations), "users", len(users), "events", len(events))
}
