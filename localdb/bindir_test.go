package localdb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fakeBinDir makes root/sub/bin, with an executable initdb when withInitdb.
func fakeBinDir(t *testing.T, root, sub string, withInitdb bool) string {
	t.Helper()
	dir := filepath.Join(root, sub, "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if withInitdb {
		if err := os.WriteFile(filepath.Join(dir, "initdb"), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBinFinder(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	env := fakeBinDir(t, root, "env", true)
	envEmpty := fakeBinDir(t, root, "envempty", false)
	fromConfig := fakeBinDir(t, root, "config", true)
	versions := filepath.Join(root, "versions")
	fakeBinDir(t, versions, "9.6", true)
	v15 := fakeBinDir(t, versions, "15", true)
	fakeBinDir(t, versions, "16", false)
	fakeBinDir(t, versions, "99beta", true)
	onlyOld := filepath.Join(root, "onlyold")
	fakeBinDir(t, onlyOld, "9.6", true)

	pgConfig := func(dir string) func(context.Context) (string, error) {
		return func(context.Context) (string, error) { return dir, nil }
	}
	failingPgConfig := func(context.Context) (string, error) { return "", errors.New("no pg_config") }

	tests := []struct {
		name    string
		finder  binFinder
		want    string
		wantErr bool
	}{
		{name: "PG_BINDIR wins", finder: binFinder{envBinDir: env, pgConfig: pgConfig(fromConfig), globRoot: versions}, want: env},
		{name: "PG_BINDIR without initdb is an error", finder: binFinder{envBinDir: envEmpty, pgConfig: pgConfig(fromConfig), globRoot: versions}, wantErr: true},
		{name: "pg_config next", finder: binFinder{pgConfig: pgConfig(fromConfig), globRoot: versions}, want: fromConfig},
		{name: "client-only pg_config falls through", finder: binFinder{pgConfig: pgConfig(envEmpty), globRoot: versions}, want: v15},
		{name: "failing pg_config falls through", finder: binFinder{pgConfig: failingPgConfig, globRoot: versions}, want: v15},
		{name: "older version when alone", finder: binFinder{pgConfig: failingPgConfig, globRoot: onlyOld}, want: filepath.Join(onlyOld, "9.6", "bin")},
		{name: "nothing found", finder: binFinder{pgConfig: failingPgConfig, globRoot: filepath.Join(root, "missing")}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.finder.find(context.Background())
			if tt.wantErr {
				if !errors.Is(err, ErrNoBinaries) {
					t.Fatalf("err = %v, want ErrNoBinaries", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestQuoting(t *testing.T) {
	t.Parallel()
	if got, want := shellQuote(`a'b`), `'a'\''b'`; got != want {
		t.Errorf("shellQuote = %s, want %s", got, want)
	}
	if got, want := gucQuote(`/tmp/a "b", c`), `"/tmp/a ""b"", c"`; got != want {
		t.Errorf("gucQuote = %s, want %s", got, want)
	}
}
