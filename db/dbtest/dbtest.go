// Package dbtest gives every test its own fresh, migrated PostgreSQL database.
//
// A test package wires it up once:
//
//	func TestMain(m *testing.M) { dbtest.Main(m, migrations.Up) }
//
// and each test calls New. Main migrates a template database once per test
// binary; New copies it with CREATE DATABASE ... TEMPLATE, which takes
// milliseconds, so tests can run in parallel on databases of their own.
//
// By default Main runs an ephemeral cluster with localdb. Setting
// TEST_DATABASE_URL (else DATABASE_URL) uses that server instead; its user
// must be allowed to create databases. If that user may not create roles
// either, DB.AppURL is the same as DB.AdminURL, because the application's
// non-superuser login cannot be set up.
//
// A test database is dropped WITH (FORCE) when its test ends, which ends the
// sessions still connected to it. A TEST_DATABASE_URL user that is neither a
// superuser nor a member of pg_signal_backend cannot end other roles'
// sessions, so with such a user tests must close their AppURL connections
// themselves (a t.Cleanup registered after New runs before the drop).
// Databases of a test binary that crashes are left behind on such a server;
// their names start with "dbtest_". The ephemeral cluster, by contrast, is
// stopped and removed even when the test binary crashes.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/narrate/narrate/localdb"
)

// DB is one test's database.
type DB struct {
	// Name is the database name.
	Name string
	// AdminURL connects to the database as the superuser (or as the
	// TEST_DATABASE_URL user).
	AdminURL string
	// AppURL connects to the database as the application's non-superuser
	// login (role.Login), or equals AdminURL when that login could not
	// be set up (see the package documentation).
	AppURL string
}

// current is the environment Main set up; New reads it. It is written once,
// before any test runs.
var current *environment

// Main is called from TestMain. It starts an ephemeral cluster (or uses
// TEST_DATABASE_URL, else DATABASE_URL), creates and migrates a template
// database with migrate, runs the tests, drops what it created, stops the
// cluster and exits with the tests' exit code.
func Main(m *testing.M, migrate func(ctx context.Context, url string) error) {
	os.Exit(run(m, migrate))
}

func run(m *testing.M, migrate func(ctx context.Context, url string) error) (code int) {
	// testing.Verbose needs parsed flags; m.Run does not parse them again.
	flag.Parse()
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	setupCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	baseURL := os.Getenv("TEST_DATABASE_URL")
	if baseURL == "" {
		baseURL = os.Getenv("DATABASE_URL")
	}
	if baseURL == "" {
		cluster, dir, err := startCluster(setupCtx, logger)
		if err != nil {
			fmt.Fprintf(os.Stderr, "dbtest: %v\n", err)
			return 1
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := cluster.Stop(ctx); err != nil {
				fmt.Fprintf(os.Stderr, "dbtest: %v\n", err)
				code = max(code, 1)
			}
			_ = os.RemoveAll(dir)
		}()
		baseURL = cluster.AdminURL("postgres")
	}

	env, err := newEnvironment(setupCtx, baseURL, migrate, logger)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dbtest: %v\n", err)
		return 1
	}
	defer func() {
		if err := env.close(); err != nil {
			fmt.Fprintf(os.Stderr, "dbtest: %v\n", err)
			code = max(code, 1)
		}
	}()
	current = env
	return m.Run()
}

// startCluster starts an ephemeral cluster in a new directory under the
// system temporary directory, which the postgres user can reach when the
// tests run as root (t.TempDir-style directories under /root cannot be).
func startCluster(ctx context.Context, logger *slog.Logger) (*localdb.Cluster, string, error) {
	dir, err := os.MkdirTemp("", "dbtest-")
	if err != nil {
		return nil, "", fmt.Errorf("cluster dir: %w", err)
	}
	cluster, err := localdb.Start(ctx, localdb.Options{
		Dir:       dir,
		Ephemeral: true,
		Temporary: true,
		Logger:    logger,
	})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", err
	}
	return cluster, dir, nil
}

// New creates a fresh database from the template, drops it when the test
// ends and returns it. It is safe to call from parallel tests.
func New(t testing.TB) *DB {
	t.Helper()
	if current == nil {
		t.Fatal("dbtest: New called without dbtest.Main in TestMain")
	}
	return current.newDB(t)
}

// environment is one test binary's server connection and template.
type environment struct {
	pool     *pgxpool.Pool
	adminURL string
	template string
	// appURL is the template's application URL, empty when the login role
	// could not be set up and tests get the admin URL instead.
	appURL string

	// createMu serialises copies of the template: PostgreSQL refuses to copy
	// a database another session is using, and a copy in progress counts.
	createMu sync.Mutex
}

// newEnvironment provisions a uniquely named template through baseURL and
// seals it against connections, so that nothing can keep it busy.
func newEnvironment(ctx context.Context, baseURL string, migrate func(ctx context.Context, url string) error, logger *slog.Logger) (_ *environment, err error) {
	pool, err := pgxpool.New(ctx, baseURL)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	e := &environment{
		pool:     pool,
		adminURL: baseURL,
		template: "dbtest_tpl_" + randomHex(6),
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.close())
		}
	}()

	e.appURL, err = localdb.Provision(ctx, baseURL, e.template, migrate)
	if errors.Is(err, localdb.ErrRolePrivilege) {
		logger.Warn("dbtest: cannot set up the application login; AppURL will be the admin URL", "err", err)
		e.appURL, err = "", nil
	}
	if err != nil {
		return nil, fmt.Errorf("provision template: %w", err)
	}
	tpl := pgx.Identifier{e.template}.Sanitize()
	if _, err := pool.Exec(ctx, "ALTER DATABASE "+tpl+" ALLOW_CONNECTIONS false"); err != nil {
		return nil, fmt.Errorf("seal template: %w", err)
	}
	// A migrate func that leaked a connection would make every copy fail.
	if _, err := pool.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", e.template); err != nil {
		return nil, fmt.Errorf("disconnect template users: %w", err)
	}
	return e, nil
}

// close drops the template and closes the pool. Test databases are dropped
// by their tests' cleanups.
func (e *environment) close() error {
	defer e.pool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.pool.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{e.template}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop template %s: %w", e.template, err)
	}
	return nil
}

func (e *environment) newDB(t testing.TB) *DB {
	t.Helper()
	name := dbName(t.Name())
	ident := pgx.Identifier{name}.Sanitize()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	e.createMu.Lock()
	_, err := e.pool.Exec(ctx, "CREATE DATABASE "+ident+" TEMPLATE "+pgx.Identifier{e.template}.Sanitize())
	e.createMu.Unlock()
	if err != nil {
		t.Fatalf("dbtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE disconnects sessions the test left open, such as a pool
		// closed by a later cleanup.
		if _, err := e.pool.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			t.Errorf("dbtest: drop database %s (close connections made as another role before the test ends): %v", name, err)
		}
	})

	// The copy does not inherit the template's database ACL; it gets the
	// default one, under which every role, the login role included, may
	// connect.
	db := &DB{Name: name}
	if db.AdminURL, err = localdb.WithDatabase(e.adminURL, name); err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	db.AppURL = db.AdminURL
	if e.appURL != "" {
		if db.AppURL, err = localdb.WithDatabase(e.appURL, name); err != nil {
			t.Fatalf("dbtest: %v", err)
		}
	}
	return db
}

// dbName derives a unique, valid database name from a test name, keeping a
// readable prefix so that a leftover database points at its test.
func dbName(testName string) string {
	var b strings.Builder
	b.WriteString("dbtest_")
	lastUnderscore := true
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= 40 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			lastUnderscore = false
		} else if !lastUnderscore {
			b.WriteByte('_')
			lastUnderscore = true
		}
	}
	if !lastUnderscore {
		b.WriteByte('_')
	}
	b.WriteString(randomHex(4))
	return b.String()
}

func randomHex(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf) // crypto/rand.Read never fails.
	return hex.EncodeToString(buf)
}
