package localdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrNoBinaries is returned by Start when no PostgreSQL server binaries can be found.
var ErrNoBinaries = errors.New("localdb: no PostgreSQL binaries found")

// binFinder holds the inputs of BinDir discovery so that tests can replace the
// environment, pg_config and the filesystem root of the search.
type binFinder struct {
	envBinDir string
	pgConfig  func(ctx context.Context) (string, error)
	globRoot  string
}

func defaultBinFinder() binFinder {
	return binFinder{
		envBinDir: os.Getenv("PG_BINDIR"),
		pgConfig:  pgConfigBinDir,
		globRoot:  "/usr/lib/postgresql",
	}
}

// pgConfigBinDir asks pg_config on PATH where the server binaries live.
func pgConfigBinDir(ctx context.Context) (string, error) {
	path, err := exec.LookPath("pg_config")
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, path, "--bindir").Output()
	if err != nil {
		return "", fmt.Errorf("pg_config --bindir: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// find returns the first directory containing initdb, trying $PG_BINDIR, then
// pg_config, then the highest version under /usr/lib/postgresql. An explicit
// $PG_BINDIR that lacks initdb is an error rather than a reason to fall back,
// because silently using another version would surprise whoever set it.
func (f binFinder) find(ctx context.Context) (string, error) {
	if f.envBinDir != "" {
		if !hasInitdb(f.envBinDir) {
			return "", fmt.Errorf("%w: PG_BINDIR=%s has no initdb", ErrNoBinaries, f.envBinDir)
		}
		return f.envBinDir, nil
	}
	if f.pgConfig != nil {
		// pg_config may come from a client-only package (libpq-dev) whose
		// bindir lacks the server, so its answer is only used when it fits.
		if dir, err := f.pgConfig(ctx); err == nil && dir != "" && hasInitdb(dir) {
			return dir, nil
		}
	}
	entries, err := os.ReadDir(f.globRoot)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w: read %s: %v", ErrNoBinaries, f.globRoot, err)
	}
	best, bestVersion := "", []int(nil)
	for _, e := range entries {
		version, ok := parseVersion(e.Name())
		if !ok {
			continue
		}
		dir := filepath.Join(f.globRoot, e.Name(), "bin")
		if !hasInitdb(dir) {
			continue
		}
		if bestVersion == nil || slices.Compare(version, bestVersion) > 0 {
			best, bestVersion = dir, version
		}
	}
	if best == "" {
		return "", fmt.Errorf("%w: set PG_BINDIR or Options.BinDir", ErrNoBinaries)
	}
	return best, nil
}

func hasInitdb(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, "initdb"))
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// parseVersion parses directory names such as "15" or "9.6".
func parseVersion(name string) ([]int, bool) {
	parts := strings.Split(name, ".")
	version := make([]int, 0, len(parts))
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, false
		}
		version = append(version, n)
	}
	return version, true
}
