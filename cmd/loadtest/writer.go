package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// maxProgress is the largest progress the schema allows.
const maxProgress = 100

// errTooManyUpdates is returned when the run would push some generation's
// progress past maxProgress.
var errTooManyUpdates = errors.New("too many updates per generation")

// update is one progress change: generation index and new progress.
type update struct {
	gen, progress int
}

// plan spreads total updates round-robin over n generations: update k sets
// generation k mod n to progress k/n + 1, so each generation's progress
// rises by one per round and consecutive updates of one generation are n
// updates apart.
type plan struct {
	n, total int
}

func newPlan(generations int, rate float64, duration time.Duration) (plan, error) {
	p := plan{n: generations, total: int(rate * duration.Seconds())}
	if p.n <= 0 || p.total <= 0 {
		return plan{}, fmt.Errorf("plan: %d generations, %d updates: nothing to do", p.n, p.total)
	}
	if rounds := (p.total + p.n - 1) / p.n; rounds > maxProgress {
		return plan{}, fmt.Errorf("%w: %d updates over %d generations need progress up to %d (max %d): more subscribers or a shorter run",
			errTooManyUpdates, p.total, p.n, rounds, maxProgress)
	}
	return p, nil
}

func (p plan) update(k int) update {
	return update{gen: k % p.n, progress: k/p.n + 1}
}

// updateSQL is the single-row write the worker would make.
const updateSQL = `UPDATE story_generations SET progress = $2 WHERE id = $1`

// driveResult is what the write phase achieved.
type driveResult struct {
	committed, failed int
	start, end        time.Time
	firstErr          error
}

// drive runs the plan at rate updates per second through the writers'
// connections and records each commit in tr. Each generation always goes
// through the same writer, so its updates commit in progress order. It
// returns when every update is committed, or ctx is done.
func drive(ctx context.Context, conns []*pgx.Conn, ids []uuid.UUID, p plan, rate float64, tr *tracker) driveResult {
	var (
		committed, failed atomic.Int64
		errOnce           sync.Once
		firstErr          error
		wg                sync.WaitGroup
	)
	queues := make([]chan update, len(conns))
	for w, conn := range conns {
		// A queue of about a second of updates absorbs a writer's hiccup
		// without the schedule slipping.
		queues[w] = make(chan update, int(rate)/len(conns)+16)
		wg.Go(func() {
			for u := range queues[w] {
				_, err := conn.Exec(ctx, updateSQL, ids[u.gen], u.progress)
				at := time.Now()
				if err != nil {
					failed.Add(1)
					errOnce.Do(func() { firstErr = fmt.Errorf("update generation %s: %w", ids[u.gen], err) })
					continue
				}
				tr.committed(u.gen, u.progress, at)
				committed.Add(1)
			}
		})
	}

	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	sent := 0
schedule:
	for sent < p.total {
		due := min(p.total, int(time.Since(start).Seconds()*rate)+1)
		for ; sent < due; sent++ {
			u := p.update(sent)
			select {
			case queues[u.gen%len(queues)] <- u:
			case <-ctx.Done():
				break schedule
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			break schedule
		}
	}
	tick.Stop()
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	return driveResult{
		committed: int(committed.Load()), failed: int(failed.Load()),
		start: start, end: time.Now(), firstErr: firstErr,
	}
}
