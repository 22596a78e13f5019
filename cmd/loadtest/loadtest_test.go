package main

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestTracker(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	type step struct {
		commit   bool // else a receipt
		progress int
		ms       int
	}
	tests := []struct {
		name  string
		steps []step
		want  deliveryStats
		// latencies lists the expected sorted latencies in ms.
		latencies []int
	}{
		{
			name:      "each update its own event",
			steps:     []step{{false, 0, 0}, {true, 1, 10}, {false, 1, 12}, {true, 2, 20}, {false, 2, 25}},
			want:      deliveryStats{Expected: 2, Delivered: 2, Exact: 2, Events: 2},
			latencies: []int{2, 5},
		},
		{
			name:      "coalesced updates count as delivered, not exact",
			steps:     []step{{false, 0, 0}, {true, 1, 10}, {true, 2, 11}, {true, 3, 12}, {false, 3, 20}},
			want:      deliveryStats{Expected: 3, Delivered: 3, Exact: 1, Events: 1},
			latencies: []int{8, 9, 10},
		},
		{
			name:      "event before the commit is recorded is early, latency zero",
			steps:     []step{{false, 0, 0}, {false, 1, 10}, {true, 1, 11}},
			want:      deliveryStats{Expected: 1, Delivered: 1, Exact: 1, Early: 1, Events: 1},
			latencies: []int{0},
		},
		{
			name:      "missing event leaves the update undelivered",
			steps:     []step{{false, 0, 0}, {true, 1, 10}, {false, 1, 11}, {true, 2, 20}},
			want:      deliveryStats{Expected: 2, Delivered: 1, Exact: 1, Events: 1},
			latencies: []int{1},
		},
		{
			name:      "a stale event does not deliver a later update",
			steps:     []step{{false, 0, 0}, {true, 5, 10}, {false, 4, 11}},
			want:      deliveryStats{Expected: 1, Delivered: 0, Exact: 0, Events: 1},
			latencies: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := newTracker(2)
			for _, s := range tt.steps {
				if s.commit {
					tr.committed(1, s.progress, at(s.ms))
				} else {
					tr.received(1, s.progress, at(s.ms))
				}
			}
			got := tr.stats()
			lat := got.Latency
			got.Latency = latencySummary{}
			if got != tt.want {
				t.Errorf("stats = %+v, want %+v", got, tt.want)
			}
			if lat.N != len(tt.latencies) {
				t.Fatalf("%d latencies, want %d", lat.N, len(tt.latencies))
			}
			if n := len(tt.latencies); n > 0 {
				if want := time.Duration(tt.latencies[n-1]) * time.Millisecond; lat.Max != want {
					t.Errorf("max latency %v, want %v", lat.Max, want)
				}
			}
			if got, want := tr.outstanding(), tt.want.Expected-tt.want.Delivered; got != want {
				t.Errorf("outstanding = %d, want %d", got, want)
			}
			if got := tr.snapshots.Load(); got != 1 {
				t.Errorf("snapshots = %d, want 1 (only generation 1 received anything)", got)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[i] = time.Duration(100-i) * time.Millisecond // unsorted on purpose
	}
	s := summarize(ds)
	tests := []struct {
		name string
		got  time.Duration
		want time.Duration
	}{
		{"p50", s.P50, 50 * time.Millisecond},
		{"p90", s.P90, 90 * time.Millisecond},
		{"p99", s.P99, 99 * time.Millisecond},
		{"max", s.Max, 100 * time.Millisecond},
		{"mean", s.Mean, 50500 * time.Microsecond},
		{"single value p99", percentile([]time.Duration{7}, 0.99), 7},
		{"empty", percentile(nil, 0.5), 0},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

const exposition = `# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.2345e+07
process_cpu_seconds_total 3.5
narrate_realtime_notify_to_send_seconds_bucket{le="0.001"} 50
narrate_realtime_notify_to_send_seconds_bucket{le="0.01"} 90
narrate_realtime_notify_to_send_seconds_bucket{le="0.1"} 100
narrate_realtime_notify_to_send_seconds_bucket{le="+Inf"} 100
narrate_http_requests_total{code="200",method="GET",route="GET /metrics"} 4 1700000000000
odd_label{path="a b}c"} 1
`

func TestParseMetrics(t *testing.T) {
	t.Parallel()
	values, err := parseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]float64{
		metricRSS: 12345000,
		metricCPU: 3.5,
		`narrate_realtime_notify_to_send_seconds_bucket{le="+Inf"}`:                 100,
		`narrate_http_requests_total{code="200",method="GET",route="GET /metrics"}`: 4,
		`odd_label{path="a b}c"}`: 1,
	}
	for name, want := range tests {
		if got, ok := values[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	s := sample{values: values}
	if _, err := s.get("go_goroutines"); !errors.Is(err, errMissingMetric) {
		t.Errorf("get of an absent metric: %v, want errMissingMetric", err)
	}
	if _, err := parseMetrics(strings.NewReader("lonely_name\n")); err == nil {
		t.Error("a sample without a value parsed")
	}
}

func TestHistogramQuantile(t *testing.T) {
	t.Parallel()
	values, err := parseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	after := sample{values: values}
	before := sample{values: map[string]float64{}}
	tests := []struct {
		q    float64
		want float64
	}{
		{0.5, 0.001},   // exactly the first bucket's count
		{0.25, 0.0005}, // halfway into the first bucket
		{0.9, 0.01},
		{0.95, 0.055}, // halfway between 0.01 and 0.1
	}
	for _, tt := range tests {
		if got := histogramQuantile(metricNotifyToSend, before, after, tt.q); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("q%.2f = %v, want %v", tt.q, got, tt.want)
		}
	}
	if got := histogramQuantile(metricNotifyToSend, after, after, 0.5); !math.IsNaN(got) {
		t.Errorf("no observations between equal samples: got %v, want NaN", got)
	}
}

func TestProcParsing(t *testing.T) {
	t.Parallel()
	busy, total := parseProcStat("cpu  100 5 50 800 20 3 2 0 7 0\ncpu0 1 2 3 4\n")
	if busy != 160 || total != 980 {
		t.Errorf("parseProcStat = %d busy of %d, want 160 of 980", busy, total)
	}
	if busy, total := parseProcStat("garbage"); busy != 0 || total != 0 {
		t.Errorf("parseProcStat(garbage) = %d, %d", busy, total)
	}
	stat := "4242 (postgres: a (b) c) S 4200 4242 4242 0 -1 4194560 100 0 0 0 17 5 0 0 20 0 1 0 12 0 0"
	st, ok := parsePidStat(stat)
	if want := (pidStat{pid: 4242, ppid: 4200, utime: 17, stime: 5}); !ok || st != want {
		t.Errorf("parsePidStat = %+v, %v", st, ok)
	}
	if _, ok := parsePidStat("4242 (x) S 1"); ok {
		t.Error("parsePidStat accepted a short line")
	}
}

func TestLocalCluster(t *testing.T) {
	t.Parallel()
	if _, err := readPIDFile(t.TempDir()); !errors.Is(err, errNoDatabase) {
		t.Errorf("readPIDFile of a data dir without a cluster = %v, want errNoDatabase", err)
	}
	if got, want := (pidFile{port: 43699}).adminURL(), "postgres://postgres@127.0.0.1:43699/narrate?sslmode=disable"; got != want {
		t.Errorf("adminURL = %q, want %q", got, want)
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	p, err := newPlan(3, 10, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got []update
	for k := range p.total {
		got = append(got, p.update(k))
	}
	want := []update{{0, 1}, {1, 1}, {2, 1}, {0, 2}, {1, 2}, {2, 2}, {0, 3}, {1, 3}, {2, 3}, {0, 4}}
	if len(got) != len(want) {
		t.Fatalf("%d updates, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("update %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := newPlan(10, 1000, 2*time.Second); !errors.Is(err, errTooManyUpdates) {
		t.Errorf("2000 updates over 10 generations: %v, want errTooManyUpdates", err)
	}
	if _, err := newPlan(10, 500, 2*time.Second); err != nil {
		t.Errorf("exactly 100 rounds: %v", err)
	}
}

func TestWebsocketURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"http://localhost:8080", "ws://localhost:8080/graphql"},
		{"https://api.example.com", "wss://api.example.com/graphql"},
		{"localhost:8080", ""},
	}
	for _, tt := range tests {
		got, err := websocketURL(tt.in)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("websocketURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}
