package main

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"time"
)

// Goals of issue 3, checked at the end of the summary.
const (
	goalSubscriptions = 10000
	goalRate          = 1000
	goalP99           = 50 * time.Millisecond
	goalBytesPerSub   = 40 << 10
)

// derived figures of a result.
type figures struct {
	rssBefore, rssAfter float64
	rssPerSub           float64
	rssPerSocket        float64
	heapStackPerSub     float64
	goroutinesPerSub    float64
	serverCPU           float64 // percent of one core
	postgresCPU         float64
	toolCPU             float64
	machineBusy         float64 // percent of all cores
	backgroundBusy      float64 // percent of all cores, before the run
	achievedRate        float64
	driveWall           time.Duration
}

func (r *result) figures() figures {
	var f figures
	f.rssBefore = r.idleBefore.value(metricRSS)
	f.rssAfter = r.idleAfter.value(metricRSS)
	if r.subscribed > 0 && r.idleAfter.values != nil {
		n := float64(r.subscribed)
		f.rssPerSub = (f.rssAfter - f.rssBefore) / n
		f.rssPerSocket = (f.rssAfter - f.rssBefore) / float64(r.opened)
		mem := func(s sample) float64 { return s.value(metricHeapInuse) + s.value(metricStackInuse) }
		f.heapStackPerSub = (mem(r.idleAfter) - mem(r.idleBefore)) / n
		f.goroutinesPerSub = (r.idleAfter.value(metricGoroutines) - r.idleBefore.value(metricGoroutines)) / n
	}
	if wall := r.driveEnd.at.Sub(r.driveStart.at); wall > 0 && r.driveEnd.values != nil {
		f.serverCPU = 100 * (r.driveEnd.value(metricCPU) - r.driveStart.value(metricCPU)) / wall.Seconds()
	}
	if wall := r.cpuEnd.at.Sub(r.cpuStart.at); wall > 0 {
		f.postgresCPU = 100 * (r.cpuEnd.postgres - r.cpuStart.postgres).Seconds() / wall.Seconds()
		f.toolCPU = 100 * (r.cpuEnd.self - r.cpuStart.self).Seconds() / wall.Seconds()
		if total := r.cpuEnd.machineTotal - r.cpuStart.machineTotal; total > 0 {
			f.machineBusy = 100 * float64(r.cpuEnd.machineBusy-r.cpuStart.machineBusy) / float64(total)
		}
	}
	if total := r.bgEnd.machineTotal - r.bgStart.machineTotal; total > 0 {
		f.backgroundBusy = 100 * float64(r.bgEnd.machineBusy-r.bgStart.machineBusy) / float64(total)
	}
	f.driveWall = r.drive.end.Sub(r.drive.start)
	if f.driveWall > 0 {
		f.achievedRate = float64(r.drive.committed) / f.driveWall.Seconds()
	}
	return f
}

// print writes the human-readable summary.
func (r *result) print(w io.Writer) {
	f := r.figures()
	cfg := r.cfg
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }

	p("Narrate realtime load test")
	p("  server           %s (%s), selection { %s }", cfg.url, cfg.proto, cfg.fields)
	p("  machine          %d CPUs shared by tool, server and PostgreSQL; %.0f%% busy before the run",
		runtime.NumCPU(), f.backgroundBusy)
	p("  plan             %d subscriptions (%d per socket) on %d generations of %d users; %d updates at %.0f/s for %s by %d writers",
		cfg.subs, cfg.perSocket, cfg.subs, cfg.users, r.plan.total, cfg.rate, cfg.duration, cfg.writers)
	p("")
	p("Subscriptions")
	p("  sockets opened   %d/%d in %s (%.0f/s), failed %d; %d subscriptions on them", r.opened, cfg.sockets(), round(r.openTime),
		float64(r.opened)/math.Max(r.openTime.Seconds(), 1e-9), r.openErrors, r.subscribed)
	if r.firstOpenErr != nil {
		p("  first failure    %v", r.firstOpenErr)
	}
	p("  snapshots        %d/%d (waited %s after the last socket)", r.snapshots, r.subscribed, round(r.snapshotWait))
	if r.idleAfter.values != nil {
		p("  server RSS       %s idle before, %s with the subscriptions idle: %s per subscription",
			mib(f.rssBefore), mib(f.rssAfter), kib(f.rssPerSub))
		if cfg.perSocket > 1 {
			p("                   (%s per socket of %d subscriptions)", kib(f.rssPerSocket), cfg.perSocket)
		}
		p("  server Go heap+stacks %s per subscription; %.1f goroutines per subscription",
			kib(f.heapStackPerSub), f.goroutinesPerSub)
		p("  server sockets   %.0f open, %.0f subscriptions active",
			r.idleAfter.value(metricSockets), r.idleAfter.value(metricActive))
	}
	if !r.drive.end.IsZero() {
		r.printUpdates(w, f)
	}
	if r.closeTime > 0 {
		p("")
		p("Close: %d sockets closed in %s; server open sockets now %.0f (baseline %.0f)",
			r.opened, round(r.closeTime), r.socketsAfter, r.socketsBaseline)
	}
}

func (r *result) printUpdates(w io.Writer, f figures) {
	d := r.delivery
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("")
	p("Updates")
	p("  committed        %d/%d in %s (%.1f/s achieved), failed %d", r.drive.committed, r.plan.total,
		round(f.driveWall), f.achievedRate, r.drive.failed)
	if r.drive.firstErr != nil {
		p("  first failure    %v", r.drive.firstErr)
	}
	p("  delivered        %d/%d (%s), exactly %d (%s); waited %s after the last commit",
		d.Delivered, d.Expected, pct(d.Delivered, d.Expected), d.Exact, pct(d.Exact, d.Expected), round(r.drainWait))
	p("  commit->client   p50 %s  p90 %s  p99 %s  max %s  mean %s  (n=%d, %d early)",
		ms(d.Latency.P50), ms(d.Latency.P90), ms(d.Latency.P99), ms(d.Latency.Max), ms(d.Latency.Mean), d.Latency.N, d.Early)
	p("  server notify->send p50 %s  p99 %s (its histogram, bucket-interpolated)",
		secondsMS(histogramQuantile(metricNotifyToSend, r.driveStart, r.driveEnd, 0.5)),
		secondsMS(histogramQuantile(metricNotifyToSend, r.driveStart, r.driveEnd, 0.99)))
	p("  server events    %.0f notifications, %.0f delivered, %.0f coalesced, %.0f dropped",
		delta(r.driveStart, r.driveEnd, metricNotifications), delta(r.driveStart, r.driveEnd, metricDelivered),
		delta(r.driveStart, r.driveEnd, metricCoalesced), delta(r.driveStart, r.driveEnd, metricDropped))
	postgres := "n/a"
	if r.cpuEnd.postgres > 0 {
		postgres = fmt.Sprintf("%.0f%%", f.postgresCPU)
	}
	p("  CPU (100%% = one core) server %.0f%%, its PostgreSQL %s, this tool %.0f%%; machine %.0f%% busy of %d cores",
		f.serverCPU, postgres, f.toolCPU, f.machineBusy, runtime.NumCPU())
	c := r.counters
	p("  client anomalies errors %d, completed %d, dropped sockets %d, bad messages %d (pings answered %d)",
		c.errors.Load(), c.completed.Load(), c.dropped.Load(), c.badMessages.Load(), c.pings.Load())
	p("")
	p("Goals (issue 3)")
	p("  %-4s %d concurrent subscriptions on one process (%d on %d sockets, %d snapshots)",
		verdict(r.snapshots >= goalSubscriptions && r.snapshots == r.subscribed), goalSubscriptions, r.subscribed, r.opened, r.snapshots)
	p("  %-4s %d updates/s all delivered (%.0f/s, %d/%d)",
		verdict(f.achievedRate >= goalRate*0.99 && d.Expected > 0 && d.Delivered == d.Expected), goalRate, f.achievedRate, d.Delivered, d.Expected)
	p("  %-4s p99 commit->client < %s (%s)", verdict(d.Latency.N > 0 && d.Latency.P99 < goalP99), goalP99, ms(d.Latency.P99))
	p("  %-4s < %s server memory per idle subscription (%s RSS)", verdict(r.idleAfter.values != nil && f.rssPerSub < goalBytesPerSub),
		kib(goalBytesPerSub), kib(f.rssPerSub))
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func delta(a, b sample, name string) float64 { return b.value(name) - a.value(name) }

func round(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func secondsMS(s float64) string {
	if math.IsNaN(s) {
		return "n/a"
	}
	return fmt.Sprintf("%.2fms", s*1000)
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/(1<<10)) }

func pct(n, of int) string {
	if of == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f%%", 100*float64(n)/float64(of))
}
