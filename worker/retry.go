package worker

import (
	"errors"
	"time"

	"github.com/narrate/narrate/backoff"
	"github.com/narrate/narrate/voice"
)

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
	Backoff backoff.Policy
}

// Defaults for RetryPolicy fields left zero.
const (
	DefaultMaxRetries = 4
)

var defaultProviderBackoff = backoff.Policy{Min: time.Second, Max: 30 * time.Second}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxRetries <= 0 {
		p.MaxRetries = DefaultMaxRetries
	}
	p.Backoff = p.Backoff.Or(defaultProviderBackoff)
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
