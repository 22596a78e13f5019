package localdb_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/localdb"
	"github.com/narrate/narrate/role"
)

// clusterDir returns a fresh directory the postgres user can reach (see the
// package documentation: t.TempDir is not reachable when running as root).
func clusterDir(t *testing.T, pattern string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func startCluster(t *testing.T, dir string) *localdb.Cluster {
	t.Helper()
	return startClusterWith(t, localdb.Options{Dir: dir})
}

// startClusterWith starts an ephemeral, quiet cluster with opts and stops it
// when the test ends.
func startClusterWith(t *testing.T, opts localdb.Options) *localdb.Cluster {
	t.Helper()
	opts.Ephemeral = true
	opts.Logger = slog.New(slog.DiscardHandler)
	c, err := localdb.Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return c
}

// migrateRolesAndTable stands in for the project's migrations: it creates the
// API roles when absent and one table only authenticated may read.
var migrateRolesAndTable = dbtest.SQLMigration(dbtest.APIRolesSQL + `
CREATE TABLE IF NOT EXISTS notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text NOT NULL);
GRANT SELECT, INSERT ON notes TO authenticated;
`)

func TestStartAndProvision(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A quote and a space in the path exercise the quoting of pg_ctl's -o.
	c := startCluster(t, clusterDir(t, "localdb it's-*"))
	if c.Port() <= 0 {
		t.Fatalf("Port() = %d", c.Port())
	}

	admin := dbtest.Connect(t, c.AdminURL("postgres"))
	if l := dbtest.LoginOf(t, admin); l.User != "postgres" || !l.Superuser {
		t.Fatalf("admin login = %+v, want superuser postgres", l)
	}

	var migrations atomic.Int32
	migrate := func(ctx context.Context, url string) error {
		migrations.Add(1)
		if !strings.Contains(url, "/app?") {
			t.Errorf("migrate got URL %q, want database app", url)
		}
		return migrateRolesAndTable(ctx, url)
	}
	appURL, err := localdb.Provision(ctx, c.AdminURL("postgres"), "app", migrate)
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	// Provisioning again is harmless and returns the same URL.
	again, err := localdb.Provision(ctx, c.AdminURL("postgres"), "app", migrate)
	if err != nil {
		t.Fatalf("second Provision: %v", err)
	}
	if again != appURL {
		t.Fatalf("second Provision URL = %q, want %q", again, appURL)
	}
	if got := migrations.Load(); got != 2 {
		t.Fatalf("migrate ran %d times, want 2", got)
	}

	app := dbtest.Connect(t, appURL)
	if l := dbtest.LoginOf(t, app); l != (dbtest.Login{User: role.Login, Database: "app"}) {
		t.Fatalf("app login = %+v, want non-superuser %q on app", l, role.Login)
	}
	// NOINHERIT: the login itself cannot read what authenticated may.
	if _, err := app.Exec(ctx, "SELECT * FROM notes"); dbtest.SQLState(err) != "42501" {
		t.Fatalf("select as %s: err = %v, want insufficient_privilege", role.Login, err)
	}
	for _, r := range role.API() {
		dbtest.Exec(t, app, "SET ROLE "+r)
	}
	dbtest.Exec(t, app, "SET ROLE authenticated")
	dbtest.Exec(t, app, "INSERT INTO notes (body) VALUES ('hello')")
	dbtest.Exec(t, app, "RESET ROLE")
	if _, err := app.Exec(ctx, "SET ROLE postgres"); dbtest.SQLState(err) != "42501" {
		t.Fatalf("SET ROLE postgres: err = %v, want insufficient_privilege", err)
	}
}

func TestRestartReusesDataDir(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := clusterDir(t, "localdb-restart-*")
	opts := localdb.Options{Dir: dir, Ephemeral: true, Logger: slog.New(slog.DiscardHandler)}

	first, err := localdb.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, first.AdminURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	dbtest.Exec(t, conn, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives')")
	_ = conn.Close(ctx)
	if err := first.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := first.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}

	second := startCluster(t, dir)
	var v string
	if err := dbtest.Connect(t, second.AdminURL("postgres")).QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil {
		t.Fatalf("read after restart: %v", err)
	}
	if v != "survives" {
		t.Fatalf("kept = %q, want %q", v, "survives")
	}
}

// TestStartStopsServerLeftRunning simulates a dev server that crashed without
// stopping its cluster: the next Start on the same directory must recover.
func TestStartStopsServerLeftRunning(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := clusterDir(t, "localdb-stale-*")
	orphan, err := localdb.Start(ctx, localdb.Options{Dir: dir, Ephemeral: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}

	c := startCluster(t, dir)
	if c.Port() == orphan.Port() {
		t.Fatalf("new cluster reused port %d while the old server held it", c.Port())
	}
	dbtest.Exec(t, dbtest.Connect(t, c.AdminURL("postgres")), "SELECT 1")
	shortCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(shortCtx, orphan.AdminURL("postgres")); err == nil {
		_ = conn.Close(ctx)
		t.Fatal("the server left running still answers on its old port")
	}
}

// TestReuse checks that Reuse starts a server when none runs, and otherwise
// attaches to the running one, which a Stop through the attached Cluster
// leaves running.
func TestReuse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := clusterDir(t, "localdb-reuse-*")
	owner := startClusterWith(t, localdb.Options{Dir: dir, Reuse: true})
	dbtest.Exec(t, dbtest.Connect(t, owner.AdminURL("postgres")), "SELECT 1")

	attached, err := localdb.Start(ctx, localdb.Options{Dir: dir, Reuse: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("Start with Reuse on a running server: %v", err)
	}
	if attached.Port() != owner.Port() {
		t.Fatalf("attached to port %d, want the running server's %d", attached.Port(), owner.Port())
	}
	if err := attached.Stop(ctx); err != nil {
		t.Fatalf("Stop of the attached cluster: %v", err)
	}
	dbtest.Exec(t, dbtest.Connect(t, owner.AdminURL("postgres")), "SELECT 1")
}

func TestStartFailureIncludesLogTail(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := clusterDir(t, "localdb-fail-*")

	_, err = localdb.Start(context.Background(), localdb.Options{
		Dir:       dir,
		Port:      l.Addr().(*net.TCPAddr).Port,
		Ephemeral: true,
		Logger:    slog.New(slog.DiscardHandler),
	})
	var se *localdb.StartError
	if !errors.As(err, &se) {
		t.Fatalf("Start on a taken port: err = %v, want *StartError", err)
	}
	if !strings.Contains(se.LogTail, "could not bind") {
		t.Fatalf("LogTail does not say why:\n%s", se.LogTail)
	}
	if !strings.Contains(err.Error(), se.LogTail) {
		t.Fatalf("error message lacks the log tail: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pgdata", "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a server seems to be left running (postmaster.pid: %v)", err)
	}
}

func TestStartRejectsUnreachableDir(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("only root hands the cluster to another user")
	}
	parent := clusterDir(t, "localdb-private-*")
	if err := os.Chmod(parent, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := localdb.Start(context.Background(), localdb.Options{
		Dir:    filepath.Join(parent, "cluster"),
		Logger: slog.New(slog.DiscardHandler),
	})
	if err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Fatalf("Start under a root-only dir: err = %v, want a reachability error", err)
	}
}

func TestStartRequiresDir(t *testing.T) {
	t.Parallel()
	if _, err := localdb.Start(context.Background(), localdb.Options{}); err == nil {
		t.Fatal("Start without Dir succeeded")
	}
}

func TestProvisionPrivileges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := startCluster(t, clusterDir(t, "localdb-priv-*"))
	admin := dbtest.Connect(t, c.AdminURL("postgres"))
	dbtest.Exec(t, admin, "CREATE ROLE creator LOGIN CREATEDB")
	creatorURL := strings.Replace(c.AdminURL("postgres"), "postgres@", "creator@", 1)

	// Without the API roles the login role cannot be set up.
	if _, err := localdb.Provision(ctx, c.AdminURL("postgres"), "noroles", nil); err == nil || !strings.Contains(err.Error(), "do not exist") {
		t.Fatalf("Provision without API roles: err = %v", err)
	}

	// A user that may create databases but not roles gets ErrRolePrivilege,
	// after its database was created and migrated.
	_, err := localdb.Provision(ctx, creatorURL, "bycreator", migrateRolesAndTableAs(admin))
	if !errors.Is(err, localdb.ErrRolePrivilege) {
		t.Fatalf("Provision as creator: err = %v, want ErrRolePrivilege", err)
	}
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'bycreator')").Scan(&exists); err != nil || !exists {
		t.Fatalf("database bycreator exists = %v (%v), want true", exists, err)
	}

	// Once the login role is in place, the same user needs no privilege.
	if _, err := localdb.Provision(ctx, c.AdminURL("postgres"), "bysuper", nil); err != nil {
		t.Fatalf("Provision as superuser: %v", err)
	}
	appURL, err := localdb.Provision(ctx, creatorURL, "bycreator", nil)
	if err != nil {
		t.Fatalf("Provision as creator with the login role in place: %v", err)
	}
	dbtest.Exec(t, dbtest.Connect(t, appURL), "SET ROLE anon")
}

// migrateRolesAndTableAs returns a migrate func that creates the API roles
// through the superuser connection (the migrating user may not create roles)
// and then the table through the given URL.
func migrateRolesAndTableAs(super *pgx.Conn) func(ctx context.Context, url string) error {
	return func(ctx context.Context, url string) error {
		if _, err := super.Exec(ctx, dbtest.APIRolesSQL); err != nil {
			return err
		}
		return dbtest.SQLMigration("CREATE TABLE notes (body text)")(ctx, url)
	}
}

func TestWithDatabase(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, db, want string
		wantErr            bool
	}{
		{name: "replaces path", in: "postgres://u@h:5/old?sslmode=disable", db: "new", want: "postgres://u@h:5/new?sslmode=disable"},
		{name: "keeps password", in: "postgresql://u:p%40ss@h/old", db: "x", want: "postgresql://u:p%40ss@h/x"},
		{name: "adds path", in: "postgres://u@h", db: "x", want: "postgres://u@h/x"},
		{name: "drops dbname param", in: "postgres://u@h/a?dbname=b&sslmode=require", db: "c", want: "postgres://u@h/c?sslmode=require"},
		{name: "escapes name", in: "postgres://u@h/a", db: "a b", want: "postgres://u@h/a%20b"},
		{name: "rejects keyword DSN", in: "host=h user=u", db: "x", wantErr: true},
		{name: "rejects other scheme", in: "mysql://u@h/a", db: "x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := localdb.WithDatabase(tt.in, tt.db)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestTemporaryClusterCleanedUpOnCrash runs a child test binary that starts a
// Temporary cluster and exits without stopping it, as a panicking test would;
// the watchdog must then stop the server and remove the directory.
func TestTemporaryClusterCleanedUpOnCrash(t *testing.T) {
	if dir := os.Getenv("LOCALDB_TEST_CRASH_DIR"); dir != "" {
		c, err := localdb.Start(context.Background(), localdb.Options{
			Dir: dir, Ephemeral: true, Temporary: true, Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			fmt.Println("start failed:", err)
			os.Exit(1)
		}
		fmt.Printf("port=%d\n", c.Port())
		os.Exit(0)
	}
	t.Parallel()
	dir := clusterDir(t, "localdb-crash-*")
	cmd := osexec.Command(os.Args[0], "-test.run=^TestTemporaryClusterCleanedUpOnCrash$")
	cmd.Env = append(os.Environ(), "LOCALDB_TEST_CRASH_DIR="+dir)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var port int
	if _, err := fmt.Sscanf(string(out), "port=%d", &port); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}

	// The watchdog works asynchronously after the child's exit; the deadline
	// only bounds a failing test, it asserts nothing about speed.
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, statErr := os.Stat(dir)
		conn, dialErr := net.Dial("tcp", net.JoinHostPort("127.0.0.1", fmt.Sprint(port)))
		if dialErr == nil {
			conn.Close()
		}
		if errors.Is(statErr, os.ErrNotExist) && dialErr != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the child exited: dir stat err = %v, server dial err = %v; want both gone", statErr, dialErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
