package db_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/db/dbtest"
)

// sessionState is what the auth shim and the server report about the
// current transaction's identity.
type sessionState struct {
	UID         *uuid.UUID
	JWTSub      *string
	Role        *string
	Admin       bool
	CurrentUser string
	SessionUser string
	Claims      string
}

const sessionStateSQL = `
	SELECT auth.uid(), auth.jwt() ->> 'sub', auth.role(), public.is_admin(),
	       current_user::text, session_user::text, coalesce(current_setting('request.jwt.claims', true), '')`

func readState(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (sessionState, error) {
	var s sessionState
	err := q.QueryRow(ctx, sessionStateSQL).Scan(&s.UID, &s.JWTSub, &s.Role, &s.Admin, &s.CurrentUser, &s.SessionUser, &s.Claims)
	return s, err
}

func testShimReadsTransactionLocalClaims(t *testing.T, tdb *testDB) {
	ctx := context.Background()
	conn := dbtest.Connect(t, tdb.AppURL)

	loginUser, loginClaims := loginState(t, conn)
	if loginClaims != "" {
		t.Fatalf("fresh connection carries claims %q", loginClaims)
	}

	user := uuid.New()
	legacy := uuid.New()
	tests := []struct {
		name      string
		settings  string
		args      []any
		wantUID   *uuid.UUID
		wantRole  string
		wantAdmin bool
		wantUser  string
	}{
		{
			name:     "user",
			settings: setSessionSQL,
			args:     []any{"authenticated", string(userClaims(user, false))},
			wantUID:  &user, wantRole: "authenticated", wantUser: "authenticated",
		},
		{
			name:     "admin",
			settings: setSessionSQL,
			args:     []any{"authenticated", string(userClaims(user, true))},
			wantUID:  &user, wantRole: "authenticated", wantAdmin: true, wantUser: "authenticated",
		},
		{
			name:     "anon without claims",
			settings: setSessionSQL,
			args:     []any{"anon", ""},
			wantUser: "anon",
		},
		{
			name:     "service",
			settings: setSessionSQL,
			args:     []any{"service_role", `{"role":"service_role"}`},
			wantRole: "service_role", wantUser: "service_role",
		},
		{
			// Older PostgREST versions set one setting per claim; Supabase's
			// auth.uid() still reads it first.
			name:     "legacy per-claim setting",
			settings: `SELECT set_config('role', $1, true), set_config('request.jwt.claim.sub', $2, true)`,
			args:     []any{"authenticated", legacy.String()},
			wantUID:  &legacy, wantUser: "authenticated",
		},
	}
	for _, tc := range tests {
		for _, end := range []string{"COMMIT", "ROLLBACK"} {
			t.Run(tc.name+"/"+end, func(t *testing.T) {
				if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
					t.Fatal(err)
				}
				if _, err := conn.Exec(ctx, tc.settings, tc.args...); err != nil {
					t.Fatal(err)
				}
				in, err := readState(ctx, conn)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := conn.Exec(ctx, end); err != nil {
					t.Fatal(err)
				}
				if !equalUUID(in.UID, tc.wantUID) {
					t.Errorf("auth.uid() = %v, want %v", in.UID, tc.wantUID)
				}
				if tc.settings == setSessionSQL && tc.wantUID != nil && (in.JWTSub == nil || *in.JWTSub != tc.wantUID.String()) {
					t.Errorf("auth.jwt() ->> 'sub' = %v, want %v", in.JWTSub, tc.wantUID)
				}
				if got := deref(in.Role); got != tc.wantRole {
					t.Errorf("auth.role() = %q, want %q", got, tc.wantRole)
				}
				if in.Admin != tc.wantAdmin {
					t.Errorf("is_admin() = %v, want %v", in.Admin, tc.wantAdmin)
				}
				if in.CurrentUser != tc.wantUser {
					t.Errorf("current_user = %q, want %q", in.CurrentUser, tc.wantUser)
				}

				// The settings were the transaction's: the role is the login's
				// again, and the claims are gone, also for a next transaction
				// that switches role but sets no claims.
				if user, claims := loginState(t, conn); user != loginUser || claims != "" {
					t.Errorf("after %s: current_user %q, claims %q; want %q and none", end, user, claims, loginUser)
				}
				if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
					t.Fatal(err)
				}
				if _, err := conn.Exec(ctx, `SELECT set_config('role', 'anon', true)`); err != nil {
					t.Fatal(err)
				}
				next, err := readState(ctx, conn)
				if _, rbErr := conn.Exec(ctx, "ROLLBACK"); rbErr != nil {
					t.Fatal(rbErr)
				}
				if err != nil {
					t.Fatal(err)
				}
				if next.UID != nil || next.JWTSub != nil || next.Role != nil || next.Admin || next.Claims != "" {
					t.Errorf("next transaction after %s still sees the claims: %+v", end, next)
				}
			})
		}
	}
}

// loginState reports the connection's role and claims outside any
// transaction. It cannot call auth.uid(): the login may not use schema auth.
func loginState(t *testing.T, conn *pgx.Conn) (user, claims string) {
	t.Helper()
	err := conn.QueryRow(context.Background(),
		`SELECT current_user::text, coalesce(current_setting('request.jwt.claims', true), '') WHERE current_user = session_user`).
		Scan(&user, &claims)
	if err != nil {
		t.Fatalf("login state (is the role still switched?): %v", err)
	}
	return user, claims
}

func equalUUID(a, b *uuid.UUID) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// backendPID returns the server process of the pool's connection, so a
// test can prove two transactions shared one connection.
func backendPID(t *testing.T, d *db.DB, s db.Session) uint32 {
	t.Helper()
	var pid uint32
	err := d.Batch(context.Background(), s, func(b *pgx.Batch) {
		b.Queue(`SELECT pg_backend_pid()`).QueryRow(func(r pgx.Row) error { return r.Scan(&pid) })
	})
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func testPooledConnectionForgetsIdentity(t *testing.T, tdb *testDB) {
	f, d := tdb.fixtureAndDB(t, 1)
	ctx := context.Background()
	sessA, sessB := sessionOf(f.A), sessionOf(f.B)
	pid := backendPID(t, d, db.Anonymous())

	var inTx sessionState
	var seen int
	err := d.Tx(ctx, sessA, func(q db.Querier) error {
		var err error
		if inTx, err = readState(ctx, q); err != nil {
			return err
		}
		return q.QueryRow(ctx, `SELECT count(*) FROM story_generations WHERE user_id = $1`, f.A).Scan(&seen)
	})
	if err != nil {
		t.Fatal(err)
	}
	if inTx.UID == nil || *inTx.UID != f.A || seen != 4 {
		t.Fatalf("as A: uid %v, %d of A's generations; want %s and 4", inTx.UID, seen, f.A)
	}

	// The next transaction on the same connection, as anon, has no trace
	// of A.
	anon, err := stateVia(d, db.Anonymous())
	if err != nil {
		t.Fatal(err)
	}
	if anon.UID != nil || anon.JWTSub != nil || anon.Admin || anon.CurrentUser != "anon" || anon.Claims != "" {
		t.Fatalf("anon after A sees identity %+v", anon)
	}
	if got := backendPID(t, d, db.Anonymous()); got != pid {
		t.Fatalf("pool of one used backends %d and %d", pid, got)
	}
	_, denied := d.GenerationsByID(ctx, db.Anonymous(), f.aGenerations(), db.AllColumns)
	if !errors.Is(denied, db.ErrForbidden) {
		t.Fatalf("anon reading generations after A: err = %v, want ErrForbidden", denied)
	}

	// One prepared statement, alternately as A and B, many times over:
	// the connection's statement and plan caches must not carry one user's
	// rows to the other (PostgreSQL switches to a generic plan after five
	// executions).
	for i := range 8 {
		for _, tc := range []struct {
			s    db.Session
			want int
		}{{sessA, 4}, {sessB, 0}} {
			rows, err := d.GenerationsByID(ctx, tc.s, f.aGenerations(), db.AllColumns)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != tc.want {
				t.Fatalf("round %d as %s: %d of A's generations, want %d", i, tc.s.UserID, len(rows), tc.want)
			}
		}
	}
	if got := backendPID(t, d, db.Anonymous()); got != pid {
		t.Fatalf("backend changed from %d to %d: the test did not reuse one connection", pid, got)
	}
}

func testZeroSessionFailsClosed(t *testing.T, tdb *testDB) {
	d := openDB(t, tdb.AppURL, 1)
	ctx := context.Background()

	ran := false
	err := d.Batch(ctx, db.Session{}, func(b *pgx.Batch) {
		b.Queue(`SELECT 1`).Exec(func(pgconn.CommandTag) error { ran = true; return nil })
	})
	if err == nil || ran {
		t.Fatalf("a session without a role ran (err %v, ran %v); it must fail instead of running as the login", err, ran)
	}
	err = d.Tx(ctx, db.Session{}, func(db.Querier) error { ran = true; return nil })
	if err == nil || ran {
		t.Fatalf("Tx with a zero session ran (err %v, ran %v)", err, ran)
	}
	// The failures left the one connection usable.
	if _, err := d.Stories(ctx, db.Anonymous(), db.StoriesParams{Limit: 1}); err != nil {
		t.Fatal(err)
	}
}

// storyCount counts, as the superuser, the stories with this slug.
func storyCount(t *testing.T, tdb *testDB, slug string) int {
	t.Helper()
	var n int
	if err := tdb.Admin.QueryRow(context.Background(), `SELECT count(*) FROM stories WHERE slug = $1`, slug).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

const insertStorySQL = `INSERT INTO stories (title, slug, content) VALUES ('Rolled back', $1, 'Never told.')`

func testTxRollsBackOnError(t *testing.T, tdb *testDB) {
	d := openDB(t, tdb.AppURL, 1)
	ctx := context.Background()
	pid := backendPID(t, d, db.Anonymous())
	errVeto := errors.New("veto")

	user := uuid.New()
	tests := []struct {
		name    string
		session db.Session
		fn      func(q db.Querier, slug string) error
		want    func(error) bool
	}{
		{
			name: "fn returns an error", session: db.Service(),
			fn: func(q db.Querier, slug string) error {
				if _, err := q.Exec(ctx, insertStorySQL, slug); err != nil {
					return err
				}
				return errVeto
			},
			want: func(err error) bool { return errors.Is(err, errVeto) },
		},
		{
			name: "statement fails", session: db.Service(),
			fn: func(q db.Querier, slug string) error {
				if _, err := q.Exec(ctx, insertStorySQL, slug); err != nil {
					return err
				}
				_, err := q.Exec(ctx, `SELECT 1 / 0`)
				return err
			},
			want: func(err error) bool { return dbtest.SQLState(err) == "22012" },
		},
		{
			// fn ignores a failed statement and returns nil: the
			// transaction is aborted, so COMMIT rolls back, and Tx must say
			// so rather than report writes that never happened.
			name: "failed statement ignored", session: db.Service(),
			fn: func(q db.Querier, slug string) error {
				if _, err := q.Exec(ctx, insertStorySQL, slug); err != nil {
					return err
				}
				_, _ = q.Exec(ctx, `SELECT 1 / 0`)
				return nil
			},
			want: func(err error) bool { return errors.Is(err, pgx.ErrTxCommitRollback) },
		},
		{
			name: "policy refuses", session: sessionOf(user),
			fn: func(q db.Querier, slug string) error {
				_, err := q.Exec(ctx, insertStorySQL, slug)
				return err
			},
			want: func(err error) bool { return dbtest.SQLState(err) == codeDenied },
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			slug := "rollback-" + string(rune('a'+i))
			err := d.Tx(ctx, tc.session, func(q db.Querier) error { return tc.fn(q, slug) })
			if !tc.want(err) {
				t.Fatalf("Tx error = %v", err)
			}
			if n := storyCount(t, tdb, slug); n != 0 {
				t.Fatalf("%d stories committed, want 0", n)
			}
			// The pool's only connection is back, idle, and anonymous.
			state, err := stateVia(d, db.Anonymous())
			if err != nil {
				t.Fatal(err)
			}
			if state.CurrentUser != "anon" || state.UID != nil {
				t.Fatalf("next transaction runs as %+v", state)
			}
			if got := backendPID(t, d, db.Anonymous()); got != pid {
				t.Fatalf("backend %d replaced by %d", pid, got)
			}
		})
	}

	// And a Tx that succeeds commits.
	err := d.Tx(ctx, db.Service(), func(q db.Querier) error {
		_, err := q.Exec(ctx, insertStorySQL, "committed")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := storyCount(t, tdb, "committed"); n != 1 {
		t.Fatalf("%d stories committed, want 1", n)
	}
}

func stateVia(d *db.DB, s db.Session) (sessionState, error) {
	var st sessionState
	err := d.Tx(context.Background(), s, func(q db.Querier) error {
		var err error
		st, err = readState(context.Background(), q)
		return err
	})
	return st, err
}

// wantRolledBack checks how a pipeline of three statements (what) ended
// whose second divided by zero: with that error, without running the third
// and without committing the first, which inserted a story under slug.
func wantRolledBack(t *testing.T, tdb *testDB, what string, err error, thirdRan bool, slug string) {
	t.Helper()
	if dbtest.SQLState(err) != "22012" {
		t.Fatalf("%s error = %v, want division_by_zero", what, err)
	}
	if thirdRan {
		t.Fatal("a statement after the failing one ran")
	}
	if n := storyCount(t, tdb, slug); n != 0 {
		t.Fatalf("%d stories committed by a failed %s, want 0", n, what)
	}
}

func testBatchFailingStatementRollsBack(t *testing.T, tdb *testDB) {
	d := openDB(t, tdb.AppURL, 1)
	ctx := context.Background()
	pid := backendPID(t, d, db.Anonymous())

	afterRan := false
	err := d.Batch(ctx, db.Service(), func(b *pgx.Batch) {
		b.Queue(insertStorySQL, "batch-failed")
		b.Queue(`SELECT 1 / 0`)
		b.Queue(`SELECT 1`).Exec(func(pgconn.CommandTag) error { afterRan = true; return nil })
	})
	wantRolledBack(t, tdb, "Batch", err, afterRan, "batch-failed")

	// The next batch on the same connection works, under its own identity.
	state, err := stateVia(d, db.Anonymous())
	if err != nil {
		t.Fatal(err)
	}
	if state.CurrentUser != "anon" || state.UID != nil || state.Claims != "" {
		t.Fatalf("next batch runs as %+v", state)
	}
	err = d.Batch(ctx, db.Service(), func(b *pgx.Batch) { b.Queue(insertStorySQL, "batch-ok") })
	if err != nil {
		t.Fatal(err)
	}
	if n := storyCount(t, tdb, "batch-ok"); n != 1 {
		t.Fatalf("%d stories committed, want 1", n)
	}
	if got := backendPID(t, d, db.Anonymous()); got != pid {
		t.Fatalf("backend %d replaced by %d: the test did not reuse the connection", pid, got)
	}
}

// TestBatchCallbackErrorDoesNotRollBack pins what Batch documents: COMMIT
// travels with the statements, so a callback's error is reported but the
// statements stay committed. Code that must veto writes uses Tx.
func testBatchCallbackErrorDoesNotRollBack(t *testing.T, tdb *testDB) {
	d := openDB(t, tdb.AppURL, 1)
	errVeto := errors.New("veto")

	err := d.Batch(context.Background(), db.Service(), func(b *pgx.Batch) {
		b.Queue(insertStorySQL, "callback-veto").Exec(func(pgconn.CommandTag) error { return errVeto })
	})
	if !errors.Is(err, errVeto) {
		t.Fatalf("Batch error = %v, want the callback's", err)
	}
	if n := storyCount(t, tdb, "callback-veto"); n != 1 {
		t.Fatalf("%d stories, want 1: the doc says a callback cannot undo the batch", n)
	}
	if state, err := stateVia(d, db.Anonymous()); err != nil || state.CurrentUser != "anon" || state.UID != nil {
		t.Fatalf("next batch: %+v, %v", state, err)
	}
}

// testReadImplicitTransaction pins what Read relies on: the statements of
// one Read share PostgreSQL's implicit transaction up to the pipeline's
// Sync, so the session applies to every one of them and ends with them,
// and a failing statement rolls back those before it.
func testReadImplicitTransaction(t *testing.T, tdb *testDB) {
	f, d := tdb.fixtureAndDB(t, 1)
	ctx := context.Background()
	pid := backendPID(t, d, db.Anonymous())

	// Every statement of a Read runs as its session. (Statements new to
	// the connection are prepared as the login, before the switch: this
	// one names nothing in schema auth, which the login may not use.)
	const stateSQL = `SELECT current_user::text, coalesce(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', '')`
	type state struct{ user, sub string }
	var states [2]state
	err := d.Read(ctx, sessionOf(f.A), func(r *db.Reads) {
		for i := range states {
			r.QueueForTest(stateSQL).QueryRow(func(row pgx.Row) error { return row.Scan(&states[i].user, &states[i].sub) })
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range states {
		if st.sub != f.A.String() || st.user != "authenticated" {
			t.Fatalf("statement %d of a Read as A runs as %+v", i, st)
		}
	}

	// A failing statement undoes the ones before it.
	var afterRan bool
	err = d.Read(ctx, db.Service(), func(r *db.Reads) {
		r.QueueForTest(insertStorySQL, "read-failed")
		r.QueueForTest(`SELECT 1 / 0`)
		r.QueueForTest(`SELECT 1`).Exec(func(pgconn.CommandTag) error { afterRan = true; return nil })
	})
	wantRolledBack(t, tdb, "Read", err, afterRan, "read-failed")

	// And the next Read on the same connection has no trace of either.
	var next state
	err = d.Read(ctx, db.Anonymous(), func(r *db.Reads) {
		r.QueueForTest(stateSQL).QueryRow(func(row pgx.Row) error { return row.Scan(&next.user, &next.sub) })
	})
	if err != nil {
		t.Fatal(err)
	}
	if next != (state{user: "anon"}) {
		t.Fatalf("anon Read after A's runs as %+v", next)
	}
	if got := backendPID(t, d, db.Anonymous()); got != pid {
		t.Fatalf("backend changed from %d to %d: the test did not reuse one connection", pid, got)
	}
}
