package worker

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/recovery/recoverytest"
	"github.com/narrate/narrate/voice"
)

// panickySynthesizer panics on the calls panicOn picks (numbered from 1)
// and passes the others on.
type panickySynthesizer struct {
	Synthesizer
	panicOn func(call int) bool

	mu    sync.Mutex
	calls int
}

func (p *panickySynthesizer) Synthesize(ctx context.Context, req voice.SynthesisRequest) (*voice.Audio, error) {
	p.mu.Lock()
	p.calls++
	n, fault := p.calls, p.panicOn(p.calls)
	p.mu.Unlock()
	if fault {
		panic(fmt.Sprintf("synthesizer bug on call %d", n))
	}
	return p.Synthesizer.Synthesize(ctx, req)
}

// TestPanicInJobIsContained: a panic in a job costs that attempt only. The
// worker lives on, counts the panic, and the generation is retried as any
// interrupted one is (its lease expires and it is claimed again), so a
// passing panic costs a retry and a recurring one fails the generation
// after maxAttempts claims.
func TestPanicInJobIsContained(t *testing.T) {
	t.Parallel()
	reclaimed := "claimed: attempt 2, the previous worker stopped renewing its lease"
	tests := []struct {
		name     string
		panicOn  func(call int) bool
		status   generation.Status
		panics   float64
		outcomes map[Outcome]int
		logs     func(chunks int) []string
	}{
		{
			name:     "once",
			panicOn:  func(call int) bool { return call == 1 },
			status:   generation.Completed,
			panics:   1,
			outcomes: map[Outcome]int{OutcomeAbandoned: 1, OutcomeCompleted: 1},
			logs: func(chunks int) []string {
				return append(append([]string{"claimed", reclaimed}, chunkLogs(chunks)...), "completed")
			},
		},
		{
			name:     "every time",
			panicOn:  func(int) bool { return true },
			status:   generation.Failed,
			panics:   maxAttempts,
			outcomes: map[Outcome]int{OutcomeAbandoned: maxAttempts, OutcomeFailed: 1},
			logs: func(int) []string {
				return []string{"claimed", reclaimed,
					"claimed: attempt 3, the previous worker stopped renewing its lease",
					"claimed: attempt 4, the previous worker stopped renewing its lease",
					"failed: gave up after 3 attempts: each worker stopped before finishing"}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			panics := recoverytest.Metrics(t)
			synth := &panickySynthesizer{Synthesizer: e.el.client(t), panicOn: tt.panicOn}
			w := e.run(e.newWorker(func(c *Config) { c.Provider, c.Panics = synth, panics }))
			id := e.start(e.story("The Fox", longStory))

			s := e.waitStatus(id, tt.status)
			if want := tt.logs(len(chunksOf(longStory))); !slices.Equal(s.Logs, want) {
				t.Errorf("logs = %q, want %q", s.Logs, want)
			}
			for o, n := range tt.outcomes {
				e.waitOutcome(w, o, n)
			}
			if got := panics.Count("worker"); got != tt.panics {
				t.Errorf("narrate_panics_total{where=worker} = %v, want %v", got, tt.panics)
			}

			// The worker still works: the next generation is narrated
			// by the provider behind the fault.
			synth.mu.Lock()
			synth.panicOn = func(int) bool { return false }
			synth.mu.Unlock()
			next := e.start(e.story("The Hen", "One sentence."))
			e.waitStatus(next, generation.Completed)
		})
	}
}
