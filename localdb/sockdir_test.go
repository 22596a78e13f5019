package localdb

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLongDirPutsSocketInTemp checks that a Dir too deep for a Unix socket
// path still starts, with its socket in a temporary directory that Stop
// removes.
func TestLongDirPutsSocketInTemp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Dir itself, not a directory under it: MkdirTemp makes directories the
	// server user cannot enter when running as root.
	dir, err := os.MkdirTemp("", "localdb-long-"+strings.Repeat("d", 100)+"-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })

	c, err := Start(ctx, Options{Dir: dir, Ephemeral: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.Stop(ctx)
	})
	if !c.tempSockDir || strings.HasPrefix(c.sockDir, dir) {
		t.Fatalf("socket dir %s, want a temporary one outside the %d-byte Dir", c.sockDir, len(dir))
	}
	if _, err := os.Stat(filepath.Join(c.sockDir, ".s.PGSQL."+strconv.Itoa(c.Port()))); err != nil {
		t.Fatalf("server socket: %v", err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(c.sockDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket dir after Stop: %v, want it removed", err)
	}
}
