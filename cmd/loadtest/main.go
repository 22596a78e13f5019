// Command loadtest measures the realtime path of a running Narrate server.
//
// It creates users and one IN_PROGRESS generation per subscriber directly in
// the server's database, opens one websocket per subscriber with a
// generationProgress subscription, waits for every snapshot, then drives
// progress updates through PostgreSQL at a fixed rate and measures, for each
// update, the time from its commit to the subscriber receiving an event with
// that (or a later) progress. From the server's /metrics it reads its
// resident memory before and after the subscriptions (memory per idle
// subscription) and its CPU time during the updates.
//
// Run it against a server started separately, e.g.
//
//	DATA_DIR=/tmp/narrate-load PORT=8090 WORKER_CONCURRENCY=0 bin/server &
//	bin/loadtest -url http://localhost:8090 -data-dir /tmp/narrate-load \
//	    -subs 10000 -rate 1000 -duration 30s
//
// or with `make load`. With -db and -secret instead of -data-dir it works
// against any deployment whose database and HS256 secret it may use.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// config is the command line.
type config struct {
	url        string
	dataDir    string
	dbURL      string
	secret     string
	audience   string
	subs       int
	perSocket  int
	users      int
	rate       float64
	duration   time.Duration
	proto      string
	writers    int
	fields     string
	connRate   float64
	connConc   int
	settle     time.Duration
	drain      time.Duration
	timeout    time.Duration
	wait       time.Duration
	keep       bool
	verboseLog bool
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.url, "url", "http://localhost:8080", "server base URL")
	fs.StringVar(&c.dataDir, "data-dir", "", "the server's DATA_DIR: finds the local PostgreSQL (superuser) and the development JWT secret")
	fs.StringVar(&c.dbURL, "db", "", "superuser (or RLS-bypassing) database URL; overrides -data-dir's")
	fs.StringVar(&c.secret, "secret", "", "HS256 JWT secret the server verifies with; overrides -data-dir's")
	fs.StringVar(&c.audience, "audience", "authenticated", "token audience (the server's JWT_AUDIENCE)")
	fs.IntVar(&c.subs, "subs", 1000, "subscriptions, one generation each")
	fs.IntVar(&c.perSocket, "per-socket", 1, "subscriptions multiplexed on each websocket (a browser tab uses one socket for all its subscriptions)")
	fs.IntVar(&c.users, "users", 100, "users owning the generations (at most -subs)")
	fs.Float64Var(&c.rate, "rate", 1000, "progress updates per second, spread round-robin over the generations")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "how long to drive updates")
	fs.StringVar(&c.proto, "proto", protoTransportWS, "websocket subprotocol: graphql-transport-ws or graphql-ws")
	fs.IntVar(&c.writers, "writers", 4, "database connections committing updates")
	fs.StringVar(&c.fields, "fields", "id status progress updatedAt", "selection of generationProgress (progress is required)")
	fs.Float64Var(&c.connRate, "connect-rate", 1000, "new sockets per second while connecting (0: as fast as -connect-concurrency allows)")
	fs.IntVar(&c.connConc, "connect-concurrency", 100, "handshakes in flight at once while connecting")
	fs.DurationVar(&c.settle, "settle", 5*time.Second, "pause before each memory reading, so the server is idle")
	fs.DurationVar(&c.drain, "drain", 10*time.Second, "how long to wait for outstanding events after the last commit")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "per-socket handshake timeout")
	fs.DurationVar(&c.wait, "wait", 0, "wait up to this long for the server's /readyz before starting (for a server just launched)")
	fs.BoolVar(&c.keep, "keep", false, "keep the created users, story and generations")
	fs.BoolVar(&c.verboseLog, "v", false, "log progress while connecting and driving")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	case c.subs <= 0:
		return c, errors.New("-subs must be positive")
	case c.users <= 0:
		return c, errors.New("-users must be positive")
	case c.perSocket <= 0:
		return c, errors.New("-per-socket must be positive")
	case c.rate <= 0 || c.duration <= 0:
		return c, errors.New("-rate and -duration must be positive")
	case c.writers <= 0 || c.connConc <= 0:
		return c, errors.New("-writers and -connect-concurrency must be positive")
	case c.proto != protoTransportWS && c.proto != protoLegacyWS:
		return c, fmt.Errorf("-proto %q: want %s or %s", c.proto, protoTransportWS, protoLegacyWS)
	}
	c.perSocket = min(c.perSocket, c.subs)
	c.users = min(c.users, c.sockets())
	return c, nil
}

// sockets is how many websockets carry the subscriptions.
func (c config) sockets() int { return (c.subs + c.perSocket - 1) / c.perSocket }

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 2
	}
	level := slog.LevelWarn
	if cfg.verboseLog {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := newRunner(ctx, cfg, logger)
	if err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 1
	}
	defer r.close()
	res, err := r.run(ctx)
	if res != nil {
		res.print(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 1
	}
	return 0
}

// httpClient reads the server's metrics and readiness.
var httpClient = &http.Client{Timeout: 15 * time.Second}
