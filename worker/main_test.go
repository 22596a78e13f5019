package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/migrations"
	"github.com/narrate/narrate/storage"
	"github.com/narrate/narrate/voice/elevenlabs"
)

// The crash test runs a worker in a child process (this test binary,
// started with helperDBEnv set) and kills it with SIGKILL mid-generation.
const (
	helperDBEnv  = "NARRATE_WORKER_HELPER_DB"
	helperELEnv  = "NARRATE_WORKER_HELPER_ELEVENLABS"
	helperDirEnv = "NARRATE_WORKER_HELPER_DIR"
)

func TestMain(m *testing.M) {
	if url := os.Getenv(helperDBEnv); url != "" {
		os.Exit(helperMain(url, os.Getenv(helperELEnv), os.Getenv(helperDirEnv)))
	}
	dbtest.Main(m, migrations.Up)
}

// helperMain runs a worker until the process is killed, with the same
// short lease and chunk limit as the in-process workers of the tests.
func helperMain(dbURL, elURL, dir string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	d, err := db.Open(ctx, dbURL, db.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer d.Close()
	provider, err := elevenlabs.New(elevenlabs.Config{APIKey: testAPIKey, BaseURL: elURL, ChunkLimit: testChunkLimit})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	store, err := storage.NewLocal(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	w, err := New(Config{
		Queue: d, Provider: provider, Store: store, Owner: "doomed-worker",
		Lease: testLease, PollInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := w.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
