package worker

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/narrate/narrate/voice"
)

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	tests := []struct {
		n        int
		min, max time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{5, 500 * time.Millisecond, time.Second},
		{50, 500 * time.Millisecond, time.Second},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			t.Parallel()
			seen := map[time.Duration]bool{}
			for range 200 {
				d := b.Delay(tc.n)
				if d < tc.min || d > tc.max {
					t.Fatalf("Delay(%d) = %v, want within [%v, %v]", tc.n, d, tc.min, tc.max)
				}
				seen[d] = true
			}
			if len(seen) < 2 {
				t.Errorf("Delay(%d) has no jitter: always %v", tc.n, seen)
			}
		})
	}
}

func TestRetryPolicyDefaultsAndRetryAfter(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{}.withDefaults()
	if p.MaxRetries < 3 || p.Backoff.Min != time.Second || p.Backoff.Max != 30*time.Second {
		t.Fatalf("defaults = %+v", p)
	}
	rateLimited := func(after time.Duration) error {
		return fmt.Errorf("synthesize: %w", &voice.Error{Kind: voice.KindRateLimited, RetryAfter: after})
	}
	tests := []struct {
		name     string
		err      error
		min, max time.Duration
	}{
		{"no hint", errors.New("x"), 500 * time.Millisecond, time.Second},
		{"shorter hint ignored", rateLimited(time.Millisecond), 500 * time.Millisecond, time.Second},
		{"longer hint honoured", rateLimited(7 * time.Second), 7 * time.Second, 7 * time.Second},
		{"hint capped", rateLimited(time.Hour), 30 * time.Second, 30 * time.Second},
	}
	for _, tc := range tests {
		if d := p.delay(1, tc.err); d < tc.min || d > tc.max {
			t.Errorf("%s: delay = %v, want within [%v, %v]", tc.name, d, tc.min, tc.max)
		}
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{}); err == nil {
		t.Fatal("New with no queue, provider or store succeeded")
	}
}
