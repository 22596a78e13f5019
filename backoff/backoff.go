// Package backoff spaces out retries: exponentially growing delays with
// jitter, and a sleep that ends early when its context does. The worker,
// the notification listener and the subscription streams all wait this way
// for a database or a provider to come back.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is an exponential backoff with "equal jitter": the n-th
// consecutive failure waits a random time between half and all of
// Min·2ⁿ⁻¹, capped at Max. The jitter spreads out the many clients that
// failed together (a provider outage, a database restart), so they do not
// all come back at the same moment.
type Policy struct {
	Min, Max time.Duration
}

// Delay is the wait after the n-th consecutive failure (n ≥ 1).
func (p Policy) Delay(n int) time.Duration {
	d := p.Min
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// Database spaces retries while the database is unreachable: quick at
// first, for a dropped connection, and patient later, for a restart or a
// failover. The worker, the listener's resync and the subscription streams
// use it.
var Database = Policy{Min: 100 * time.Millisecond, Max: 5 * time.Second}

// Or fills in the fields of p left unset from def.
func (p Policy) Or(def Policy) Policy {
	if p.Min <= 0 {
		p.Min = def.Min
	}
	if p.Max < p.Min {
		p.Max = max(def.Max, p.Min)
	}
	return p
}

// Sleep waits for d or until ctx ends, and reports whether it waited the
// whole time.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
