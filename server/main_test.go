package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/narrate/narrate/app"
	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/localdb"
)

// TestHelpStartsNothing: every way of asking for help prints the usage on
// stdout and exits 0 without reading the configuration (PORT is invalid
// here, so a command that read it would fail) or starting anything.
func TestHelpStartsNothing(t *testing.T) {
	t.Setenv("PORT", "not a port")
	tests := []struct {
		args   []string
		status int
	}{
		{[]string{"help"}, 0},
		{[]string{"-h"}, 0},
		{[]string{"--help"}, 0},
		{[]string{"-help"}, 0},
		{[]string{"serve", "-h"}, 0},
		{[]string{"worker", "--help"}, 0},
		{[]string{"migrate", "help"}, 0},
		{[]string{"serve", "now"}, 2},
		{[]string{"serv"}, 2},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if got := run(tt.args, &stdout, &stderr); got != tt.status {
				t.Fatalf("exit status %d, want %d; stderr %s", got, tt.status, stderr.String())
			}
			out := stdout.String() + stderr.String()
			if !strings.Contains(out, "Usage:") || !strings.Contains(out, "server token --email") {
				t.Errorf("output %q is not the usage", out)
			}
			if tt.status == 0 && stderr.Len() > 0 {
				t.Errorf("help wrote to stderr: %s", stderr.String())
			}
		})
	}
}

// TestLogLevel: LOG_LEVEL names the least severe level logged, and a
// level that is not one of slog's is a configuration error (exit 2), not a
// silent fallback to info.
func TestLogLevel(t *testing.T) {
	tests := []struct {
		level           string
		wantInfo, valid bool
	}{
		{"", true, true},
		{"debug", true, true},
		{"INFO", true, true},
		{"warn", false, true},
		{"error", false, true},
		{"loud", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			t.Setenv("LOG_LEVEL", tt.level)
			var out bytes.Buffer
			logger, err := newLogger(&out)
			if !tt.valid {
				if err == nil {
					t.Fatal("newLogger accepted it")
				}
				var stdout, stderr bytes.Buffer
				if got := run([]string{"migrate"}, &stdout, &stderr); got != 2 || !strings.Contains(stderr.String(), "LOG_LEVEL") {
					t.Fatalf("run: exit %d, stderr %q; want 2 naming LOG_LEVEL", got, stderr.String())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			logger.Info("an info record")
			logger.Error("an error record")
			if got := strings.Contains(out.String(), "an info record"); got != tt.wantInfo {
				t.Errorf("info logged: %v, want %v: %s", got, tt.wantInfo, out.String())
			}
			if !strings.Contains(out.String(), "an error record") {
				t.Errorf("error not logged: %s", out.String())
			}
		})
	}
}

// TestServeLocalEndToEnd runs the real binary the way the README's `make
// run` does: no DATABASE_URL, so it starts its own PostgreSQL under
// DATA_DIR, migrates, loads the demo stories and serves. A second process
// mints a token against the running cluster; the API answers with it;
// SIGTERM stops everything with exit status 0.
func TestServeLocalEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	t.Parallel()
	tmp := tempDir(t, "narrate-serve-", true)
	serveEndToEnd(t, tmp, filepath.Join(tmp, "data"))
}

// tempDir makes a directory the test removes when it ends. As root,
// PostgreSQL runs as the postgres user, which must reach a DATA_DIR:
// reachable opens the directory to it, otherwise private to its owner.
func tempDir(t *testing.T, pattern string, reachable bool) string {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if reachable {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// localEnv is the environment of a server in local development, on
// dataDir and port, with its embedded worker: nothing of the test's own
// environment (a database, secrets, a voice key) reaches it.
func localEnv(dataDir string, port int) []string {
	return append(os.Environ(),
		"DATA_DIR="+dataDir, "PORT="+strconv.Itoa(port), "WORKER_CONCURRENCY=1",
		"DATABASE_URL=", "TEST_DATABASE_URL=", "JWT_SECRET=", "JWKS_URL=", "ELEVENLABS_API_KEY=")
}

// TestServeLocalWithUnreachableDataDir runs the server as root with DATA_DIR
// where the postgres user cannot go (a checkout under /root, say): the
// cluster is kept in a directory of its own and everything else works.
func TestServeLocalWithUnreachableDataDir(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	if os.Geteuid() != 0 {
		t.Skip("only root runs PostgreSQL as another user")
	}
	t.Parallel()
	tmp := tempDir(t, "narrate-private-", false)
	dataDir := filepath.Join(tmp, "data")
	t.Cleanup(func() { _ = os.RemoveAll(localdb.FallbackDir(dataDir)) })
	serveEndToEnd(t, tmp, dataDir)
}

func serveEndToEnd(t *testing.T, tmp, dataDir string) {
	t.Helper()
	bin := filepath.Join(tmp, "server")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	port := freePort(t)
	env := localEnv(dataDir, port)

	srv := exec.Command(bin)
	srv.Env = env
	logs := &dbtest.Buffer{}
	srv.Stdout, srv.Stderr = logs, logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	t.Cleanup(func() {
		_ = srv.Process.Kill()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})

	base := "http://127.0.0.1:" + strconv.Itoa(port)
	waitReady(t, base+"/readyz", exited)
	if !strings.Contains(logs.String(), "development token for alice@example.com") {
		t.Error("the server did not print a development token")
	}

	tokenCmd := exec.Command(bin, "token", "--email", "bob@example.com")
	tokenCmd.Env = env
	var stderr bytes.Buffer
	tokenCmd.Stderr = &stderr
	out, err := tokenCmd.Output()
	if err != nil {
		t.Fatalf("token: %v\n%s", err, stderr.String())
	}
	if msg := stderr.String(); !strings.Contains(msg, "attaching to the local PostgreSQL cluster already running") || strings.Contains(msg, "starting a local") {
		t.Errorf("token's messages do not say it attached to the running cluster:\n%s", msg)
	}
	token := strings.TrimSpace(string(out))
	if strings.Count(token, ".") != 2 || strings.Contains(token, "\n") {
		t.Fatalf("token printed %q, want the token alone", out)
	}

	// migrate needs nothing but DATABASE_URL (the shared bench harness runs
	// it so): no token key, no voice key.
	_, port, ok := localdb.Running(app.Layout{DataDir: dataDir}.ClusterDir())
	if !ok {
		_, port, ok = localdb.Running(app.Layout{DataDir: dataDir}.FallbackClusterDir())
	}
	if !ok {
		t.Fatal("no running local cluster found under DATA_DIR")
	}
	migrateCmd := exec.Command(bin, "migrate")
	migrateCmd.Env = append(os.Environ(), "DATABASE_URL=postgres://postgres@127.0.0.1:"+strconv.Itoa(port)+"/"+app.LocalDatabase+"?sslmode=disable",
		"JWT_SECRET=", "JWKS_URL=", "ELEVENLABS_API_KEY=", "VOICE_PROVIDER=")
	if out, err := migrateCmd.CombinedOutput(); err != nil {
		t.Fatalf("migrate with DATABASE_URL alone: %v\n%s", err, out)
	}

	var res struct {
		Data struct {
			Viewer  struct{ Email string }
			Stories struct{ Nodes []struct{ Title string } }
		}
		Errors []any
	}
	body := `{"query":"{ viewer { email } stories { nodes { title } } }"}`
	req, _ := http.NewRequest(http.MethodPost, base+"/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	getJSON(t, req, &res)
	if len(res.Errors) > 0 || res.Data.Viewer.Email != "bob@example.com" || len(res.Data.Stories.Nodes) != len(app.DemoStories) {
		t.Fatalf("response %+v, want bob's viewer and %d demo stories", res, len(app.DemoStories))
	}

	page, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != http.StatusOK || !bytes.Contains(bytes.ToLower(html), []byte("graphiql")) {
		t.Fatalf("GraphiQL page: %d %.200s", page.StatusCode, html)
	}

	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wantCleanExit(t, exited, 30*time.Second, "SIGTERM", logs, nil)
}

// wantCleanExit waits up to limit for a process that was told to stop
// (by what) to exit with status 0, having stopped its local PostgreSQL.
// drained, when not nil, is closed once everything the process wrote has
// been copied into output: a terminal's output is read by a goroutine of
// the test, which may still hold the last lines when the process has
// already exited. (exec's Wait drains a pipe itself, so a pipe needs none.)
func wantCleanExit(t *testing.T, exited <-chan error, limit time.Duration, what string, output *dbtest.Buffer, drained <-chan struct{}) {
	t.Helper()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after %s: %v, want status 0", what, err)
		}
	case <-time.After(limit):
		t.Fatalf("no exit within %v of %s", limit, what)
	}
	if drained != nil {
		select {
		case <-drained:
		case <-time.After(10 * time.Second):
			t.Error("the terminal's output was not closed within 10s of the exit: a child still holds it")
		}
	}
	if !strings.Contains(output.String(), "postgres stopped") {
		t.Error("the local PostgreSQL was not stopped")
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitReady(t *testing.T, url string, exited <-chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("server exited before it was ready: %v", err)
		case <-ctx.Done():
			t.Fatal("server not ready within 90 s")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func getJSON(t *testing.T, req *http.Request, v any) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
