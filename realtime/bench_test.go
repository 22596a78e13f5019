package realtime_test

// Benchmarks of the hub, the in-process part of the realtime path:
//
//	go test -run '^$' -bench . -benchmem ./realtime/
//
// The end-to-end path (PostgreSQL commit to websocket client) is measured by
// BenchmarkSubscriptionEvent in package api and by the shared fan-out tool
// (docs/performance.md).

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/realtime"
)

// benchEvent is an IN_PROGRESS change of generation gen of user.
func benchEvent(gen, user uuid.UUID, progress int) generation.Event {
	return generation.Event{
		GenerationID: gen,
		UserID:       user,
		Status:       generation.InProgress,
		Progress:     progress,
		UpdatedAt:    time.Unix(0, int64(progress)),
		ReceivedAt:   time.Now(),
	}
}

// BenchmarkHubPublishFanout publishes changes of one generation watched by
// n subscriptions that do not read: every push after the first coalesces
// into the pending event, so this is the steady cost of a hot generation.
func BenchmarkHubPublishFanout(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			hub := realtime.NewHub()
			gen, user := uuid.New(), uuid.New()
			subs := make([]*realtime.Subscription, n)
			for i := range subs {
				subs[i] = hub.SubscribeGeneration(gen)
			}
			b.Cleanup(func() {
				for _, s := range subs {
					s.Close()
				}
			})
			// The first push allocates each subscription's pending list;
			// measure the steady state after it.
			hub.Publish(benchEvent(gen, user, 0))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				hub.Publish(benchEvent(gen, user, i))
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
			if got := subs[n-1].Drain(); len(got) != 1 || got[0].Progress != b.N-1 {
				b.Fatalf("last subscription holds %v, want the latest event only", got)
			}
		})
	}
}

// BenchmarkHubPublishSpread publishes round-robin to many generations with
// one subscription each, the shape of the fan-out tool: the cost is the index
// lookup and one push, whatever the number of idle subscriptions.
func BenchmarkHubPublishSpread(b *testing.B) {
	for _, n := range []int{100, 10000, 100000} {
		b.Run(fmt.Sprintf("generations=%d", n), func(b *testing.B) {
			hub := realtime.NewHub()
			gens := make([]uuid.UUID, n)
			subs := make([]*realtime.Subscription, n)
			for i := range gens {
				gens[i] = uuid.New()
				subs[i] = hub.SubscribeGeneration(gens[i])
			}
			b.Cleanup(func() {
				for _, s := range subs {
					s.Close()
				}
			})
			user := uuid.New()
			for _, gen := range gens {
				hub.Publish(benchEvent(gen, user, 0))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				hub.Publish(benchEvent(gens[i%n], user, i))
			}
		})
	}
}

// BenchmarkHubDeliver measures publish to reader: n subscriptions, each
// drained by its own goroutine as a subscription stream does, receive
// events published round-robin; an op is one event published and drained.
// Coalescing may merge events a reader has not drained yet, so the
// benchmark waits for the last event of every generation rather than for a
// count.
func BenchmarkHubDeliver(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			hub := realtime.NewHub()
			user := uuid.New()
			gens := make([]uuid.UUID, n)
			// latest[i] is the highest progress reader i has drained.
			latest := make([]atomic.Int64, n)
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for i := range gens {
				gens[i] = uuid.New()
				latest[i].Store(-1)
				sub := hub.SubscribeGeneration(gens[i])
				wg.Go(func() {
					defer sub.Close()
					for {
						select {
						case <-stop:
							return
						case <-sub.Ready():
						}
						for _, e := range sub.Drain() {
							latest[i].Store(int64(e.Progress))
						}
					}
				})
			}
			b.ReportAllocs()
			b.ResetTimer()
			for k := range b.N {
				hub.Publish(benchEvent(gens[k%n], user, k))
			}
			// The last event of generation i has progress last(i).
			for i := range min(n, b.N) {
				want := int64(b.N - 1 - (b.N-1-i)%n)
				for latest[i].Load() != want {
					time.Sleep(10 * time.Microsecond)
				}
			}
			b.StopTimer()
			close(stop)
			wg.Wait()
		})
	}
}
