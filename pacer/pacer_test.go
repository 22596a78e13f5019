package pacer

import (
	"context"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	t.Parallel()
	s := Defaults()
	tests := []struct {
		name string
		live uint64
		want int
	}{
		{"no heap yet", 0, 400},
		{"small heap: the most garbage the bounds allow", 4 << 20, 400},
		{"16 MiB: 64 MiB of garbage is 400 %", 16 << 20, 400},
		{"32 MiB: 200 %", 32 << 20, 200},
		{"64 MiB: 100 %", 64 << 20, 100},
		{"128 MiB: never below the floor", 128 << 20, 100},
		{"large heap: never below the floor", 1 << 30, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := s.Percent(tt.live); got != tt.want {
				t.Errorf("Percent(%d) = %d, want %d", tt.live, got, tt.want)
			}
		})
	}
}

// TestRunSetsAndRestores: Run sets the percentage for the live heap while
// it runs and restores the one it found when its context ends. Not
// parallel: the GC percentage belongs to the process.
func TestRunSetsAndRestores(t *testing.T) {
	// The live heap is known after a collection. A headroom no live heap
	// can reach then pins the percentage at the floor.
	stop := startPacer(t, Settings{Headroom: 1, MinPercent: 70, MaxPercent: 300, Every: time.Millisecond})
	waitUntil(t, func() bool { return gcPercent() == 70 }, "Run did not set the GC percentage to its floor")
	stop()
	if got := gcPercent(); got != 100 {
		t.Errorf("GC percentage after Run = %d, want the 100 it found", got)
	}
}

// gcPercent reads the GC percentage without changing it.
func gcPercent() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

func TestRunLeavesGOGCToTheOperator(t *testing.T) {
	t.Setenv("GOGC", "150")
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	Run(context.Background(), Settings{Headroom: 1, MinPercent: 70, MaxPercent: 300, Every: time.Millisecond},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if got := gcPercent(); got != 100 {
		t.Errorf("GC percentage = %d, want it untouched (100) with GOGC set", got)
	}
}

// TestRunReleasesAfterIdle: a heap larger than the headroom that no
// collection has visited for IdleRelease is collected and its free
// memory returned. Not parallel: the collector belongs to the process.
func TestRunReleasesAfterIdle(t *testing.T) {
	// 8 MiB held across the test keeps the heap above a 1 MiB headroom.
	held := make([]byte, 8<<20)
	start := collections()
	stop := startPacer(t, Settings{Headroom: 1 << 20, MinPercent: 100, MaxPercent: 100, Every: time.Millisecond, IdleRelease: 20 * time.Millisecond})
	waitUntil(t, func() bool { return collections() >= start+2 }, "an idle heap larger than the headroom was not collected")
	stop()
	runtime.KeepAlive(held)
}

// startPacer runs the pacer with s after a collection (so the live heap
// is known), with GOGC unset and the GC percentage at 100, both restored
// when the test ends. The returned function stops it and waits.
func startPacer(t *testing.T, s Settings) (stop func()) {
	t.Helper()
	// Run must see GOGC unset to act; t.Setenv restores it afterwards.
	t.Setenv("GOGC", "")
	os.Unsetenv("GOGC")
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	runtime.GC()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); Run(ctx, s, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// waitUntil fails the test unless cond holds within 5 s.
func waitUntil(t *testing.T, cond func() bool, failure string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(failure)
		}
		time.Sleep(time.Millisecond)
	}
}

func collections() uint64 {
	s := []metrics.Sample{{Name: collection}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
