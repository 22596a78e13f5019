package graph

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/backoff"
	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/recovery"
)

// DefaultEventReaders is how many event reads run at once when
// Resolver.EventReaders is zero; the pool needs that many connections on
// top of what requests use (see EventReaders).
const DefaultEventReaders = 2

// maxReadBatch bounds the streams one read serves, and so the statements
// of one transaction.
const maxReadBatch = 256

// eventSource is what the event reader needs from the database.
type eventSource interface {
	GenerationsForSessions(ctx context.Context, reads []db.SessionRead) ([][]db.Generation, error)
}

// eventReader re-reads, under each watching viewer's row-level security,
// the rows of the events that subscriptions are waiting on. Work grows with
// events, not with subscriptions:
//
//   - streams with pending events queue here, and each read takes all that
//     are queued (up to maxReadBatch): one transaction, one round trip, one
//     statement per viewer, so the same event watched by many streams of
//     one user is read once for all of them;
//   - at most workers reads run at once, on goroutines that exist only
//     while there is work.
type eventReader struct {
	db      eventSource
	logger  *slog.Logger
	panics  *recovery.Metrics
	workers int

	mu        sync.Mutex
	queue     []*stream
	snapshots []*snapshotRead
	running   int
	// flights are the reads running or recently finished, and order
	// their keys, oldest first.
	flights map[flightKey]*flight
	order   []flightKey
}

// events returns the resolver's event reader, made on first use.
func (r *Resolver) events() *eventReader {
	r.readerOnce.Do(func() {
		workers := r.EventReaders
		if workers <= 0 {
			workers = DefaultEventReaders
		}
		logger := r.Logger
		if logger == nil {
			logger = slog.Default()
		}
		r.reader = &eventReader{db: r.DB, logger: logger, panics: r.Panics, workers: workers, flights: map[flightKey]*flight{}}
	})
	return r.reader
}

// add queues a stream with pending events.
func (er *eventReader) add(s *stream) {
	er.mu.Lock()
	er.queue = append(er.queue, s)
	er.kickLocked()
	er.mu.Unlock()
}

// kickLocked starts a worker unless enough are running.
func (er *eventReader) kickLocked() {
	if er.running < er.workers {
		er.running++
		go er.work()
	}
}

// snapshotRead is a subscription's first read of its generation.
type snapshotRead struct {
	session db.Session
	key     readerKey
	id      uuid.UUID
	done    chan struct{}
	row     *db.Generation
	err     error
}

// snapshot reads generation id as v (nil when v may not see it), in one
// transaction with the other snapshots asked for meanwhile: many clients
// subscribing at once cost a transaction per batch, not one each.
func (er *eventReader) snapshot(ctx context.Context, v Viewer, id uuid.UUID) (*db.Generation, error) {
	req := &snapshotRead{session: v.Session, key: readerKey{user: v.UserID, admin: v.Admin}, id: id, done: make(chan struct{})}
	er.mu.Lock()
	er.snapshots = append(er.snapshots, req)
	er.kickLocked()
	er.mu.Unlock()
	select {
	case <-req.done:
		return req.row, req.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// work serves queued reads, snapshots first (a client is waiting on
// each), until there are none.
func (er *eventReader) work() {
	for {
		er.mu.Lock()
		if n := min(len(er.snapshots), maxReadBatch); n > 0 {
			batch := take(&er.snapshots, n)
			er.mu.Unlock()
			er.readSnapshots(batch)
			continue
		}
		if len(er.queue) == 0 {
			er.running--
			er.queue, er.snapshots = nil, nil
			er.mu.Unlock()
			return
		}
		batch := take(&er.queue, min(len(er.queue), maxReadBatch))
		er.mu.Unlock()
		er.read(batch)
	}
}

// take removes and returns the first n entries of *q.
func take[T any](q *[]T, n int) []T {
	batch := make([]T, n)
	copy(batch, *q)
	rest := copy(*q, (*q)[n:])
	clear((*q)[rest:])
	*q = (*q)[:rest]
	return batch
}

// readSnapshots serves a batch of snapshot reads in one attempt: the
// subscriptions asking fail with the error, as a request would.
func (er *eventReader) readSnapshots(batch []*snapshotRead) {
	var reads []db.SessionRead
	groups := map[readerKey]int{}
	at := make([]int, len(batch))
	for i, req := range batch {
		g, ok := groups[req.key]
		if !ok {
			g = len(reads)
			groups[req.key] = g
			reads = append(reads, db.SessionRead{Session: req.session})
		}
		reads[g].IDs = append(reads[g].IDs, req.id)
		at[i] = g
	}
	rows, err := er.db.GenerationsForSessions(context.Background(), reads)
	for i, req := range batch {
		req.err = err
		if err == nil {
			for j := range rows[at[i]] {
				if rows[at[i]][j].ID == req.id {
					g := rows[at[i]][j]
					req.row = &g
					break
				}
			}
		}
		close(req.done)
	}
}

// readerKey groups streams that row-level security judges alike: the
// same user with the same admin claim.
type readerKey struct {
	user  uuid.UUID
	admin bool
}

// flightKey is one event as one viewer sees it.
type flightKey struct {
	viewer readerKey
	gen    uuid.UUID
	at     int64 // the event's updated_at, in microseconds
}

// flight is the read of one flightKey: its row (nil when the viewer may
// not see it), once done is closed. Reads running at once share their
// flights, so an event watched by many streams of one user is read once
// even when their notifications land in different batches; a finished
// flight stays shareable for flightTTL.
type flight struct {
	done chan struct{}
	row  *db.Generation
	ok   bool // the read succeeded
	end  time.Time
}

// flightTTL is how long a finished read is reused: longer than it takes
// the hub to notify every stream of one event.
const flightTTL = 250 * time.Millisecond

// flightFor returns the flight of k, and whether the caller owns it (and
// must read it).
func (er *eventReader) flightFor(k flightKey, now time.Time) (*flight, bool) {
	if f, ok := er.flights[k]; ok && (f.end.IsZero() || now.Sub(f.end) < flightTTL) {
		return f, false
	}
	f := &flight{done: make(chan struct{})}
	er.flights[k] = f
	er.order = append(er.order, k)
	return f, true
}

// purgeLocked forgets finished flights older than flightTTL.
func (er *eventReader) purgeLocked(now time.Time) {
	n := 0
	for _, k := range er.order {
		f := er.flights[k]
		if f == nil || f.end.IsZero() || now.Sub(f.end) < flightTTL {
			break
		}
		delete(er.flights, k)
		n++
	}
	er.order = er.order[n:]
	if len(er.order) == 0 {
		er.order = nil
	}
}

// read serves one batch of streams.
func (er *eventReader) read(batch []*stream) {
	type work struct {
		s       *stream
		events  []generation.Event
		flights []*flight
	}
	var (
		todo   = make([]work, 0, len(batch))
		mine   []ownedFlight
		reads  []db.SessionRead
		groups = map[readerKey]int{}
		// beginning is the stream whose begin runs, released too should
		// it panic.
		beginning *stream
	)
	defer func() {
		// Every stream begun is released and every flight owned is
		// finished, even after a panic, which is logged and counted like
		// a stream's: nothing may wait for good. The batch's events are
		// dropped; the streams serve the next ones.
		if v := recover(); v != nil {
			er.panics.Recovered(context.Background(), er.logger.With("streams", len(batch)), "subscription", v)
			if beginning != nil {
				beginning.loaded()
			}
		}
		er.finish(mine)
		for _, w := range todo {
			w.s.loaded()
		}
	}()
	now := time.Now()
	func() {
		// Unlocked even when a stream's begin panics, before the release
		// above (which locks) runs.
		er.mu.Lock()
		defer er.mu.Unlock()
		er.purgeLocked(now)
		for _, s := range batch {
			beginning = s
			events, ok := s.begin()
			beginning = nil
			if !ok {
				continue
			}
			w := work{s: s, events: events, flights: make([]*flight, len(events))}
			key := readerKey{user: s.viewer.UserID, admin: s.viewer.Admin}
			for i, e := range events {
				f, own := er.flightFor(flightKey{viewer: key, gen: e.GenerationID, at: e.UpdatedAt.UnixMicro()}, now)
				w.flights[i] = f
				if !own {
					continue
				}
				g, found := groups[key]
				if !found {
					g = len(reads)
					groups[key] = g
					reads = append(reads, db.SessionRead{Session: s.viewer.Session})
				}
				reads[g].IDs = append(reads[g].IDs, e.GenerationID)
				mine = append(mine, ownedFlight{f: f, group: g, gen: e.GenerationID})
			}
			todo = append(todo, w)
		}
	}()

	if len(reads) > 0 {
		streams := make([]*stream, len(todo))
		for i, w := range todo {
			streams[i] = w.s
		}
		if rows, ok := er.load(reads, streams); ok {
			byID := make([]map[uuid.UUID]*db.Generation, len(rows))
			for i, list := range rows {
				byID[i] = make(map[uuid.UUID]*db.Generation, len(list))
				for j := range list {
					byID[i][list[j].ID] = &list[j]
				}
			}
			for _, o := range mine {
				o.f.row, o.f.ok = byID[o.group][o.gen], true
			}
		}
	}
	er.finish(mine)
	mine = nil

	for _, w := range todo {
		rows := make(map[uuid.UUID]*db.Generation, len(w.events))
		for i, f := range w.flights {
			<-f.done
			if !f.ok {
				// The read it shared failed for good (its own streams all
				// ended): the event is lost to this stream only if its
				// own read fails too.
				if own, ok := er.load([]db.SessionRead{{Session: w.s.viewer.Session, IDs: []uuid.UUID{w.events[i].GenerationID}}}, []*stream{w.s}); ok && len(own[0]) > 0 {
					rows[own[0][0].ID] = &own[0][0]
				}
				continue
			}
			if f.row != nil {
				rows[f.row.ID] = f.row
			}
		}
		if len(w.events) > 0 {
			w.s.deliver(w.events, rows)
		}
	}
}

// ownedFlight is a flight a read owns, with where its row will be.
type ownedFlight struct {
	f     *flight
	group int
	gen   uuid.UUID
}

// finish marks flights done and wakes whoever shares them.
func (er *eventReader) finish(flights []ownedFlight) {
	if len(flights) == 0 {
		return
	}
	now := time.Now()
	er.mu.Lock()
	for _, o := range flights {
		o.f.end = now
	}
	er.mu.Unlock()
	for _, o := range flights {
		close(o.f.done)
	}
}

// load reads, retrying with backoff while the database is unreachable (a
// restart, a failover) rather than dropping the events, a terminal one
// above all: they are delivered once it answers. It gives up when every
// stream of the batch has ended.
func (er *eventReader) load(reads []db.SessionRead, streams []*stream) ([][]db.Generation, bool) {
	ctx := context.Background()
	for attempt := 1; ; attempt++ {
		rows, err := er.db.GenerationsForSessions(ctx, reads)
		if err == nil {
			return rows, true
		}
		if allStopped(streams) {
			return nil, false
		}
		delay := backoff.Database.Delay(attempt)
		er.logger.Warn("read subscription events; retrying", "err", err, "in", delay)
		if !backoff.Sleep(ctx, delay) {
			return nil, false
		}
	}
}

func allStopped(streams []*stream) bool {
	for _, s := range streams {
		if !s.isStopped() {
			return false
		}
	}
	return true
}
