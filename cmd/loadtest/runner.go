package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/narrate/narrate/backoff"
)

// tokenTTL outlives any sensible run, so no socket is closed for an expired
// token in the middle of a measurement.
const tokenTTL = 6 * time.Hour

// runner holds one run's resources.
type runner struct {
	cfg    config
	logger *slog.Logger
	dbURL  string
	secret []byte
	pool   *pgxpool.Pool
	wsURL  string
	// postmaster is the pid of the server's local cluster, for its CPU
	// time; zero when unknown.
	postmaster int
}

func newRunner(ctx context.Context, cfg config, logger *slog.Logger) (*runner, error) {
	// A server just launched creates its database and secret while it
	// starts: wait for it before reading DATA_DIR.
	if err := waitReady(ctx, cfg.url, cfg.wait); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, logger: logger, dbURL: cfg.dbURL, secret: []byte(cfg.secret)}
	var err error
	if r.wsURL, err = websocketURL(cfg.url); err != nil {
		return nil, err
	}
	if cfg.dataDir != "" {
		pf, err := readPIDFile(cfg.dataDir)
		if err != nil && r.dbURL == "" {
			return nil, err
		}
		r.postmaster = pf.pid
		if r.dbURL == "" {
			r.dbURL = pf.adminURL()
		}
	}
	if r.dbURL == "" {
		return nil, errNoDatabase
	}
	if len(r.secret) == 0 {
		if cfg.dataDir == "" {
			return nil, errors.New("no JWT secret: pass -secret, or -data-dir of a server using its development secret")
		}
		if r.secret, err = secretFromDataDir(cfg.dataDir); err != nil {
			return nil, err
		}
	}
	// One descriptor per socket, the writers' and pool's connections, and
	// some slack for the metrics client and the runtime.
	limit, err := raiseFileLimit(uint64(cfg.sockets() + cfg.writers + 64))
	if err != nil {
		return nil, err
	}
	logger.Info("open files limit", "limit", limit)

	poolCfg, err := pgxpool.ParseConfig(r.dbURL)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	poolCfg.MaxConns = 4
	if r.pool, err = pgxpool.NewWithConfig(ctx, poolCfg); err != nil {
		return nil, fmt.Errorf("connect database: %w", err)
	}
	if err := r.pool.Ping(ctx); err != nil {
		r.pool.Close()
		return nil, fmt.Errorf("connect database: %w", err)
	}
	return r, nil
}

func (r *runner) close() { r.pool.Close() }

// raiseFileLimit makes sure the process may open need descriptors, raising
// the hard limit too when it must and may (as root). It returns the soft
// limit in force.
func raiseFileLimit(need uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read open files limit: %w", err)
	}
	if lim.Cur >= need {
		return lim.Cur, nil
	}
	want := syscall.Rlimit{Cur: need, Max: max(lim.Max, need)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return lim.Cur, fmt.Errorf("open files limit is %d (hard %d), %d needed: raise it (ulimit -n) or open fewer sockets: %w",
			lim.Cur, lim.Max, need, err)
	}
	return need, nil
}

// result is what a run measured.
type result struct {
	cfg  config
	plan plan

	// opened counts sockets, subscribed the subscriptions they carry.
	opened, openErrors int
	subscribed         int
	openTime           time.Duration
	firstOpenErr       error
	snapshots          int
	snapshotWait       time.Duration

	idleBefore, idleAfter sample
	driveStart, driveEnd  sample
	cpuStart, cpuEnd      cpuTimes
	bgStart, bgEnd        cpuTimes
	drive                 driveResult
	drainWait             time.Duration
	delivery              deliveryStats

	counters        *clientCounters
	socketsAfter    float64
	socketsBaseline float64
	closeTime       time.Duration
}

// run performs the phases in order: fixtures, idle reading, sockets and
// snapshots, idle reading with subscriptions, updates, drain, close. The
// result holds whatever was measured, even when a later phase failed.
func (r *runner) run(ctx context.Context) (*result, error) {
	cfg := r.cfg
	res := &result{cfg: cfg, counters: &clientCounters{}}
	var err error
	if res.plan, err = newPlan(cfg.subs, cfg.rate, cfg.duration); err != nil {
		return nil, err
	}
	if _, err := scrape(ctx, httpClient, cfg.url); err != nil {
		return nil, fmt.Errorf("server at %s: %w", cfg.url, err)
	}

	r.logger.Info("creating fixtures", "users", cfg.users, "generations", cfg.subs)
	fx, err := createFixtures(ctx, r.pool, r.secret, cfg.audience, cfg.users, cfg.subs, cfg.perSocket, tokenTTL)
	if err != nil {
		return nil, err
	}
	if !cfg.keep {
		defer func() {
			cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := fx.remove(cleanupCtx, r.pool); err != nil {
				r.logger.Error("cleanup", "err", err)
			}
		}()
	}

	// Idle, before any subscription. The machine's load meanwhile shows
	// whether something else competes for the CPU.
	res.bgStart = readCPUTimes(r.postmaster)
	if !backoff.Sleep(ctx, cfg.settle) {
		return res, ctx.Err()
	}
	res.bgEnd = readCPUTimes(r.postmaster)
	if res.idleBefore, err = scrape(ctx, httpClient, cfg.url); err != nil {
		return res, err
	}
	if _, err := res.idleBefore.get(metricRSS); err != nil {
		return res, fmt.Errorf("server /metrics: %w (is the process collector registered?)", err)
	}
	res.socketsBaseline = res.idleBefore.value(metricSockets)

	tr := newTracker(cfg.subs)
	subs := r.open(ctx, fx, tr, res)
	defer func() {
		start := time.Now()
		closeAll(subs, cfg.connConc)
		res.closeTime = time.Since(start)
		res.socketsAfter = r.waitSockets(context.WithoutCancel(ctx), res.socketsBaseline)
	}()
	if res.opened == 0 {
		return res, fmt.Errorf("no socket opened: %w", res.firstOpenErr)
	}

	// Every snapshot, then idle again.
	waitStart := time.Now()
	deadline := time.Now().Add(cfg.timeout + time.Duration(cfg.subs)*time.Millisecond)
	for int(tr.snapshots.Load()) < res.subscribed && time.Now().Before(deadline) {
		if !backoff.Sleep(ctx, 20*time.Millisecond) {
			return res, ctx.Err()
		}
	}
	res.snapshots = int(tr.snapshots.Load())
	res.snapshotWait = time.Since(waitStart)
	r.logger.Info("snapshots", "received", res.snapshots, "subscriptions", res.subscribed)
	if !backoff.Sleep(ctx, cfg.settle) {
		return res, ctx.Err()
	}
	if res.idleAfter, err = scrape(ctx, httpClient, cfg.url); err != nil {
		return res, err
	}

	// Updates.
	conns, err := r.writerConns(ctx)
	if err != nil {
		return res, err
	}
	defer func() {
		for _, c := range conns {
			_ = c.Close(context.WithoutCancel(ctx))
		}
	}()
	if res.driveStart, err = scrape(ctx, httpClient, cfg.url); err != nil {
		return res, err
	}
	res.cpuStart = readCPUTimes(r.postmaster)
	r.logger.Info("driving updates", "total", res.plan.total, "rate", cfg.rate)
	res.drive = drive(ctx, conns, fx.generations, res.plan, cfg.rate, tr)
	res.cpuEnd = readCPUTimes(r.postmaster)
	if res.driveEnd, err = scrape(ctx, httpClient, cfg.url); err != nil {
		return res, err
	}

	drainStart := time.Now()
	for tr.outstanding() > 0 && time.Since(drainStart) < cfg.drain {
		if !backoff.Sleep(ctx, 10*time.Millisecond) {
			break
		}
	}
	res.drainWait = time.Since(drainStart)
	res.delivery = tr.stats()
	if res.drive.firstErr != nil {
		return res, res.drive.firstErr
	}
	return res, ctx.Err()
}

// open connects the sockets, paced by -connect-rate with at most
// -connect-concurrency handshakes at once; socket j carries the
// subscriptions of generations j*perSocket up to the next socket's. Failed
// sockets are counted; the run goes on with the others.
func (r *runner) open(ctx context.Context, fx *fixtures, tr *tracker, res *result) []*subscriber {
	cfg := r.cfg
	d := newDialer(cfg.proto, cfg.timeout)
	subs := make([]*subscriber, cfg.sockets())
	carried := make([]int, len(subs))
	sem := make(chan struct{}, cfg.connConc)
	var (
		wg       sync.WaitGroup
		failed   atomic.Int64
		errOnce  sync.Once
		firstErr error
	)
	start := time.Now()
	progress := time.NewTicker(2 * time.Second)
	defer progress.Stop()
	for j := range subs {
		if cfg.connRate > 0 {
			if wait := time.Until(start.Add(time.Duration(float64(j) / cfg.connRate * float64(time.Second)))); wait > 0 && !backoff.Sleep(ctx, wait) {
				break
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case <-progress.C:
			r.logger.Info("connecting", "sockets", j, "snapshots", tr.snapshots.Load(), "failed", failed.Load())
		default:
		}
		first, end := j*cfg.perSocket, min((j+1)*cfg.perSocket, cfg.subs)
		ops := make([]operation, 0, end-first)
		for i := first; i < end; i++ {
			ops = append(ops, operation{gen: i, generationID: fx.generations[i].String()})
		}
		wg.Go(func() {
			defer func() { <-sem }()
			s, err := subscribe(ctx, d, r.wsURL, cfg.proto, fx.tokens[fx.owner[first]], cfg.fields, ops, cfg.timeout)
			if err != nil {
				failed.Add(1)
				errOnce.Do(func() { firstErr = err })
				return
			}
			subs[j], carried[j] = s, len(ops)
			go s.read(tr, res.counters)
		})
	}
	wg.Wait()
	res.openTime = time.Since(start)
	out := subs[:0]
	for j, s := range subs {
		if s != nil {
			out = append(out, s)
			res.subscribed += carried[j]
		}
	}
	res.opened, res.openErrors, res.firstOpenErr = len(out), int(failed.Load()), firstErr
	if firstErr != nil {
		r.logger.Warn("sockets failed", "count", failed.Load(), "err", firstErr)
	}
	return out
}

// writerConns opens the writers' dedicated connections.
func (r *runner) writerConns(ctx context.Context) ([]*pgx.Conn, error) {
	conns := make([]*pgx.Conn, 0, r.cfg.writers)
	for range r.cfg.writers {
		c, err := pgx.Connect(ctx, r.dbURL)
		if err != nil {
			for _, c := range conns {
				_ = c.Close(ctx)
			}
			return nil, fmt.Errorf("writer connection: %w", err)
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// waitSockets waits up to 15 s for the server's open sockets gauge to fall
// back to baseline after the tool closed its sockets, and returns the last
// reading.
func (r *runner) waitSockets(ctx context.Context, baseline float64) float64 {
	deadline := time.Now().Add(15 * time.Second)
	for {
		s, err := scrape(ctx, httpClient, r.cfg.url)
		if err != nil {
			return -1
		}
		v := s.value(metricSockets)
		if v <= baseline || time.Now().After(deadline) {
			return v
		}
		if !backoff.Sleep(ctx, 100*time.Millisecond) {
			return v
		}
	}
}

// closeAll closes the sockets, concurrency at a time.
func closeAll(subs []*subscriber, concurrency int) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, concurrency)
	for _, s := range subs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s.close(5 * time.Second)
		})
	}
	wg.Wait()
}

// waitReady polls the server's /readyz until it answers 200, for up to
// patience; with zero patience it asks once.
func waitReady(ctx context.Context, baseURL string, patience time.Duration) error {
	deadline := time.Now().Add(patience)
	for {
		err := ready(ctx, baseURL)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server at %s not ready: %w", baseURL, err)
		}
		if !backoff.Sleep(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
}

func ready(ctx context.Context, baseURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/readyz", nil)
	if err != nil {
		return err
	}
	res, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: HTTP %s", res.Status)
	}
	return nil
}
