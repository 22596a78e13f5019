package dbtest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/narrate/narrate/role"
)

// APIRolesSQL creates the API roles (role.API) the server lacks, as the
// project's migrations do: for tests whose schema is a stand-in of their
// own.
var APIRolesSQL = `
DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['` + strings.Join(role.API(), "', '") + `'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN', r);
    END IF;
  END LOOP;
END $$;
`

// SQLMigration is a migration, for Main or localdb.Provision, that runs
// sql: a schema of the test's own in place of the project's migrations.
func SQLMigration(sql string) func(ctx context.Context, url string) error {
	return func(ctx context.Context, url string) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
}

// Connect opens a connection to url, closed when the test ends.
func Connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// Exec runs sql on conn and fails the test if it fails.
func Exec(t testing.TB, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// Login is whom a connection is logged in as, where.
type Login struct {
	User, Database string
	Superuser      bool
}

// LoginOf reports whom conn is logged in as, on which database.
func LoginOf(t testing.TB, conn *pgx.Conn) Login {
	t.Helper()
	var l Login
	err := conn.QueryRow(context.Background(), `SELECT current_user::text, current_database()::text, rolsuper
		FROM pg_roles WHERE rolname = current_user`).Scan(&l.User, &l.Database, &l.Superuser)
	if err != nil {
		t.Fatalf("login of the connection: %v", err)
	}
	return l
}

// SQLState is err's SQLSTATE, or "" when err does not come from
// PostgreSQL.
func SQLState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
