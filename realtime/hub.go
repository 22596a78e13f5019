package realtime

import (
	"sync"

	"github.com/google/uuid"

	"github.com/narrate/narrate/generation"
)

// MaxPendingPerGeneration bounds how many pending events one subscription
// keeps for one generation. Statuses normally only move forward (PENDING,
// IN_PROGRESS, then COMPLETED or FAILED), so coalescing alone keeps at most
// four; the cap only matters when a generation cycles between statuses (for
// example released back to PENDING and picked up again) many times while a
// subscriber does not drain. Then the oldest pending event of that generation
// is dropped so memory stays bounded; the latest state is always kept.
const MaxPendingPerGeneration = 8

// HubOption configures a Hub.
type HubOption func(*Hub)

// WithHubMetrics makes the Hub record its activity in m.
func WithHubMetrics(m *Metrics) HubOption {
	return func(h *Hub) { h.metrics = m }
}

// Hub fans events out to subscriptions by generation id and by user id.
// Publish never blocks on a slow subscriber: each subscription buffers its
// pending events, coalesced per generation, until the reader drains them.
// The zero value is not usable; create one with NewHub.
type Hub struct {
	mu      sync.RWMutex
	byGen   map[uuid.UUID]map[*Subscription]struct{}
	byUser  map[uuid.UUID]map[*Subscription]struct{}
	metrics *Metrics
}

// NewHub returns an empty Hub.
func NewHub(opts ...HubOption) *Hub {
	h := &Hub{
		byGen:  make(map[uuid.UUID]map[*Subscription]struct{}),
		byUser: make(map[uuid.UUID]map[*Subscription]struct{}),
	}
	for _, opt := range opts {
		opt(h)
	}
	return h
}

// Publish delivers e to the subscriptions watching its generation and to those
// watching its user. It does not wait for any reader.
func (h *Hub) Publish(e generation.Event) {
	h.metrics.incPublished()
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.byGen[e.GenerationID] {
		s.push(e)
	}
	if e.UserID != uuid.Nil {
		for s := range h.byUser[e.UserID] {
			s.push(e)
		}
	}
}

// SubscribeGeneration returns a subscription to the changes of one
// generation. The caller must Close it.
func (h *Hub) SubscribeGeneration(id uuid.UUID) *Subscription {
	return h.subscribe(h.byGen, id, nil)
}

// SubscribeUser returns a subscription to the changes of every generation of
// one user. The caller must Close it.
func (h *Hub) SubscribeUser(userID uuid.UUID) *Subscription {
	return h.subscribe(h.byUser, userID, nil)
}

// SubscribeGenerationFunc is SubscribeGeneration for a reader with no
// goroutine waiting on Ready: notify is called, on the publisher's
// goroutine and without blocking it for long, each time events become
// pending (whenever Ready would be signalled).
func (h *Hub) SubscribeGenerationFunc(id uuid.UUID, notify func()) *Subscription {
	return h.subscribe(h.byGen, id, notify)
}

// SubscribeUserFunc is SubscribeUser with notify, as for
// SubscribeGenerationFunc.
func (h *Hub) SubscribeUserFunc(userID uuid.UUID, notify func()) *Subscription {
	return h.subscribe(h.byUser, userID, notify)
}

func (h *Hub) subscribe(index map[uuid.UUID]map[*Subscription]struct{}, key uuid.UUID, notify func()) *Subscription {
	s := &Subscription{
		hub:    h,
		index:  index,
		key:    key,
		notify: notify,
		ready:  make(chan struct{}, 1),
	}
	h.mu.Lock()
	subs := index[key]
	if subs == nil {
		subs = make(map[*Subscription]struct{})
		index[key] = subs
	}
	subs[s] = struct{}{}
	h.mu.Unlock()
	h.metrics.addSubscriptions(1)
	return s
}

func (h *Hub) unsubscribe(s *Subscription) {
	h.mu.Lock()
	if subs := s.index[s.key]; subs != nil {
		delete(subs, s)
		if len(subs) == 0 {
			delete(s.index, s.key)
		}
	}
	h.mu.Unlock()
	h.metrics.addSubscriptions(-1)
}

// Generations returns the ids of the generations that have at least one
// subscriber, so that state missed while the listener was disconnected can be
// re-read and published.
func (h *Hub) Generations() []uuid.UUID {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return keys(h.byGen)
}

// Users returns the ids of the users that have at least one subscriber, for
// the same resynchronisation as Generations.
func (h *Hub) Users() []uuid.UUID {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return keys(h.byUser)
}

func keys(m map[uuid.UUID]map[*Subscription]struct{}) []uuid.UUID {
	out := make([]uuid.UUID, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Subscription buffers the events a Hub delivers to one reader. The reader
// waits on Ready and then calls Drain. Pending events of one generation are
// coalesced: an event with the same status as that generation's latest
// pending event replaces it, while a status change is appended, so the reader
// sees every status transition in order and the latest progress of each.
type Subscription struct {
	hub   *Hub
	index map[uuid.UUID]map[*Subscription]struct{}
	key   uuid.UUID
	ready chan struct{}
	// notify, when set, is called each time ready is signalled.
	notify func()

	mu      sync.Mutex
	closed  bool
	pending []generation.Event
	// last is the index in pending of each generation's latest pending
	// event, and count the number of pending events per generation.
	last  map[uuid.UUID]int
	count map[uuid.UUID]int
}

// Ready returns a channel that receives a value when events are pending. It
// has capacity one: several events arriving before the reader wakes up are
// signalled once, and Drain returns them all.
func (s *Subscription) Ready() <-chan struct{} {
	return s.ready
}

// Drain removes and returns the pending events in order. It returns nil when
// nothing is pending or the subscription is closed.
func (s *Subscription) Drain() []generation.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.pending
	// Dropped rather than cleared: an idle subscription (most of them, at
	// any time) then holds no index.
	s.pending, s.last, s.count = nil, nil, nil
	// Consume a signal for the events just taken, under the lock that push
	// also signals under, so a reader is not woken up for nothing and no
	// signal for a later event is lost.
	select {
	case <-s.ready:
	default:
	}
	return out
}

// Close unsubscribes and discards pending events. It is idempotent and safe
// to call concurrently with Publish.
func (s *Subscription) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.pending = nil
	s.last = nil
	s.count = nil
	s.mu.Unlock()
	s.hub.unsubscribe(s)
}

func (s *Subscription) push(e generation.Event) {
	var coalesced, dropped, signalled bool
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if s.last == nil {
		s.last, s.count = make(map[uuid.UUID]int), make(map[uuid.UUID]int)
	}
	if i, ok := s.last[e.GenerationID]; ok && s.pending[i].Status == e.Status {
		s.pending[i] = e
		coalesced = true
	} else {
		if s.count[e.GenerationID] >= MaxPendingPerGeneration {
			s.dropOldestLocked(e.GenerationID)
			dropped = true
		}
		s.pending = append(s.pending, e)
		s.last[e.GenerationID] = len(s.pending) - 1
		s.count[e.GenerationID]++
	}
	select {
	case s.ready <- struct{}{}:
		signalled = true
	default:
	}
	s.mu.Unlock()

	if signalled && s.notify != nil {
		s.notify()
	}
	if coalesced {
		s.hub.metrics.incCoalesced()
	}
	if dropped {
		s.hub.metrics.incDropped()
	}
}

// dropOldestLocked removes the oldest pending event of generation id. It is
// rare (see MaxPendingPerGeneration), so it simply rebuilds the index.
func (s *Subscription) dropOldestLocked(id uuid.UUID) {
	for i, e := range s.pending {
		if e.GenerationID == id {
			s.pending = append(s.pending[:i], s.pending[i+1:]...)
			break
		}
	}
	s.count[id]--
	clear(s.last)
	for i, e := range s.pending {
		s.last[e.GenerationID] = i
	}
}
