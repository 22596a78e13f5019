package dbtest

import (
	"context"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/narrate/narrate/localdb"
)

func TestTemplateIsSealed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var allowConn bool
	if err := current.pool.QueryRow(ctx, "SELECT datallowconn FROM pg_database WHERE datname = $1", current.template).Scan(&allowConn); err != nil {
		t.Fatal(err)
	}
	if allowConn {
		t.Fatalf("template %s accepts connections", current.template)
	}
	url, err := localdb.WithDatabase(current.adminURL, current.template)
	if err != nil {
		t.Fatal(err)
	}
	if conn, err := pgx.Connect(ctx, url); err == nil {
		_ = conn.Close(ctx)
		t.Fatal("connected to the template")
	}
}

func TestDBName(t *testing.T) {
	t.Parallel()
	valid := regexp.MustCompile(`^[a-z0-9_]+$`)
	tests := []struct{ in, prefix string }{
		{"TestFoo", "dbtest_testfoo_"},
		{"TestFoo/sub_case#01", "dbtest_testfoo_sub_case_01_"},
		{"Test/ünïcode  spaces", "dbtest_test_n_code_spaces_"},
		{strings.Repeat("x", 200), "dbtest_" + strings.Repeat("x", 33) + "_"},
	}
	for _, tt := range tests {
		got := dbName(tt.in)
		if !strings.HasPrefix(got, tt.prefix) || len(got) != len(tt.prefix)+8 || !valid.MatchString(got) {
			t.Errorf("dbName(%q) = %q, want %q + 8 hex digits", tt.in, got, tt.prefix)
		}
	}
	if dbName("TestX") == dbName("TestX") {
		t.Error("dbName repeats itself for the same test")
	}
}

// TestFallbackWithoutRolePrivilege sets up an environment through a user that
// may create databases but not roles, as on a restricted TEST_DATABASE_URL:
// AppURL must then be the admin URL.
func TestFallbackWithoutRolePrivilege(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	cluster, dir, err := startCluster(ctx, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cluster.Stop(ctx); err != nil {
			t.Error(err)
		}
		_ = os.RemoveAll(dir)
	})
	Exec(t, Connect(t, cluster.AdminURL("postgres")), APIRolesSQL+"CREATE ROLE creator LOGIN CREATEDB")
	creatorURL := strings.Replace(cluster.AdminURL("postgres"), "postgres@", "creator@", 1)

	env, err := newEnvironment(ctx, creatorURL, SQLMigration("CREATE TABLE notes (body text)"), logger)
	if err != nil {
		t.Fatalf("newEnvironment: %v", err)
	}
	t.Cleanup(func() {
		if err := env.close(); err != nil {
			t.Error(err)
		}
	})
	db := env.newDB(t)
	if db.AppURL != db.AdminURL {
		t.Fatalf("AppURL = %q, want the admin URL %q", db.AppURL, db.AdminURL)
	}
	conn := Connect(t, db.AppURL)
	if l := LoginOf(t, conn); l.User != "creator" {
		t.Fatalf("AppURL logs in as %+v, want creator", l)
	}
	var migrated bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('notes') IS NOT NULL").Scan(&migrated); err != nil || !migrated {
		t.Fatalf("AppURL's database is migrated: %v (%v), want true", migrated, err)
	}
}
