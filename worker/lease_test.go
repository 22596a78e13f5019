package worker

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/narrate/narrate/db"
)

// renewCounter is the database queue counting successful lease renewals.
type renewCounter struct {
	*db.DB
	renewals atomic.Int64
}

func (q *renewCounter) RenewLease(ctx context.Context, id uuid.UUID, owner string, lease time.Duration) error {
	err := q.DB.RenewLease(ctx, id, owner, lease)
	if err == nil {
		q.renewals.Add(1)
	}
	return err
}

// stallingStore holds the first Put of the final file (a key with no
// "/part-") until release is closed, as a slow disk or object store would.
type stallingStore struct {
	Store
	once    sync.Once
	stalled chan struct{}
	release chan struct{}
}

func (s *stallingStore) Put(ctx context.Context, key string, r io.Reader, contentType string) error {
	if !strings.Contains(key, "/part-") {
		first := false
		s.once.Do(func() { first = true })
		if first {
			close(s.stalled)
			select {
			case <-s.release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return s.Store.Put(ctx, key, r, contentType)
}

// TestLeaseOutlivesSlowStore holds the final store for two whole leases,
// while the same worker's second slot and another worker poll the queue:
// the lease is renewed throughout, so nobody claims the generation again
// and no chunk is synthesised twice.
func TestLeaseOutlivesSlowStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	queue := &renewCounter{DB: e.d}
	store := &stallingStore{Store: e.store, stalled: make(chan struct{}), release: make(chan struct{})}
	id := e.start(e.story("The Fox", longStory))
	w := e.run(e.newWorker(func(c *Config) { c.Queue, c.Store, c.Concurrency = queue, store, 2 }))
	other := e.run(e.newWorker(func(c *Config) { c.Owner, c.Queue = "other-worker", e.openDB() }))

	select {
	case <-store.stalled:
	case <-time.After(waitLimit):
		t.Fatal("the worker never stored the final file")
	}
	// Renewals come every third of a lease: six of them span two leases,
	// long enough for an unrenewed lease to lapse and be claimed again.
	start := queue.renewals.Load()
	e.waitFor("two leases of renewals while the store stalls", func() bool { return queue.renewals.Load()-start >= 6 })
	if s := e.state(id); s.Status != "in_progress" || s.Attempts != 1 {
		t.Fatalf("while the store stalls: %+v, want in_progress on its first attempt", s)
	}
	close(store.release)

	s := e.waitStatus(id, "completed")
	chunks := chunksOf(longStory)
	want := append(append([]string{"claimed"}, chunkLogs(len(chunks))...), "completed")
	if s.Attempts != 1 || !slices.Equal(s.Logs, want) {
		t.Errorf("attempts %d, logs %q; want one claim and logs %q", s.Attempts, s.Logs, want)
	}
	if calls := e.el.Calls(); len(calls) != len(chunks) {
		t.Errorf("%d synthesis calls for %d chunks: a chunk was synthesised twice", len(calls), len(chunks))
	}
	e.waitOutcome(w, OutcomeCompleted, 1)
	if n := other.outcomes(OutcomeCompleted) + other.outcomes(OutcomeCanceled); n != 0 {
		t.Errorf("the other worker finished %d generations, want none", n)
	}
}

// TestSlotsHoldLeasesOfTheirOwn runs two generations at once in one
// worker: each slot claims under an owner of its own.
func TestSlotsHoldLeasesOfTheirOwn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	entered, release := make(chan struct{}, 2), make(chan struct{})
	e.el.setHandler(func(r *http.Request, c ttsCall) reply {
		entered <- struct{}{}
		blockUntil(r, release)
		return reply{}
	})
	a := e.start(e.story("A", "Alpha."))
	b := e.start(e.story("B", "Beta."))
	e.run(e.newWorker(func(c *Config) { c.Owner, c.Concurrency = "one-process", 2 }))
	for range 2 {
		select {
		case <-entered:
		case <-time.After(waitLimit):
			t.Fatal("the two slots never synthesised at once")
		}
	}
	var owners []string
	rows, err := e.admin.Query(context.Background(), `SELECT lease_owner FROM story_generations WHERE id = ANY($1) ORDER BY lease_owner`, []uuid.UUID{a, b})
	if err == nil {
		owners, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(owners) != 2 || owners[0] == owners[1] || !strings.HasPrefix(owners[0], "one-process/") {
		t.Errorf("lease owners %q, want two distinct owners of process one-process", owners)
	}
	close(release)
	e.waitStatus(a, "completed")
	e.waitStatus(b, "completed")
}
