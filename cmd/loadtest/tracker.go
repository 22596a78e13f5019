package main

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// tracker matches the progress updates the writers commit with the events
// the subscribers receive, one generation per subscriber.
//
// An update counts as delivered when its generation's subscriber receives an
// event with the same or a later progress: the server may legitimately
// coalesce intermediate progress values for a client that falls behind, and
// the later event then carries the earlier update's effect. Its latency runs
// from the commit (the moment the writer's Exec returned) to the receipt of
// the first event that covered it. An update is delivered exactly when an
// event with precisely its progress arrived.
//
// Commit and receipt race: a client can receive the event before the writer
// goroutine that committed the update gets to record the commit time. The
// tracker therefore accepts both in either order and clamps such latencies to
// zero, counting them as early.
type tracker struct {
	gens      []genTrack
	snapshots atomic.Int64
}

// genTrack is one generation's record. Updates of one generation are
// committed in progress order (a generation always goes through the same
// writer), and its events arrive in order on one socket, so both lists are
// sorted by time.
type genTrack struct {
	mu       sync.Mutex
	snapshot bool
	updates  []trackedUpdate
	receipts []receipt
	// next indexes the first update not yet delivered; delivered updates
	// always form a prefix because a receipt covers every earlier progress.
	next int
}

type trackedUpdate struct {
	progress  int
	committed time.Time
	delivered time.Time
}

type receipt struct {
	progress int
	at       time.Time
}

func newTracker(generations int) *tracker {
	return &tracker{gens: make([]genTrack, generations)}
}

// committed records that generation gen's progress was set to progress and
// committed at at.
func (t *tracker) committed(gen, progress int, at time.Time) {
	g := &t.gens[gen]
	g.mu.Lock()
	defer g.mu.Unlock()
	u := trackedUpdate{progress: progress, committed: at}
	// The event may already be here.
	for _, r := range g.receipts {
		if r.progress >= progress {
			u.delivered = r.at
			break
		}
	}
	g.updates = append(g.updates, u)
	if !u.delivered.IsZero() {
		g.next = len(g.updates)
	}
}

// received records an event of generation gen with progress, received at
// at. The first event of each generation is its snapshot, which counts in
// t.snapshots.
func (t *tracker) received(gen, progress int, at time.Time) {
	g := &t.gens[gen]
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.snapshot {
		g.snapshot = true
		t.snapshots.Add(1)
	}
	g.receipts = append(g.receipts, receipt{progress: progress, at: at})
	for g.next < len(g.updates) && g.updates[g.next].progress <= progress {
		g.updates[g.next].delivered = at
		g.next++
	}
}

// outstanding counts the committed updates not yet delivered.
func (t *tracker) outstanding() int {
	n := 0
	for i := range t.gens {
		g := &t.gens[i]
		g.mu.Lock()
		n += len(g.updates) - g.next
		g.mu.Unlock()
	}
	return n
}

// deliveryStats summarises what the tracker saw.
type deliveryStats struct {
	// Expected counts committed updates; Delivered those covered by an
	// event with the same or a later progress; Exact those whose own
	// progress value arrived; Early those whose event arrived before the
	// writer recorded the commit (latency clamped to zero).
	Expected, Delivered, Exact, Early int
	// Events counts every event received after the snapshots.
	Events int
	// Latency holds the commit-to-receipt latencies of delivered updates.
	Latency latencySummary
}

func (t *tracker) stats() deliveryStats {
	var s deliveryStats
	latencies := make([]time.Duration, 0, 1024)
	for i := range t.gens {
		g := &t.gens[i]
		g.mu.Lock()
		s.Expected += len(g.updates)
		if len(g.receipts) > 0 {
			s.Events += len(g.receipts) - 1
		}
		for _, u := range g.updates {
			if u.delivered.IsZero() {
				continue
			}
			s.Delivered++
			d := u.delivered.Sub(u.committed)
			if d < 0 {
				d = 0
				s.Early++
			}
			latencies = append(latencies, d)
			if slices.ContainsFunc(g.receipts, func(r receipt) bool { return r.progress == u.progress }) {
				s.Exact++
			}
		}
		g.mu.Unlock()
	}
	s.Latency = summarize(latencies)
	return s
}

// latencySummary is the distribution of a set of latencies.
type latencySummary struct {
	N                  int
	P50, P90, P99, Max time.Duration
	Mean               time.Duration
}

// summarize sorts ds in place and returns its percentiles.
func summarize(ds []time.Duration) latencySummary {
	s := latencySummary{N: len(ds)}
	if len(ds) == 0 {
		return s
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	s.Mean = sum / time.Duration(len(ds))
	s.P50 = percentile(ds, 0.50)
	s.P90 = percentile(ds, 0.90)
	s.P99 = percentile(ds, 0.99)
	s.Max = ds[len(ds)-1]
	return s
}

// percentile returns the nearest-rank q-quantile of sorted: the smallest
// value that at least q of the values do not exceed.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}
