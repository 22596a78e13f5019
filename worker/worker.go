// Package worker narrates queued story generations: it claims them from
// the database under a lease, synthesises the story chunk by chunk in the
// owner's voice, stores the joined audio and records the result.
//
// The worker is crash-safe by construction. A claim is a lease that the
// worker renews while it works; a worker that dies stops renewing, and once
// the lease expires any worker claims the generation again and starts it
// over. Every write names the lease, so a worker that lost its lease (the
// user cancelled, or another worker took over) finds out at its next write
// and stops without touching the generation again. Claims use FOR UPDATE
// SKIP LOCKED, so any number of workers, in any number of processes, share
// one queue without taking the same generation twice.
package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/backoff"
	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/storage"
	"github.com/narrate/narrate/voice"
)

// Queue is the generation queue the worker drains. *db.DB implements it;
// see its methods for the contract of each.
type Queue interface {
	Claim(ctx context.Context, owner string, lease time.Duration) (db.Job, bool, error)
	RenewLease(ctx context.Context, id uuid.UUID, owner string, lease time.Duration) error
	RecordPart(ctx context.Context, id uuid.UUID, owner string, part db.NewPart, progress int, event string) error
	Log(ctx context.Context, id uuid.UUID, owner, event string) error
	Complete(ctx context.Context, id uuid.UUID, owner, resultKey string, meta map[string]any) error
	Fail(ctx context.Context, id uuid.UUID, owner, reason string) error
	Release(ctx context.Context, id uuid.UUID, owner, reason string) error
	QueueDepth(ctx context.Context) (int, error)
}

// Store keeps the audio: each chunk's part, and the finished file, which
// is streamed from the stored parts. storage.Store implements it.
type Store interface {
	Put(ctx context.Context, key string, r io.Reader, contentType string) error
	Open(ctx context.Context, key string) (io.ReadSeekCloser, storage.ObjectInfo, error)
	Delete(ctx context.Context, key string) error
}

// Synthesizer narrates text in a cloned voice: the part of a voice provider
// the worker uses. voice/elevenlabs and voice/local implement it.
type Synthesizer interface {
	// Name identifies the provider in logs, metrics and the generation's
	// metadata, e.g. "elevenlabs".
	Name() string
	// ChunkLimit is the most characters one Synthesize call accepts.
	ChunkLimit() int
	// Synthesize narrates req.Text, at most ChunkLimit characters. Its
	// failures are *voice.Error, whose Kind says whether retrying helps.
	Synthesize(ctx context.Context, req voice.SynthesisRequest) (*voice.Audio, error)
}

// Config configures a Worker. Queue, Provider and Store are required.
type Config struct {
	Queue    Queue
	Provider Synthesizer
	Store    Store
	// Concurrency is how many generations are processed at once; default 1.
	Concurrency int
	// Owner identifies this worker in leases; it must be unique among
	// running workers. Default DefaultOwner().
	Owner string
	// Lease is how long a claim lasts without renewal; the worker renews
	// it every Lease/3 while working. A crashed worker's generation is
	// reclaimed this long after its last renewal. Default 30 s.
	Lease time.Duration
	// PollInterval is how often the worker looks for work when nobody
	// calls Wake; default 2 s.
	PollInterval time.Duration
	// Retry is the policy for failed synthesis calls.
	Retry RetryPolicy
	// DBBackoff spaces attempts while the database is unreachable;
	// default 100 ms doubling up to 5 s. The worker retries for as long as
	// it takes: an outage delays work but loses none.
	DBBackoff backoff.Policy
	// ShutdownGrace is how long, once Run's context is cancelled, the
	// chunk being synthesised may take to finish before the worker
	// abandons it; default 10 s. After the chunk the worker releases the
	// generation, or completes it when that was the last chunk.
	ShutdownGrace time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics may be nil.
	Metrics *Metrics
}

// Defaults for Config fields left zero.
const (
	DefaultLease         = 30 * time.Second
	DefaultPollInterval  = 2 * time.Second
	DefaultShutdownGrace = 10 * time.Second
)

// maxAttempts bounds how many times a generation is claimed before it
// fails: a story that crashes every worker which takes it must not circle
// forever.
const maxAttempts = 3

// dbTimeout bounds one database call, so a connection that hangs (rather
// than fails) during an outage is given up and retried.
const dbTimeout = 10 * time.Second

// Worker processes generations. Create it with New and start it with Run.
type Worker struct {
	queue        Queue
	provider     Synthesizer
	store        Store
	concurrency  int
	owner        string
	lease        time.Duration
	pollInterval time.Duration
	retry        RetryPolicy
	dbBackoff    backoff.Policy
	grace        time.Duration
	logger       *slog.Logger
	metrics      *Metrics

	wake    chan struct{}
	running atomic.Bool
}

// New checks cfg and returns a Worker.
func New(cfg Config) (*Worker, error) {
	switch {
	case cfg.Queue == nil:
		return nil, errors.New("worker: Config.Queue is required")
	case cfg.Provider == nil:
		return nil, errors.New("worker: Config.Provider is required")
	case cfg.Store == nil:
		return nil, errors.New("worker: Config.Store is required")
	case cfg.Concurrency < 0:
		return nil, fmt.Errorf("worker: Concurrency %d is negative", cfg.Concurrency)
	}
	w := &Worker{
		queue:        cfg.Queue,
		provider:     cfg.Provider,
		store:        cfg.Store,
		concurrency:  max(cfg.Concurrency, 1),
		owner:        cmp.Or(cfg.Owner, DefaultOwner()),
		lease:        cmp.Or(cfg.Lease, DefaultLease),
		pollInterval: cmp.Or(cfg.PollInterval, DefaultPollInterval),
		retry:        cfg.Retry.withDefaults(),
		dbBackoff:    cfg.DBBackoff.Or(backoff.Database),
		grace:        cmp.Or(cfg.ShutdownGrace, DefaultShutdownGrace),
		logger:       cmp.Or(cfg.Logger, slog.Default()),
		metrics:      cfg.Metrics,
		wake:         make(chan struct{}, 1),
	}
	if w.lease < 3*time.Millisecond {
		return nil, fmt.Errorf("worker: Lease %v is too short", w.lease)
	}
	w.logger = w.logger.With("worker", w.owner)
	return w, nil
}

// DefaultOwner is a lease owner unique to this process: host name, process
// id and a random suffix (process ids repeat across containers).
func DefaultOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), uuid.NewString()[:8])
}

// Wake makes the worker look for work now instead of at its next poll; the
// server calls it when a generation is queued. It never blocks.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run claims and processes generations until ctx is cancelled, then waits
// for the generations in hand: each finishes its current chunk (up to
// ShutdownGrace) and is released back to the queue, or completed when that
// was its last chunk. Database failures never end Run: it backs off and
// tries again. Run returns nil after a clean shutdown; calling it while it
// is already running is an error.
func (w *Worker) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("worker: already running")
	}
	defer w.running.Store(false)
	w.logger.InfoContext(ctx, "worker started", "provider", w.provider.Name(), "concurrency", w.concurrency,
		"lease", w.lease, "poll_interval", w.pollInterval)

	poll := time.NewTicker(w.pollInterval)
	defer poll.Stop()
	// Each slot claims under a lease owner of its own. With one owner for
	// all slots, a slot that reclaimed a generation whose lease had lapsed
	// while another slot of this process was still working on it would
	// share that slot's lease: both would write to it, and the story would
	// be synthesised (and paid for) twice.
	free := make([]int, w.concurrency)
	for i := range free {
		free[i] = w.concurrency - 1 - i
	}
	done := make(chan int)
	busy := 0
	var lastDepth time.Time

	for {
		for busy < w.concurrency && ctx.Err() == nil {
			slot := free[len(free)-1]
			owner := w.slotOwner(slot)
			// persist waits out a database outage here, so the loop
			// claims again as soon as the database answers.
			var job db.Job
			var ok bool
			err := w.persist(ctx, w.logger, "claim generation", func(ctx context.Context) (err error) {
				job, ok, err = w.queue.Claim(ctx, owner, w.lease)
				return err
			})
			if err != nil && ctx.Err() == nil {
				w.logger.ErrorContext(ctx, "claim generation", "err", err)
			}
			if err != nil || !ok {
				break
			}
			free = free[:len(free)-1]
			busy++
			w.metrics.setBusy(busy)
			go func() {
				w.process(ctx, job)
				done <- slot
			}()
		}
		if w.metrics != nil && time.Since(lastDepth) >= w.pollInterval {
			lastDepth = time.Now()
			w.refreshQueueDepth(ctx)
		}

		select {
		case <-ctx.Done():
			for ; busy > 0; busy-- {
				<-done
			}
			w.metrics.setBusy(0)
			w.logger.Info("worker stopped")
			return nil
		case slot := <-done:
			free = append(free, slot)
			busy--
			w.metrics.setBusy(busy)
		case <-w.wake:
		case <-poll.C:
		}
	}
}

// slotOwner is the lease owner of one of the worker's slots.
func (w *Worker) slotOwner(slot int) string {
	return fmt.Sprintf("%s/%d", w.owner, slot)
}

func (w *Worker) refreshQueueDepth(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	n, err := w.queue.QueueDepth(ctx)
	if err != nil {
		w.logger.DebugContext(ctx, "count queued generations", "err", err)
		return
	}
	w.metrics.setQueueDepth(n)
}

// keepLease renews owner's lease every Lease/3 until ctx ends, through
// every step of the job: synthesis, storing each part, assembling the
// final file and recording the result. When the lease turns out to be lost
// (a cancel, or a reclaim after this worker could not renew for a whole
// lease) it calls lost, which cancels the job with db.ErrLeaseLost and so
// aborts the step in flight, unless the job is writing its end. A renewal that fails otherwise is tried again soon rather than a
// third of a lease later, so a database hiccup does not eat into the lease.
func (w *Worker) keepLease(ctx context.Context, lost func(error), id uuid.UUID, owner string, log *slog.Logger) {
	interval := w.lease / 3
	t := time.NewTimer(interval)
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, max(interval, time.Second))
		err := w.queue.RenewLease(rctx, id, owner, w.lease)
		cancel()
		switch {
		case err == nil:
			failures = 0
			t.Reset(interval)
		case errors.Is(err, db.ErrLeaseLost):
			lost(err)
			return
		case ctx.Err() != nil:
			return
		default:
			failures++
			log.WarnContext(ctx, "renew lease", "err", err, "failures", failures)
			t.Reset(min(interval, w.dbBackoff.Delay(failures)))
		}
	}
}
