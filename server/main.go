// Command server runs Narrate: the GraphQL API with its subscriptions, the
// narration worker, and the tools around them.
//
//	server [serve]       serve the API and run the worker (the default)
//	server migrate       apply database migrations and exit
//	server worker        run the narration worker only, without HTTP
//	server token --email alice@example.com [--admin] [--ttl 24h]
//	                     print a signed development access token
//
// Configuration comes from the environment; see the README.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/narrate/narrate/api"
	"github.com/narrate/narrate/app"
	"github.com/narrate/narrate/config"
)

func main() {
	if status, ok := runInForeground(os.Args[1:]); ok {
		os.Exit(status)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usage is the answer to help, -h and --help.
const usage = `Narrate: the GraphQL API, its subscriptions and the narration worker.

Usage:
  server [serve]       serve the API and GraphiQL, and run the worker (the default)
  server migrate       apply the database migrations and exit
  server worker        run the narration worker only, without HTTP
  server token --email EMAIL [--admin] [--ttl 24h]
                       print a signed development access token
  server help          print this help

Configuration comes from the environment (DATABASE_URL, PORT, JWT_SECRET, ...);
see the README. With no DATABASE_URL, the server runs its own PostgreSQL
cluster under DATA_DIR (./.data).
`

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	// Help needs no configuration, and must never start anything.
	if cmd == "help" || (cmd != "token" && slices.ContainsFunc(args, isHelpFlag)) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if !slices.Contains([]string{"serve", "worker", "migrate", "token"}, cmd) {
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if cmd != "token" && len(args) > 0 {
		fmt.Fprintf(stderr, "%s takes no arguments (configuration comes from the environment)\n\n%s", cmd, usage)
		return 2
	}

	logger, err := newLogger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "configuration:", err)
		return 2
	}
	slog.SetDefault(logger)
	cfg, err := config.FromEnv()
	if err == nil && cmd != "migrate" && cmd != "worker" {
		// Serving verifies tokens and token signs one; migrating and
		// narrating need neither.
		err = cfg.RequireTokenKey()
	}
	if err != nil {
		fmt.Fprintln(stderr, "configuration:", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch cmd {
	case "serve":
		err = serve(ctx, cfg, logger, app.ModeServe)
	case "worker":
		err = serve(ctx, cfg, logger, app.ModeWorker)
	case "migrate":
		err = migrate(ctx, cfg, logger)
	case "token":
		err = token(ctx, cfg, logger, args, stdout, stderr)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var usage usageError
		if errors.As(err, &usage) {
			fmt.Fprintln(stderr, err)
			return 2
		}
		logger.Error(cmd+" failed", "err", err)
		return 1
	}
	return 0
}

// isHelpFlag reports a request for help.
func isHelpFlag(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

// usageError is a mistake in the command line.
type usageError struct{ error }

// newLogger logs text for people at a terminal, or JSON when LOG_FORMAT is
// json, from the level LOG_LEVEL names (debug, info, warn or error; info
// when unset). Every record carries the request id of its context.
func newLogger(w io.Writer) (*slog.Logger, error) {
	level := slog.LevelInfo
	if v := os.Getenv("LOG_LEVEL"); v != "" {
		if err := level.UnmarshalText([]byte(v)); err != nil {
			return nil, fmt.Errorf("LOG_LEVEL %q: want debug, info, warn or error", v)
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if strings.EqualFold(os.Getenv("LOG_FORMAT"), "json") {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(api.LogHandler{Handler: h}), nil
}
