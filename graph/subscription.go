package graph

import (
	"context"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/realtime"
	"github.com/narrate/narrate/socket"
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
	s := r.newStream(v, true)
	s.sub = r.Hub.SubscribeGenerationFunc(id, s.schedule)
	row, err := r.events().snapshot(ctx, v, id)
	if err != nil {
		s.sub.Close()
		return nil, err
	}
	if row == nil {
		s.sub.Close()
		return nil, NewError(CodeNotFound, "generation not found")
	}
	return s.start(ctx, row), nil
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
	s := r.newStream(v, false)
	s.sub = r.Hub.SubscribeUserFunc(v.UserID, s.schedule)
	return s.start(ctx, nil), nil
}

// stream turns hub events into subscription results for one viewer. It
// has no goroutine of its own: the hub's notification queues it on the
// resolver's event reader, which re-reads the rows of its events together
// with other streams' (see eventReader), and then hands them, one at a
// time, to the transport. Over this server's websockets the transport
// takes each value as it comes (see socket.Driver), so an idle
// subscription costs no goroutine; over other transports (server-sent
// events) a relay goroutine feeds gqlgen's.
type stream struct {
	r      *Resolver
	viewer Viewer
	sub    *realtime.Subscription
	// single streams end after the generation's terminal event.
	single bool
	// out holds at most one value: the one the transport is taking.
	out chan *db.Generation
	// ready tells the transport a value (or the end) is waiting in out.
	ready func()

	mu sync.Mutex
	// queued: on the event reader's queue; loading: being read (or not
	// started yet); dirty: events arrived meanwhile.
	queued, loading, dirty bool
	// pending are rows read but not yet handed over, in order.
	pending []queuedRow
	// inFlight is the event of the value in out, not yet taken.
	inFlight      bool
	inFlightEvent generation.Event
	// ending: the terminal event is pending, close out after it;
	// stopped: the subscription ended.
	ending, stopped, outClosed bool
	// owesEnd: the stream failed, and EndStreamsWithErrors turns the
	// close of out into two responses, the error's result and then the
	// end: the transport takes the end on one more ready, once it has
	// taken the error.
	owesEnd bool
	// last is what was last handed over per generation, to drop events
	// already reflected in what the client has: in lastOne for a single
	// generation's stream, which needs no map. Only the stream's current
	// loader touches them.
	last    map[uuid.UUID]sent
	lastOne *sent
	// ctx is the subscription's, for the error a panic ends it with.
	ctx context.Context
}

type queuedRow struct {
	g *db.Generation
	e generation.Event
}

type sent struct {
	status generation.Status
	at     int64 // updated_at, in microseconds
}

func (r *Resolver) newStream(v Viewer, single bool) *stream {
	// loading until start: events arriving before the snapshot is queued
	// wait for it, so they are judged against it.
	return &stream{r: r, viewer: v, single: single, out: make(chan *db.Generation, 1), loading: true}
}

// start hands the stream to the transport with its snapshot (if any) as
// the first value, and returns the channel gqlgen reads.
func (s *stream) start(ctx context.Context, snapshot *db.Generation) <-chan *db.Generation {
	s.ctx = ctx
	out := (<-chan *db.Generation)(s.out)
	if d := socket.DriverFrom(ctx); d != nil {
		s.ready = d.Ready
		d.Drive(s.taken)
	} else {
		s.ready = func() {}
		out = s.relay(ctx)
	}
	context.AfterFunc(ctx, s.stop)

	s.mu.Lock()
	if snapshot != nil {
		s.queueRowLocked(snapshot, generation.Event{})
	}
	s.mu.Unlock()
	s.loaded()
	return out
}

// relay feeds gqlgen's goroutine from out, for transports that read the
// channel themselves.
func (s *stream) relay(ctx context.Context) <-chan *db.Generation {
	relay := make(chan *db.Generation)
	go func() {
		defer close(relay)
		for {
			select {
			case g, ok := <-s.out:
				if !ok {
					return
				}
				select {
				case relay <- g:
					s.taken()
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return relay
}

// schedule is the hub's notification: events are pending.
func (s *stream) schedule() {
	s.mu.Lock()
	switch {
	case s.stopped || s.ending:
		s.mu.Unlock()
		return
	case s.loading:
		s.dirty = true
		s.mu.Unlock()
		return
	case s.queued:
		s.mu.Unlock()
		return
	}
	s.queued = true
	s.mu.Unlock()
	s.r.events().add(s)
}

// begin takes the stream's pending events for its loader; false when the
// stream wants no more.
func (s *stream) begin() ([]generation.Event, bool) {
	s.mu.Lock()
	s.queued = false
	if s.stopped || s.ending {
		s.mu.Unlock()
		return nil, false
	}
	s.loading = true
	s.mu.Unlock()
	return s.fresh(s.sub.Drain()), true
}

// deliver queues the events whose rows the viewer may see, with the
// event's state: the row may already be a later state, whose own event
// follows, and sending it now could skip a status.
func (s *stream) deliver(events []generation.Event, rows map[uuid.UUID]*db.Generation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range events {
		row, ok := rows[e.GenerationID]
		if !ok || s.ending {
			// Not visible to this viewer (or gone): nothing to send.
			continue
		}
		g := *row
		g.Status, g.Progress, g.UpdatedAt = e.Status, e.Progress, e.UpdatedAt
		s.queueRowLocked(&g, e)
	}
}

func (s *stream) queueRowLocked(g *db.Generation, e generation.Event) {
	s.pending = append(s.pending, queuedRow{g: g, e: e})
	s.remember(g.ID, sent{status: g.Status, at: g.UpdatedAt.UnixMicro()})
	if s.single && g.Status.Terminal() {
		s.ending = true
	}
}

// loaded ends a load: events that arrived meanwhile are scheduled, and
// what was read is handed on.
func (s *stream) loaded() {
	s.mu.Lock()
	s.loading = false
	again := s.dirty
	s.dirty = false
	s.mu.Unlock()
	if again {
		s.schedule()
	}
	s.pump()
}

// pump puts the next pending row (or the end) in out, unless the
// transport has not taken the previous one yet: a slow client holds one
// value, while the hub coalesces its later events.
func (s *stream) pump() {
	s.mu.Lock()
	if s.stopped || s.inFlight {
		s.mu.Unlock()
		return
	}
	if len(s.pending) > 0 {
		next := s.pending[0]
		s.pending[0] = queuedRow{}
		s.pending = s.pending[1:]
		if len(s.pending) == 0 {
			s.pending = nil
		}
		s.inFlight, s.inFlightEvent = true, next.e
		s.out <- next.g // out has room: nothing is in flight
		s.mu.Unlock()
		s.ready()
		return
	}
	if s.ending && !s.outClosed {
		s.outClosed = true
		close(s.out)
		s.mu.Unlock()
		s.sub.Close()
		s.ready()
		return
	}
	s.mu.Unlock()
}

// taken is called once the transport has taken the value in out. It runs
// on the transport's goroutine (the socket's, or the relay), so it
// contains its own panics: the stream then ends with an internal error
// (see EndStreamsWithErrors), and the socket's other subscriptions live on.
func (s *stream) taken() {
	defer func() {
		if v := recover(); v != nil {
			s.fail(v)
		}
	}()
	s.mu.Lock()
	if s.stopped {
		owed := s.owesEnd
		s.owesEnd = false
		s.mu.Unlock()
		if owed {
			s.ready()
		}
		return
	}
	s.inFlight = false
	e := s.inFlightEvent
	s.mu.Unlock()
	if s.r.Metrics != nil {
		s.r.Metrics.Delivered(e)
	}
	s.pump()
}

// fail ends the stream after a panic in its code: the panic is logged and
// counted, and the client gets an INTERNAL_SERVER_ERROR before the end.
func (s *stream) fail(v any) {
	err := s.r.Panics.Recovered(s.ctx, s.r.logger(), "subscription", v)
	endStream(s.ctx, &gqlerror.Error{
		Err: err, Message: "internal server error", Path: graphql.GetPath(s.ctx),
		Extensions: map[string]any{"code": CodeInternal},
	})
	s.mu.Lock()
	s.owesEnd = !s.stopped
	s.mu.Unlock()
	s.stop()
	s.ready()
}

// stop ends the stream when its operation ends.
func (s *stream) stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	s.pending = nil
	if !s.outClosed {
		s.outClosed = true
		close(s.out)
	}
	s.mu.Unlock()
	s.sub.Close()
}

func (s *stream) isStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

// fresh keeps the events that are news to the client: later than what it
// was last sent for that generation. A terminal event is always news until
// one was sent, so the final state is never dropped.
func (s *stream) fresh(events []generation.Event) []generation.Event {
	out := events[:0]
	for _, e := range events {
		last, seen := s.recall(e.GenerationID)
		switch {
		case !seen:
		case e.UpdatedAt.UnixMicro() > last.at:
		case e.Terminal() && !last.status.Terminal():
		default:
			continue
		}
		out = append(out, e)
	}
	return out
}

func (s *stream) remember(id uuid.UUID, v sent) {
	if s.single {
		s.lastOne = &v
		return
	}
	if s.last == nil {
		s.last = map[uuid.UUID]sent{}
	}
	s.last[id] = v
}

func (s *stream) recall(id uuid.UUID) (sent, bool) {
	if s.single {
		if s.lastOne == nil {
			return sent{}, false
		}
		return *s.lastOne, true
	}
	v, ok := s.last[id]
	return v, ok
}
