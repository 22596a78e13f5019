package graph

import (
	"context"
	"strings"

	"github.com/google/uuid"

	"github.com/narrate/narrate/backoff"
	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/realtime"
)

// errNoRealtime answers subscriptions on a server built without a hub.
var errNoRealtime = NewError(CodeInternal, "subscriptions are not available on this server")

// subscribeGeneration streams one generation: its current state first,
// then every change, until a terminal status.
func (r *Resolver) subscribeGeneration(ctx context.Context, id uuid.UUID) (<-chan *db.Generation, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return nil, err
	}
	if r.Hub == nil {
		return nil, errNoRealtime
	}
	// Subscribe before reading the snapshot: a change committed in between
	// is then both in the snapshot or after it and in the subscription, and
	// the stream drops what it has already sent, so nothing falls between.
	sub := r.Hub.SubscribeGeneration(id)
	rows, err := r.DB.GenerationsByID(ctx, v.Session, []uuid.UUID{id}, columnsOf(ctx).generation)
	if err != nil {
		sub.Close()
		return nil, err
	}
	if len(rows) == 0 {
		sub.Close()
		return nil, NewError(CodeNotFound, "generation not found")
	}
	s := r.newStream(ctx, v, sub, true)
	go s.run(ctx, &rows[0])
	return s.out, nil
}

// subscribeViewer streams every change of the viewer's generations, new
// ones included. There is no snapshot: the viewer's generations query
// gives the current state.
func (r *Resolver) subscribeViewer(ctx context.Context) (<-chan *db.Generation, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return nil, err
	}
	if r.Hub == nil {
		return nil, errNoRealtime
	}
	s := r.newStream(ctx, v, r.Hub.SubscribeUser(v.UserID), false)
	go s.run(ctx, nil)
	return s.out, nil
}

// stream turns hub events into subscription results for one viewer.
type stream struct {
	r      *Resolver
	viewer Viewer
	sub    *realtime.Subscription
	// single streams end after the generation's terminal event.
	single bool
	out    chan *db.Generation
	// last is what was last sent per generation, to drop events already
	// reflected in what the client has.
	last map[uuid.UUID]sent
	// cols are the columns the subscription's selection needs.
	cols db.Columns
}

type sent struct {
	status db.Status
	at     int64 // updated_at, in microseconds
}

func (r *Resolver) newStream(ctx context.Context, v Viewer, sub *realtime.Subscription, single bool) *stream {
	return &stream{r: r, viewer: v, sub: sub, single: single, out: make(chan *db.Generation), last: map[uuid.UUID]sent{},
		cols: columnsOf(ctx).generation}
}

func (s *stream) run(ctx context.Context, snapshot *db.Generation) {
	defer close(s.out)
	defer s.sub.Close()

	if snapshot != nil {
		if !s.send(ctx, snapshot, realtime.Event{}) || (s.single && snapshot.Status.Terminal()) {
			return
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.sub.Ready():
		}
		events := s.fresh(s.sub.Drain())
		if len(events) == 0 {
			continue
		}
		rows, ok := s.loadRetrying(ctx, events)
		if !ok {
			return
		}
		for _, e := range events {
			row, ok := rows[e.GenerationID]
			if !ok {
				// Not visible to this viewer (or gone): nothing to send.
				continue
			}
			g := row
			// The event's state, not the row's: the row may already be a
			// later state, whose own event follows, and sending it now
			// could skip a status.
			g.Status, g.Progress, g.UpdatedAt = db.Status(strings.ToLower(e.Status)), e.Progress, e.UpdatedAt
			if !s.send(ctx, &g, e) {
				return
			}
			if s.single && g.Status.Terminal() {
				return
			}
		}
	}
}

// fresh keeps the events that are news to the client: later than what it
// was last sent for that generation. A terminal event is always news until
// one was sent, so the final state is never dropped.
func (s *stream) fresh(events []realtime.Event) []realtime.Event {
	out := events[:0]
	for _, e := range events {
		last, seen := s.last[e.GenerationID]
		status := db.Status(strings.ToLower(e.Status))
		switch {
		case !seen:
		case e.UpdatedAt.UnixMicro() > last.at:
		case status.Terminal() && !last.status.Terminal():
		default:
			continue
		}
		out = append(out, e)
	}
	return out
}

// loadRetrying loads the events' rows, retrying with backoff while the
// database is unreachable (a restart, a failover) rather than ending the
// subscription: the events, a terminal one above all, are still delivered
// once it answers. It gives up only when the subscription ends.
func (s *stream) loadRetrying(ctx context.Context, events []realtime.Event) (map[uuid.UUID]db.Generation, bool) {
	for attempt := 1; ; attempt++ {
		rows, err := s.load(ctx, events)
		if err == nil {
			return rows, true
		}
		if ctx.Err() != nil {
			return nil, false
		}
		delay := backoff.Database.Delay(attempt)
		s.r.Logger.WarnContext(ctx, "load subscription event; retrying", "err", err, "in", delay)
		if !backoff.Sleep(ctx, delay) {
			return nil, false
		}
	}
}

// load reads the events' generations as the viewer, so row-level security
// decides again, per event, whether the viewer may see them.
func (s *stream) load(ctx context.Context, events []realtime.Event) (map[uuid.UUID]db.Generation, error) {
	ids := make([]uuid.UUID, 0, len(events))
	for _, e := range events {
		ids = append(ids, e.GenerationID)
	}
	rows, err := s.r.DB.GenerationsByID(ctx, s.viewer.Session, ids, s.cols)
	if err != nil {
		return nil, err
	}
	byID := make(map[uuid.UUID]db.Generation, len(rows))
	for _, g := range rows {
		byID[g.ID] = g
	}
	return byID, nil
}

// send hands g to gqlgen, which resolves its fields with fresh loaders
// under the viewer's session and writes it to the socket. A slow client
// blocks only this goroutine; the hub coalesces its pending events
// meanwhile.
func (s *stream) send(ctx context.Context, g *db.Generation, e realtime.Event) bool {
	select {
	case s.out <- g:
	case <-ctx.Done():
		return false
	}
	s.last[g.ID] = sent{status: g.Status, at: g.UpdatedAt.UnixMicro()}
	s.r.Metrics.Delivered(e)
	return true
}
