// Package pacer sets the garbage collector's pace for a server whose live
// heap ranges from a few megabytes (answering queries) to hundreds (holding
// tens of thousands of idle subscriptions).
//
// Go's default, GOGC=100, lets garbage grow to the size of the live heap
// before collecting. For a small live heap that means collecting very
// often: answering queries, a third of the server's CPU went to allocation
// and marking, and GOGC=400 cut the CPU per request by 20 to 35 per cent.
// For a large live heap the same percentage multiplies memory: with 10,000
// idle subscriptions, GOGC=400 would let the process grow to five times
// what the subscriptions hold. So the pacer gives garbage a fixed
// allowance rather than a fixed ratio: it sets the GC percentage after
// each look at the live heap so that garbage may grow by about Headroom,
// never more than MaxPercent of the live heap and never less than
// MinPercent of it.
package pacer

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Settings bound the pace. The zero value is replaced by Defaults.
type Settings struct {
	// Headroom is the garbage the heap may gather between collections
	// while MinPercent and MaxPercent allow it.
	Headroom uint64
	// MinPercent and MaxPercent bound the GC percentage.
	MinPercent, MaxPercent int
	// Every is how often the live heap is read.
	Every time.Duration
	// IdleRelease is how long the collector may stay idle, with a heap of
	// more than Headroom, before the pacer collects and returns the free
	// memory to the system; 0 never does.
	IdleRelease time.Duration
}

// Defaults: 64 MiB of garbage, between 100 % (Go's default, for large
// heaps: tens of thousands of subscriptions) and 400 % (small heaps: query
// serving) of the live heap, read every second. A floor of 50 % saved 3 KB
// of memory per idle subscription, but the collections it adds, marking a
// large heap more often, tripled the slowest deliveries' latency under
// 1,000 events a second (fan-out p99 74 ms against 42 ms).
//
// A process that goes quiet after a load (10,000 subscribers gone) would
// keep its memory: with nothing allocated no collection runs, so the
// runtime still plans for the old live heap and returns nothing (195 MB
// stayed at least 90 s after the fan-out tool left). After 30 s without a
// collection over a heap larger than the headroom, the pacer collects and
// returns the free memory at once. A heap that is really that large (idle
// subscriptions) costs one collection each 30 s.
func Defaults() Settings {
	return Settings{Headroom: 64 << 20, MinPercent: 100, MaxPercent: 400, Every: time.Second, IdleRelease: 30 * time.Second}
}

// Percent is the GC percentage that lets garbage grow by s.Headroom over a
// live heap of live bytes, within the bounds.
func (s Settings) Percent(live uint64) int {
	if live == 0 {
		return s.MaxPercent
	}
	p := s.Headroom * 100 / live
	return int(min(max(p, uint64(s.MinPercent)), uint64(s.MaxPercent)))
}

// The runtime metrics the pacer reads.
const (
	liveHeap   = "/gc/heap/live:bytes"
	heapInUse  = "/memory/classes/heap/objects:bytes"
	collection = "/gc/cycles/total:gc-cycles"
)

// Run paces the collector until ctx ends, then restores the percentage it
// found. It does nothing when GOGC is set: the operator has chosen.
func Run(ctx context.Context, s Settings, logger *slog.Logger) {
	if _, set := os.LookupEnv("GOGC"); set {
		logger.Info("GOGC is set: the garbage collector's pace is left to it")
		return
	}
	if s == (Settings{}) {
		s = Defaults()
	}
	sample := []metrics.Sample{{Name: liveHeap}, {Name: heapInUse}, {Name: collection}}
	read := func(i int) uint64 {
		if sample[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return sample[i].Value.Uint64()
	}
	metrics.Read(sample)
	current := s.Percent(read(0))
	found := debug.SetGCPercent(current)
	defer debug.SetGCPercent(found)
	cycles, lastCycle := read(2), time.Now()
	t := time.NewTicker(s.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			metrics.Read(sample)
			if p := s.Percent(read(0)); p != current {
				debug.SetGCPercent(p)
				current = p
			}
			if c := read(2); c != cycles {
				cycles, lastCycle = c, now
				continue
			}
			if s.IdleRelease > 0 && now.Sub(lastCycle) >= s.IdleRelease && read(1) > s.Headroom {
				debug.FreeOSMemory()
				lastCycle = time.Now()
			}
		}
	}
}
