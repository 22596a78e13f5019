package realtime

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	const minDelay, maxDelay = 100 * time.Millisecond, 2 * time.Second
	tests := []struct {
		failures int
		ceiling  time.Duration
	}{
		{0, 100 * time.Millisecond},
		{1, 200 * time.Millisecond},
		{3, 800 * time.Millisecond},
		{5, maxDelay},
		{1000, maxDelay},
	}
	for _, tt := range tests {
		seen := make(map[time.Duration]bool)
		for range 200 {
			d := backoff(tt.failures, minDelay, maxDelay)
			if d < tt.ceiling/2 || d > tt.ceiling {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", tt.failures, d, tt.ceiling/2, tt.ceiling)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("backoff(%d) always %v: no jitter", tt.failures, seen)
		}
	}
}
