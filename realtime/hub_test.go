package realtime_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/realtime"
)

var (
	genA  = uuid.MustParse("00000000-0000-0000-0000-00000000000a")
	genB  = uuid.MustParse("00000000-0000-0000-0000-00000000000b")
	genC  = uuid.MustParse("00000000-0000-0000-0000-00000000000c")
	userX = uuid.MustParse("00000000-0000-0000-0000-0000000000f1")
	userY = uuid.MustParse("00000000-0000-0000-0000-0000000000f2")
)

// ev builds an event; progress doubles as a marker that tells events apart.
func ev(gen, user uuid.UUID, status generation.Status, progress int) generation.Event {
	return generation.Event{
		GenerationID: gen,
		UserID:       user,
		Status:       status,
		Progress:     progress,
		UpdatedAt:    time.Date(2026, 11, 24, 10, 0, 0, progress*1000, time.UTC),
	}
}

const (
	pending    = generation.Pending
	inProgress = generation.InProgress
	completed  = generation.Completed
	failed     = generation.Failed
)

func TestSubscriptionCoalescing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		byUser    bool
		published []generation.Event
		want      []generation.Event
	}{
		{
			name:      "same status collapses into the latest",
			published: []generation.Event{ev(genA, userX, inProgress, 10), ev(genA, userX, inProgress, 20), ev(genA, userX, inProgress, 30)},
			want:      []generation.Event{ev(genA, userX, inProgress, 30)},
		},
		{
			name:      "status change is kept",
			published: []generation.Event{ev(genA, userX, pending, 0), ev(genA, userX, inProgress, 5)},
			want:      []generation.Event{ev(genA, userX, pending, 0), ev(genA, userX, inProgress, 5)},
		},
		{
			name: "statuses in order, each with its latest progress",
			published: []generation.Event{
				ev(genA, userX, pending, 0), ev(genA, userX, pending, 1),
				ev(genA, userX, inProgress, 10), ev(genA, userX, inProgress, 50),
				ev(genA, userX, completed, 100),
			},
			want: []generation.Event{ev(genA, userX, pending, 1), ev(genA, userX, inProgress, 50), ev(genA, userX, completed, 100)},
		},
		{
			name: "a recurring status starts a new entry",
			published: []generation.Event{
				ev(genA, userX, inProgress, 10), ev(genA, userX, pending, 11),
				ev(genA, userX, inProgress, 20), ev(genA, userX, inProgress, 30),
			},
			want: []generation.Event{ev(genA, userX, inProgress, 10), ev(genA, userX, pending, 11), ev(genA, userX, inProgress, 30)},
		},
		{
			name:      "only the subscribed generation",
			published: []generation.Event{ev(genB, userX, inProgress, 1), ev(genA, userX, failed, 2), ev(genC, userX, pending, 3)},
			want:      []generation.Event{ev(genA, userX, failed, 2)},
		},
		{
			name:   "user subscription coalesces per generation",
			byUser: true,
			published: []generation.Event{
				ev(genA, userX, inProgress, 10), ev(genB, userX, inProgress, 5),
				ev(genA, userX, inProgress, 20), ev(genB, userX, completed, 100),
				ev(genC, userY, inProgress, 7),
			},
			want: []generation.Event{ev(genA, userX, inProgress, 20), ev(genB, userX, inProgress, 5), ev(genB, userX, completed, 100)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := realtime.NewHub()
			var sub *realtime.Subscription
			if tt.byUser {
				sub = h.SubscribeUser(userX)
			} else {
				sub = h.SubscribeGeneration(genA)
			}
			defer sub.Close()
			for _, e := range tt.published {
				h.Publish(e)
			}
			assertReady(t, sub, len(tt.want) > 0)
			if got := sub.Drain(); !slices.Equal(got, tt.want) {
				t.Fatalf("drained\n%v\nwant\n%v", got, tt.want)
			}
			assertReady(t, sub, false)
			if got := sub.Drain(); got != nil {
				t.Fatalf("second drain returned %v, want nothing", got)
			}
		})
	}
}

// assertReady checks, without waiting, whether the subscription signals
// pending events.
func assertReady(t *testing.T, sub *realtime.Subscription, want bool) {
	t.Helper()
	select {
	case <-sub.Ready():
		if !want {
			t.Fatal("Ready signalled with nothing pending")
		}
	default:
		if want {
			t.Fatal("Ready not signalled with events pending")
		}
	}
}

func TestSubscriptionBoundedWhenNeverDrained(t *testing.T) {
	t.Parallel()
	h := realtime.NewHub()
	genSub := h.SubscribeGeneration(genA)
	defer genSub.Close()
	userSub := h.SubscribeUser(userX)
	defer userSub.Close()

	// Publish returns although nobody reads; a blocking Publish would hang
	// the test here.
	statuses := []generation.Status{pending, inProgress}
	for i := range 10_000 {
		h.Publish(ev(genA, userX, statuses[(i/100)%2], i))
		h.Publish(ev(genB, userX, inProgress, i))
	}
	h.Publish(ev(genA, userX, completed, 10_000))

	got := genSub.Drain()
	if len(got) > realtime.MaxPendingPerGeneration {
		t.Fatalf("generation subscription holds %d events, want at most %d", len(got), realtime.MaxPendingPerGeneration)
	}
	if last := got[len(got)-1]; last != ev(genA, userX, completed, 10_000) {
		t.Fatalf("last event %v, want the terminal one", last)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Status == got[i-1].Status || got[i].Progress <= got[i-1].Progress {
			t.Fatalf("events %v and %v are not distinct statuses in order", got[i-1], got[i])
		}
	}

	got = userSub.Drain()
	if len(got) > 2*realtime.MaxPendingPerGeneration {
		t.Fatalf("user subscription holds %d events, want at most %d", len(got), 2*realtime.MaxPendingPerGeneration)
	}
	var lastB generation.Event
	for _, e := range got {
		if e.GenerationID == genB {
			lastB = e
		}
	}
	if lastB != ev(genB, userX, inProgress, 9_999) {
		t.Fatalf("latest event of the second generation is %v", lastB)
	}
}

func TestSubscriptionClose(t *testing.T) {
	t.Parallel()
	h := realtime.NewHub()
	a1 := h.SubscribeGeneration(genA)
	a2 := h.SubscribeGeneration(genA)
	b := h.SubscribeGeneration(genB)
	u := h.SubscribeUser(userX)
	defer b.Close()

	h.Publish(ev(genA, userX, pending, 0))
	a1.Close()
	a1.Close()
	h.Publish(ev(genA, userX, inProgress, 1))

	if got := a1.Drain(); got != nil {
		t.Fatalf("closed subscription drained %v", got)
	}
	if got := a2.Drain(); len(got) != 2 {
		t.Fatalf("remaining subscriber drained %v, want both events", got)
	}
	if got := sorted(h.Generations()); !slices.Equal(got, []uuid.UUID{genA, genB}) {
		t.Fatalf("generations %v while genA still has a subscriber", got)
	}
	a2.Close()
	u.Close()
	u.Close()
	if got := h.Generations(); !slices.Equal(got, []uuid.UUID{genB}) {
		t.Fatalf("generations %v, want only %v", got, genB)
	}
	if got := h.Users(); len(got) != 0 {
		t.Fatalf("users %v after the only user subscription closed", got)
	}
}

func sorted(ids []uuid.UUID) []uuid.UUID {
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	return ids
}

func TestHubConcurrentPublishersAndReaders(t *testing.T) {
	t.Parallel()
	h := realtime.NewHub()
	gens := []uuid.UUID{genA, genB, genC}
	const perGen = 2000

	subs := make([]*realtime.Subscription, 0, 8)
	for range 4 {
		subs = append(subs, h.SubscribeUser(userX))
	}
	for _, g := range gens {
		subs = append(subs, h.SubscribeGeneration(g))
	}

	var publishers, readers sync.WaitGroup
	done := make(chan struct{})
	lastSeen := make([]map[uuid.UUID]generation.Event, len(subs))
	for i, sub := range subs {
		lastSeen[i] = make(map[uuid.UUID]generation.Event)
		readers.Go(func() {
			consume := func() {
				for _, e := range sub.Drain() {
					if prev, ok := lastSeen[i][e.GenerationID]; ok && e.Progress <= prev.Progress {
						t.Errorf("event %v after %v: out of order", e, prev)
					}
					lastSeen[i][e.GenerationID] = e
				}
			}
			for {
				select {
				case <-sub.Ready():
					consume()
				case <-done:
					consume()
					return
				}
			}
		})
	}
	for _, g := range gens {
		publishers.Go(func() {
			for i := 1; i <= perGen; i++ {
				status := inProgress
				if i == perGen {
					status = completed
				}
				h.Publish(ev(g, userX, status, i))
			}
		})
	}
	publishers.Wait()
	close(done)
	readers.Wait()

	for i, sub := range subs {
		sub.Close()
		for _, g := range gens {
			e, ok := lastSeen[i][g]
			if i >= 4 && g != gens[i-4] {
				if ok {
					t.Errorf("subscription to %v got an event of %v", gens[i-4], g)
				}
				continue
			}
			if e != ev(g, userX, completed, perGen) {
				t.Errorf("subscription %d: last event of %v is %v, want the terminal one", i, g, e)
			}
		}
	}
}

func TestHubMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := realtime.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := realtime.NewMetrics(reg); err == nil {
		t.Fatal("registering the metrics twice on one registry succeeded")
	}
	h := realtime.NewHub(realtime.WithHubMetrics(m))
	sub := h.SubscribeGeneration(genA)
	h.Publish(ev(genA, userX, inProgress, 1))
	h.Publish(ev(genA, userX, inProgress, 2))
	h.Publish(ev(genA, userX, completed, 3))
	h.Publish(ev(genB, userX, completed, 3))

	want := map[string]float64{
		"narrate_realtime_events_published_total": 4,
		"narrate_realtime_events_coalesced_total": 1,
		"narrate_realtime_active_subscriptions":   1,
	}
	for name, value := range want {
		if got := gather(t, reg, name); got != value {
			t.Errorf("%s = %v, want %v", name, got, value)
		}
	}
	sub.Close()
	sub.Close()
	if got := gather(t, reg, "narrate_realtime_active_subscriptions"); got != 0 {
		t.Errorf("subscriptions = %v after close, want 0", got)
	}
}

// gather returns the value of the single-series counter or gauge name.
func gather(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		metric := f.GetMetric()[0]
		if c := metric.GetCounter(); c != nil {
			return c.GetValue()
		}
		return metric.GetGauge().GetValue()
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// TestSubscribeCloseLeavesNothing is not parallel so that goleak sees only
// what this test started.
func TestSubscribeCloseLeavesNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := realtime.NewHub()
	for i := range 1000 {
		id := uuid.New()
		g := h.SubscribeGeneration(id)
		u := h.SubscribeUser(userX)
		h.Publish(ev(id, userX, inProgress, i))
		if len(g.Drain()) != 1 {
			t.Fatal("subscription missed its event")
		}
		g.Close()
		u.Close()
	}
	if n := len(h.Generations()); n != 0 {
		t.Fatalf("%d generations still indexed after every subscription closed", n)
	}
	if n := len(h.Users()); n != 0 {
		t.Fatalf("%d users still indexed after every subscription closed", n)
	}
}
