package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Metric names read from the server's /metrics.
const (
	metricRSS           = "process_resident_memory_bytes"
	metricCPU           = "process_cpu_seconds_total"
	metricGoroutines    = "go_goroutines"
	metricHeapInuse     = "go_memstats_heap_inuse_bytes"
	metricStackInuse    = "go_memstats_stack_inuse_bytes"
	metricSockets       = "narrate_realtime_open_sockets"
	metricActive        = "narrate_realtime_active_subscriptions"
	metricDelivered     = "narrate_realtime_events_delivered_total"
	metricCoalesced     = "narrate_realtime_events_coalesced_total"
	metricDropped       = "narrate_realtime_events_dropped_total"
	metricNotifications = "narrate_realtime_notifications_received_total"
	metricNotifyToSend  = "narrate_realtime_notify_to_send_seconds"
)

// errMissingMetric is returned (wrapped) when /metrics lacks a sample the
// tool needs, typically because the server was built without the process
// collector.
var errMissingMetric = errors.New("metric missing")

// sample is one scrape of the server's /metrics: every sample value by its
// name with labels as the exposition shows them, e.g.
// `narrate_realtime_notify_to_send_seconds_bucket{le="0.005"}`.
type sample struct {
	at     time.Time
	values map[string]float64
}

// scrape reads the server's metrics.
func scrape(ctx context.Context, client *http.Client, baseURL string) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/metrics", nil)
	if err != nil {
		return sample{}, fmt.Errorf("scrape metrics: %w", err)
	}
	res, err := client.Do(req)
	if err != nil {
		return sample{}, fmt.Errorf("scrape metrics: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return sample{}, fmt.Errorf("scrape metrics: HTTP %s", res.Status)
	}
	values, err := parseMetrics(res.Body)
	if err != nil {
		return sample{}, fmt.Errorf("scrape metrics: %w", err)
	}
	return sample{at: time.Now(), values: values}, nil
}

// parseMetrics reads the Prometheus text exposition format. It keeps each
// sample under its full name, labels included, and ignores comments and
// timestamps.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	values := make(map[string]float64)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		// The name (with labels, whose values may hold spaces) ends at
		// the first space after the closing brace, if any.
		nameEnd := strings.IndexByte(line, ' ')
		if brace := strings.IndexByte(line, '{'); brace >= 0 && brace < nameEnd {
			closing := strings.LastIndexByte(line, '}')
			if closing < 0 {
				return nil, fmt.Errorf("unterminated labels: %q", line)
			}
			nameEnd = closing + 1
		}
		if nameEnd <= 0 || nameEnd >= len(line) {
			return nil, fmt.Errorf("no value: %q", line)
		}
		fields := strings.Fields(line[nameEnd:])
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("bad value in %q: %w", line, err)
		}
		values[line[:nameEnd]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return values, nil
}

// get returns a sample value, or an error wrapping errMissingMetric.
func (s sample) get(name string) (float64, error) {
	v, ok := s.values[name]
	if !ok {
		return 0, fmt.Errorf("%w: %s", errMissingMetric, name)
	}
	return v, nil
}

// value returns a sample value, zero when absent.
func (s sample) value(name string) float64 { return s.values[name] }

// histogramQuantile estimates the q-quantile of the observations a
// histogram gained between two samples, by linear interpolation inside the
// bucket, as Prometheus's histogram_quantile does. It returns NaN when
// nothing was observed.
func histogramQuantile(name string, before, after sample, q float64) float64 {
	type bucket struct{ le, count float64 }
	var buckets []bucket
	prefix := name + `_bucket{le="`
	for k, v := range after.values {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		le, err := strconv.ParseFloat(strings.TrimSuffix(k[len(prefix):], `"}`), 64)
		if err != nil {
			continue
		}
		buckets = append(buckets, bucket{le: le, count: v - before.values[k]})
	}
	slices.SortFunc(buckets, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	if len(buckets) == 0 || buckets[len(buckets)-1].count <= 0 {
		return math.NaN()
	}
	rank := q * buckets[len(buckets)-1].count
	lower, below := 0.0, 0.0
	for _, b := range buckets {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				// Beyond the last finite bound: that bound is all we know.
				return lower
			}
			if b.count == below {
				return b.le
			}
			return lower + (b.le-lower)*(rank-below)/(b.count-below)
		}
		lower, below = b.le, b.count
	}
	return lower
}

// cpuTimes is the CPU time used so far by the machine and by a few
// processes of interest, read from /proc. Fields are zero where /proc is not
// readable (the tool then reports less, but still runs).
type cpuTimes struct {
	at time.Time
	// machineBusy and machineTotal are jiffies over all cores.
	machineBusy, machineTotal uint64
	// postgres is the CPU time of the server's PostgreSQL cluster, when
	// its postmaster is known (-data-dir).
	postgres time.Duration
	// self is this tool's CPU time.
	self time.Duration
}

// clockTicks is USER_HZ, the unit of /proc's CPU times; 100 on every Linux
// architecture Go supports.
const clockTicks = 100

func readCPUTimes(postmaster int) cpuTimes {
	t := cpuTimes{at: time.Now()}
	if raw, err := os.ReadFile("/proc/stat"); err == nil {
		t.machineBusy, t.machineTotal = parseProcStat(string(raw))
	}
	t.postgres = clusterCPU(postmaster)
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		t.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return t
}

// parseProcStat returns the busy and total jiffies of the "cpu" line of
// /proc/stat. Idle and iowait count as not busy.
func parseProcStat(stat string) (busy, total uint64) {
	line, _, _ := strings.Cut(stat, "\n")
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0
	}
	for i, f := range fields[1:] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, 0
		}
		// guest and guest_nice (fields 9 and 10) are already counted in
		// user and nice.
		if i >= 8 {
			break
		}
		total += v
		if i != 3 && i != 4 {
			busy += v
		}
	}
	return busy, total
}

// clusterCPU sums the user and system CPU time of a PostgreSQL cluster: its
// postmaster and the postmaster's children (backends and helpers). Zero when
// postmaster is zero or /proc is unreadable.
func clusterCPU(postmaster int) time.Duration {
	if postmaster <= 0 {
		return 0
	}
	paths, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return 0
	}
	var ticks uint64
	for _, path := range paths {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		st, ok := parsePidStat(string(raw))
		if ok && (st.pid == postmaster || st.ppid == postmaster) {
			ticks += st.utime + st.stime
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// pidStat is what the tool reads from /proc/PID/stat.
type pidStat struct {
	pid, ppid    int
	utime, stime uint64
}

// parsePidStat extracts the pid, parent pid and user and system times from
// /proc/PID/stat. The command name before them is in parentheses and may
// itself hold spaces and parentheses, so fields are counted from the last
// ')'.
func parsePidStat(stat string) (pidStat, bool) {
	open := strings.IndexByte(stat, '(')
	end := strings.LastIndexByte(stat, ')')
	if open < 1 || end < open {
		return pidStat{}, false
	}
	var st pidStat
	var err error
	if st.pid, err = strconv.Atoi(strings.TrimSpace(stat[:open])); err != nil {
		return pidStat{}, false
	}
	fields := strings.Fields(stat[end+1:])
	// After the name: state(0) ppid(1) ... utime(11) stime(12).
	if len(fields) < 13 {
		return pidStat{}, false
	}
	ppid, err1 := strconv.Atoi(fields[1])
	utime, err2 := strconv.ParseUint(fields[11], 10, 64)
	stime, err3 := strconv.ParseUint(fields[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return pidStat{}, false
	}
	st.ppid, st.utime, st.stime = ppid, utime, stime
	return st, true
}
