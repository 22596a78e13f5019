package limit

import (
	"sync"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Rate
		err  bool
	}{
		{in: "20/1h", want: Rate{Burst: 20, Per: time.Hour}},
		{in: "1/1s", want: Rate{Burst: 1, Per: time.Second}},
		{in: "off", want: Rate{}},
		{in: "0/1h", err: true},
		{in: "-1/1h", err: true},
		{in: "5/999ms", err: true},
		{in: "5", err: true},
		{in: "five/1h", err: true},
		{in: "5/hour", err: true},
		{in: "", err: true},
	}
	for _, tt := range tests {
		got, err := ParseRate(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
		if err == nil {
			if back, _ := ParseRate(got.String()); back != got {
				t.Errorf("ParseRate(%q.String()) = %v", got, back)
			}
		}
	}
	if r := (Rate{Burst: 30, Per: time.Minute}); r.PerSecond() != 0.5 || r.Unlimited() {
		t.Errorf("30/1m: %v per second, unlimited %v", r.PerSecond(), r.Unlimited())
	}
}

func TestCounterEdges(t *testing.T) {
	t.Parallel()
	var c Counter
	tests := []struct {
		max  int
		take int
		ok   int
	}{
		{max: 0, take: 5, ok: 5},
		{max: 1, take: 2, ok: 1},
		{max: 3, take: 3, ok: 3},
		{max: 3, take: 4, ok: 3},
	}
	for i, tt := range tests {
		key := string(rune('a' + i))
		var releases []func()
		ok := 0
		for range tt.take {
			if release, got := c.Acquire(key, tt.max); got {
				ok++
				releases = append(releases, release)
			}
		}
		if ok != tt.ok {
			t.Errorf("max %d: %d of %d acquired, want %d", tt.max, ok, tt.take, tt.ok)
		}
		for _, r := range releases {
			r()
			r() // releasing twice frees one slot only
		}
		if n := c.InUse(key); n != 0 {
			t.Errorf("max %d: %d in use after release", tt.max, n)
		}
	}
	if len(c.n) != 0 {
		t.Errorf("counter keeps %d released keys", len(c.n))
	}
}

func TestCounterConcurrent(t *testing.T) {
	t.Parallel()
	var c Counter
	const limit = 4
	var wg sync.WaitGroup
	var mu sync.Mutex
	peak, cur := 0, 0
	for range 64 {
		wg.Go(func() {
			release, ok := c.Acquire("k", limit)
			if !ok {
				return
			}
			mu.Lock()
			cur++
			peak = max(peak, cur)
			mu.Unlock()
			mu.Lock()
			cur--
			mu.Unlock()
			release()
		})
	}
	wg.Wait()
	if peak > limit {
		t.Fatalf("%d held at once, cap %d", peak, limit)
	}
}
