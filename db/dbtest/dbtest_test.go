package dbtest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/role"
)

func TestMain(m *testing.M) { dbtest.Main(m, migrate) }

// migrate stands in for the project's migrations, which are written
// elsewhere: it creates the API roles when absent and one table only the
// authenticated role may use.
var migrate = dbtest.SQLMigration(dbtest.APIRolesSQL + `
CREATE TABLE notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text NOT NULL);
GRANT SELECT, INSERT ON notes TO authenticated;
INSERT INTO notes (body) VALUES ('seed');
`)

func count(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM notes").Scan(&n); err != nil {
		t.Fatalf("count notes: %v", err)
	}
	return n
}

func TestDatabasesAreIndependentCopies(t *testing.T) {
	t.Parallel()
	a, b := dbtest.New(t), dbtest.New(t)
	if a.Name == b.Name {
		t.Fatalf("both databases are named %q", a.Name)
	}
	connA, connB := dbtest.Connect(t, a.AdminURL), dbtest.Connect(t, b.AdminURL)
	// Both start from the migrated template, seed row included.
	if n := count(t, connA); n != 1 {
		t.Fatalf("fresh database a has %d notes, want the 1 seeded", n)
	}
	dbtest.Exec(t, connA, "INSERT INTO notes (body) VALUES ('only in a'), ('also only in a')")
	dbtest.Exec(t, connB, "CREATE TABLE only_in_b (x int)")
	if n := count(t, connA); n != 3 {
		t.Fatalf("a has %d notes, want 3", n)
	}
	if n := count(t, connB); n != 1 {
		t.Fatalf("b has %d notes after inserts into a, want 1", n)
	}
	var exists bool
	if err := connA.QueryRow(context.Background(), "SELECT to_regclass('only_in_b') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Fatalf("table created in b visible in a: %v (%v)", exists, err)
	}
}

func TestAppURLIsTheNonSuperuserLogin(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	if db.AppURL == db.AdminURL {
		t.Skip("the server's user may not create roles, so AppURL is the admin URL")
	}
	ctx := context.Background()
	app := dbtest.Connect(t, db.AppURL)
	if l := dbtest.LoginOf(t, app); l != (dbtest.Login{User: role.Login, Database: db.Name}) {
		t.Fatalf("AppURL logs in as %+v, want non-superuser %q on %q", l, role.Login, db.Name)
	}
	if _, err := app.Exec(ctx, "SELECT * FROM notes"); dbtest.SQLState(err) != "42501" {
		t.Fatalf("reading notes before SET ROLE: err = %v, want insufficient_privilege", err)
	}
	dbtest.Exec(t, app, "SET ROLE authenticated")
	dbtest.Exec(t, app, "INSERT INTO notes (body) VALUES ('from the app')")
	if n := count(t, app); n != 2 {
		t.Fatalf("notes = %d, want 2", n)
	}
}

func TestParallelNew(t *testing.T) {
	t.Parallel()
	for i := range 6 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			conn := dbtest.Connect(t, dbtest.New(t).AdminURL)
			for range i {
				dbtest.Exec(t, conn, "INSERT INTO notes (body) VALUES ('x')")
			}
			if n := count(t, conn); n != i+1 {
				t.Fatalf("notes = %d, want %d: databases are shared", n, i+1)
			}
		})
	}
}

func TestCleanupDropsDatabase(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("inner", func(t *testing.T) {
		db := dbtest.New(t)
		name = db.Name
		// A session the test leaves open must not keep the database from
		// being dropped. It is the admin user's own session: a non-superuser
		// TEST_DATABASE_URL user may not end other roles' sessions.
		leaked, err := pgx.Connect(context.Background(), db.AdminURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := leaked.Ping(context.Background()); err != nil {
				t.Fatalf("leaked connection is dead before the drop: %v", err)
			}
		})
	})
	observer := dbtest.Connect(t, dbtest.New(t).AdminURL)
	var exists bool
	if err := observer.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatalf("database %s still exists after its test ended", name)
	}
}
