package worker

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/narrate/narrate/voice"
)

// Backoff is an exponential backoff with jitter: the n-th consecutive
// failure waits a random time between half and all of Min·2ⁿ⁻¹, capped at
// Max. The jitter spreads out workers that failed together (a provider
// outage, a database restart) so they do not all come back at once.
type Backoff struct {
	Min, Max time.Duration
}

// Delay is the wait after the n-th consecutive failure (n ≥ 1).
func (b Backoff) Delay(n int) time.Duration {
	d := b.Min
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

func (b Backoff) withDefaults(def Backoff) Backoff {
	if b.Min <= 0 {
		b.Min = def.Min
	}
	if b.Max < b.Min {
		b.Max = max(def.Max, b.Min)
	}
	return b
}

// RetryPolicy decides how often, and after how long, a failed synthesis is
// tried again. Only retryable provider failures (rate limits, server and
// network errors; see voice.IsRetryable) are retried; anything else fails
// the generation at once.
type RetryPolicy struct {
	// MaxRetries is how many times one chunk is retried before the
	// generation fails; default 4.
	MaxRetries int
	// Backoff spaces the retries; default 1 s doubling up to 30 s. A
	// provider's Retry-After, when longer, is honoured up to Backoff.Max.
	Backoff Backoff
}

// Defaults for RetryPolicy fields left zero.
const (
	DefaultMaxRetries = 4
)

var defaultProviderBackoff = Backoff{Min: time.Second, Max: 30 * time.Second}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxRetries <= 0 {
		p.MaxRetries = DefaultMaxRetries
	}
	p.Backoff = p.Backoff.withDefaults(defaultProviderBackoff)
	return p
}

// delay is the wait before retry n (n ≥ 1) after err.
func (p RetryPolicy) delay(n int, err error) time.Duration {
	d := p.Backoff.Delay(n)
	var ve *voice.Error
	if errors.As(err, &ve) && ve.RetryAfter > d {
		d = min(ve.RetryAfter, p.Backoff.Max)
	}
	return d
}

// sleep waits for d or until ctx ends, and reports whether it waited the
// whole time.
func sleep(ctx context.Context, d time.Duration) bool {
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
