// Package e2e runs the stock JavaScript GraphQL clients a single-page app
// would use, each with its default options, against the whole server (as
// the binary assembles it, through the test kit) on a real PostgreSQL:
// @urql/core with subscriptionExchange, @apollo/client with HttpLink alone
// and with GraphQLWsLink, graphql-ws, graphql-sse, apollo-upload-client,
// and graphql-http's GraphQL-over-HTTP audit. The scripts are in clients/;
// their packages are pinned by package-lock.json and installed (once per
// lockfile) under node_modules.
package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/app/apptest"
	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/migrations"
)

func TestMain(m *testing.M) { dbtest.Main(m, migrations.Up) }

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
				"API="+srv.URL+"/graphql",
				"TOKEN="+u.Token,
				"OTHER_TOKEN="+other.Token,
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

// server is a complete server (the test kit's) with the fixtures the
// scripts share.
type server struct {
	*apptest.Server
	story uuid.UUID
}

// startServer starts the whole server, as the binary assembles it, on a
// fresh database: the non-superuser login, the embedded worker with the
// local voice provider, a real port.
func startServer(t *testing.T) *server {
	t.Helper()
	s := &server{Server: apptest.New(t, apptest.WithWorker())}
	s.Scan(`INSERT INTO stories (title, slug, content)
		VALUES ('The Fox and the Grapes', 'the-fox-and-the-grapes', 'A hungry fox saw some grapes. They were out of reach. He said they were sour.')
		RETURNING id`, nil, &s.story)
	return s
}

// user creates a user with a token, with a verified voice when voice is set.
func (s *server) user(t *testing.T, email string, voice bool) apptest.User {
	t.Helper()
	u := s.On(t).NewUser(email, false)
	if voice {
		s.On(t).Exec(`INSERT INTO voice_samples (user_id, elevenlabs_voice_id, verification_phrase, verified)
			VALUES ($1, 'local-voice', 'apple river candle', true)`, u.ID)
	}
	return u
}

// generation inserts a finished generation of the story for u.
func (s *server) generation(t *testing.T, u apptest.User) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	s.On(t).Scan(`INSERT INTO story_generations (user_id, story_id, status) VALUES ($1, $2, 'failed') RETURNING id`,
		[]any{u.ID, s.story}, &id)
	return id
}
