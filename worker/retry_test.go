package worker

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/narrate/narrate/voice"
	"github.com/narrate/narrate/voice/local"
)

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

// nopStore satisfies Store for tests of New, which never touches it.
type nopStore struct{ Store }

func TestNewValidates(t *testing.T) {
	t.Parallel()
	valid := func() Config {
		return Config{Queue: nopQueue{}, Provider: local.New(local.Config{EspeakPath: "-"}), Store: nopStore{}}
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error; "" means New succeeds
	}{
		{"valid", func(*Config) {}, ""},
		{"no queue", func(c *Config) { c.Queue = nil }, "Queue is required"},
		{"no provider", func(c *Config) { c.Provider = nil }, "Provider is required"},
		{"no store", func(c *Config) { c.Store = nil }, "Store is required"},
		{"negative concurrency", func(c *Config) { c.Concurrency = -1 }, "negative"},
		{"lease too short", func(c *Config) { c.Lease = time.Millisecond }, "too short"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid()
			tc.mutate(&cfg)
			w, err := New(cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("New = %v, want an error containing %q", err, tc.want)
			case tc.want == "" && (w.concurrency != 1 || w.lease != DefaultLease || w.pollInterval != DefaultPollInterval || w.owner == ""):
				t.Errorf("defaults not applied: %+v", w)
			}
		})
	}
}

// nopQueue satisfies Queue for tests of New, which never touches it.
type nopQueue struct{ Queue }
