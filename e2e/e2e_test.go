// Package e2e runs the stock JavaScript GraphQL clients a single-page app
// would use, each with its default options, against the real server binary
// on a real PostgreSQL: @urql/core with subscriptionExchange, @apollo/client
// with HttpLink alone and with GraphQLWsLink, graphql-ws, graphql-sse,
// apollo-upload-client, and graphql-http's GraphQL-over-HTTP audit. The
// scripts are in clients/; their packages are pinned by package-lock.json
// and installed (once per lockfile) under node_modules.
package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/narrate/narrate/auth"
	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/migrations"
)

func TestMain(m *testing.M) { dbtest.Main(m, migrations.Up) }

var secret = []byte("e2e-secret-e2e-secret-e2e-secret-0123")

func TestStockClients(t *testing.T) {
	if testing.Short() {
		t.Skip("installs npm packages and runs the server binary")
	}
	requireNode(t)
	t.Parallel()
	npmInstall(t)
	srv := startServer(t)

	scripts := []struct {
		name, script string
		env          []string
		voice        bool // the user has a verified voice already
	}{
		{name: "urql", script: "urql.mjs", voice: true},
		{name: "apollo HttpLink", script: "apollo.mjs", voice: true},
		{name: "apollo GraphQLWsLink", script: "apollo.mjs", env: []string{"LINK=ws"}, voice: true},
		{name: "graphql-ws", script: "graphql-ws.mjs", voice: true},
		{name: "graphql-sse", script: "graphql-sse.mjs", voice: true},
		{name: "apollo-upload-client", script: "upload.mjs"},
		{name: "graphql-http audit", script: "audit.mjs"},
	}
	other := srv.user(t, "other@example.com", true)
	otherGen := srv.generation(t, other)
	for i, s := range scripts {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			u := srv.user(t, "user"+strconv.Itoa(i)+"@example.com", s.voice)
			env := append(os.Environ(),
				"API="+srv.url+"/graphql",
				"TOKEN="+u.token,
				"OTHER_TOKEN="+other.token,
				"OTHER_GENERATION="+otherGen.String(),
				"STORY="+srv.story.String(),
			)
			node(t, append(env, s.env...), filepath.Join("clients", s.script))
		})
	}
}

// requireNode skips where Node.js is not installed, except in CI (CI is
// set), where the suite must run.
func requireNode(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is needed by the client suite: %v", tool, err)
			}
			t.Skipf("%s is not installed: skipping the stock-client suite", tool)
		}
	}
}

// npmInstall runs npm ci when node_modules was not installed from this
// very package-lock.json, which a stamp file under node_modules records;
// repeated runs reuse the installed packages.
func npmInstall(t *testing.T) {
	t.Helper()
	lock, err := os.ReadFile("package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:])
	stamp := filepath.Join("node_modules", ".narrate-lock-sha256")
	if got, err := os.ReadFile(stamp); err == nil && string(got) == want {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	if err := os.WriteFile(stamp, []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
}

// node runs one client script, failing the test with its output.
func node(t *testing.T, env []string, script string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, out)
	}
	t.Logf("node %s:\n%s", script, out)
}

// server is the running server binary and its database.
type server struct {
	url   string
	admin *pgxpool.Pool
	story uuid.UUID
}

// startServer builds the server and runs it on a fresh database, as in
// production: migrated, DATABASE_URL the non-superuser login, the embedded
// worker with the local voice provider.
func startServer(t *testing.T) *server {
	t.Helper()
	d := dbtest.New(t)
	admin, err := pgxpool.New(context.Background(), d.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)

	dir, err := os.MkdirTemp("", "narrate-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	bin := filepath.Join(dir, "server")
	if out, err := exec.Command("go", "build", "-o", bin, "../server").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	port := freePort(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+d.AppURL, "LISTEN_DATABASE_URL=", "MIGRATE_ON_START=false",
		"JWT_SECRET="+string(secret), "JWKS_URL=", "ELEVENLABS_API_KEY=", "STORAGE_S3_BUCKET=", "CORS_ORIGINS=",
		"DATA_DIR="+filepath.Join(dir, "data"), "PORT="+strconv.Itoa(port), "PUBLIC_URL=",
		"WORKER_CONCURRENCY=2",
	)
	logs, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close() // the server has its own descriptor
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("server exit: %v", err)
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("server did not stop within 15 s of SIGINT")
		}
		if t.Failed() {
			out, _ := os.ReadFile(logs.Name())
			t.Logf("server log:\n%s", out)
		}
	})

	s := &server{url: "http://localhost:" + strconv.Itoa(port), admin: admin}
	waitUntilReady(t, s.url+"/readyz", exited)
	s.scan(t, &s.story, `INSERT INTO stories (title, slug, content)
		VALUES ('The Fox and the Grapes', 'the-fox-and-the-grapes', 'A hungry fox saw some grapes. They were out of reach. He said they were sour.')
		RETURNING id`)
	return s
}

// user is a test user with a token.
type user struct {
	id    uuid.UUID
	token string
}

// user creates an auth user, with a verified voice when voice is set.
func (s *server) user(t *testing.T, email string, voice bool) user {
	t.Helper()
	var u user
	s.scan(t, &u.id, `INSERT INTO auth.users (email) VALUES ($1) RETURNING id`, email)
	if voice {
		s.scan(t, new(uuid.UUID), `INSERT INTO voice_samples (user_id, elevenlabs_voice_id, verification_phrase, verified)
			VALUES ($1, 'local-voice', 'apple river candle', true) RETURNING id`, u.id)
	}
	var err error
	if u.token, err = auth.Mint(secret, u.id, email, false, "authenticated", time.Hour); err != nil {
		t.Fatal(err)
	}
	return u
}

// generation inserts a pending generation of the story for u.
func (s *server) generation(t *testing.T, u user) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	s.scan(t, &id, `INSERT INTO story_generations (user_id, story_id, status) VALUES ($1, $2, 'failed') RETURNING id`, u.id, s.story)
	return id
}

func (s *server) scan(t *testing.T, dst any, sql string, args ...any) {
	t.Helper()
	if err := s.admin.QueryRow(context.Background(), sql, args...).Scan(dst); err != nil {
		t.Fatalf("%s: %v", sql, err)
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

// waitUntilReady polls url until it answers 200, the server exits, or a
// minute passes.
func waitUntilReady(t *testing.T, url string, exited <-chan error) {
	t.Helper()
	deadline := time.After(time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			t.Fatalf("server exited before it was ready: %v", errors.Join(err, errors.New("see the server log")))
		case <-deadline:
			t.Fatal("server not ready within a minute")
		case <-tick.C:
			if res, err := http.Get(url); err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					return
				}
			}
		}
	}
}
