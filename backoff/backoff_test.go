package backoff_test

import (
	"context"
	"testing"
	"time"

	"github.com/narrate/narrate/backoff"
)

func TestDelay(t *testing.T) {
	t.Parallel()
	p := backoff.Policy{Min: 100 * time.Millisecond, Max: 2 * time.Second}
	tests := []struct {
		n       int
		ceiling time.Duration
	}{
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{4, 800 * time.Millisecond},
		{6, 2 * time.Second},
		{1000, 2 * time.Second},
	}
	for _, tt := range tests {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := p.Delay(tt.n)
			if d < tt.ceiling/2 || d > tt.ceiling {
				t.Fatalf("Delay(%d) = %v, want within [%v, %v]", tt.n, d, tt.ceiling/2, tt.ceiling)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("Delay(%d) is always %v: no jitter", tt.n, seen)
		}
	}
	if d := (backoff.Policy{}).Delay(3); d != 0 {
		t.Errorf("zero policy delays %v, want 0", d)
	}
}

func TestOr(t *testing.T) {
	t.Parallel()
	def := backoff.Policy{Min: time.Second, Max: time.Minute}
	if got := (backoff.Policy{}).Or(def); got != def {
		t.Errorf("empty.Or = %+v, want %+v", got, def)
	}
	if got := (backoff.Policy{Min: 2 * time.Minute}).Or(def); got.Max != 2*time.Minute {
		t.Errorf("Max below Min is raised to Min, got %+v", got)
	}
	if got := (backoff.Policy{Min: time.Millisecond, Max: time.Second}).Or(def); got.Min != time.Millisecond || got.Max != time.Second {
		t.Errorf("set fields are kept, got %+v", got)
	}
}

func TestSleep(t *testing.T) {
	t.Parallel()
	if !backoff.Sleep(context.Background(), time.Millisecond) {
		t.Error("Sleep did not report a full wait")
	}
	if !backoff.Sleep(context.Background(), 0) {
		t.Error("a zero Sleep on a live context did not report a full wait")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if backoff.Sleep(ctx, time.Hour) {
		t.Error("Sleep on a cancelled context reported a full wait")
	}
	if backoff.Sleep(ctx, 0) {
		t.Error("a zero Sleep on a cancelled context reported a full wait")
	}
}
