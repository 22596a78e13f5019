package db_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/db/dbtest"
)

// codeDenied is insufficient_privilege: what PostgreSQL answers both for a
// missing grant and for a row refused by a policy's WITH CHECK.
const codeDenied = "42501"

// setSessionSQL is what PostgREST and db.DB run at the start of every
// transaction; the tests issue it themselves so that a bug in the db package
// cannot hide a hole in the policies.
const setSessionSQL = `SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true)`

// testDB is one test's database with a superuser pool for fixtures and
// checks, and a pool of the application's non-superuser login.
type testDB struct {
	*dbtest.DB
	Admin *pgxpool.Pool
	App   *pgxpool.Pool
}

func newTestDB(t *testing.T) *testDB {
	t.Helper()
	d := dbtest.New(t)
	return &testDB{DB: d, Admin: newPool(t, d.AdminURL, 0), App: newPool(t, d.AppURL, 0)}
}

func newPool(t *testing.T, url string, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// fixtureAndDB inserts a fixture of the test's own and opens the db
// package's pool on the application login, of at most maxConns
// connections (0: the pool's default).
func (tdb *testDB) fixtureAndDB(t *testing.T, maxConns int32) (*fixture, *db.DB) {
	t.Helper()
	return newFixture(t, tdb.Admin), openDB(t, tdb.AppURL, maxConns)
}

// openDB opens the db package's pool on the application login.
func openDB(t *testing.T, url string, maxConns int32) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), url, db.Options{MaxConns: maxConns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func userClaims(id uuid.UUID, admin bool) json.RawMessage {
	meta := map[string]any{}
	if admin {
		meta["role"] = "admin"
	}
	raw, _ := json.Marshal(map[string]any{"sub": id, "role": "authenticated", "app_metadata": meta})
	return raw
}

// identity is a role and the claims that go with it.
type identity struct {
	role   string
	claims string
	// raw skips the role switch: the statement runs as the login itself.
	raw bool
}

// userIdentity is a user's identity as the API sets it: admins switch to
// narrate_admin.
func userIdentity(id uuid.UUID, admin bool) identity {
	role := "authenticated"
	if admin {
		role = "narrate_admin"
	}
	return identity{role: role, claims: string(userClaims(id, admin))}
}

var (
	anonIdentity    = identity{role: "anon"}
	serviceIdentity = identity{role: "service_role", claims: `{"role":"service_role"}`}
	loginIdentity   = identity{raw: true}
)

// runAs runs fn in a transaction on pool as who and commits when fn succeeds.
func runAs(ctx context.Context, pool *pgxpool.Pool, who identity, fn func(tx pgx.Tx) error) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if !who.raw {
		if _, err := tx.Exec(ctx, setSessionSQL, who.role, who.claims); err != nil {
			return fmt.Errorf("set session: %w", err)
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// execAs runs one statement as who, commits, and reports the rows it
// returned or changed.
func execAs(ctx context.Context, pool *pgxpool.Pool, who identity, sql string, args ...any) (int64, error) {
	var n int64
	err := runAs(ctx, pool, who, func(tx pgx.Tx) error {
		ct, err := tx.Exec(ctx, sql, args...)
		n = ct.RowsAffected()
		return err
	})
	return n, err
}

// mustExec runs SQL on pool (the superuser's, for fixtures) or fails the test.
func mustExec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", strings.TrimSpace(sql), err)
	}
}

// fixture is a set of users and rows of their own, so that parallel tests on
// one database never touch each other's rows.
type fixture struct {
	// A owns a profile, a verified voice and four generations; B owns a
	// profile, an unverified voice and one pending generation; M is an admin
	// with no rows; F is a fresh user with no rows.
	A, B, M, F uuid.UUID
	// Story is the fixture's story; every story the fixture's tests create
	// has a slug starting with Prefix.
	Story  uuid.UUID
	Prefix string
	// A's generations by status, and B's pending one.
	GenPending, GenRunning, GenCompleted, GenFailed, GenB uuid.UUID
}

func (f *fixture) users() []uuid.UUID { return []uuid.UUID{f.A, f.B, f.M, f.F} }

func (f *fixture) aGenerations() []uuid.UUID {
	return []uuid.UUID{f.GenPending, f.GenRunning, f.GenCompleted, f.GenFailed}
}

// newFixture inserts a fixture as the superuser.
func newFixture(t *testing.T, admin *pgxpool.Pool) *fixture {
	t.Helper()
	f := &fixture{
		A: uuid.New(), B: uuid.New(), M: uuid.New(), F: uuid.New(), Story: uuid.New(),
		GenPending: uuid.New(), GenRunning: uuid.New(), GenCompleted: uuid.New(), GenFailed: uuid.New(), GenB: uuid.New(),
	}
	f.Prefix = "t" + strings.ReplaceAll(f.Story.String(), "-", "")[:12]
	emails := make([]string, 0, 4)
	for _, n := range []string{"a", "b", "m", "f"} {
		emails = append(emails, n+"-"+f.Prefix+"@example.com")
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO auth.users (id, email) SELECT * FROM unnest($1::uuid[], $2::text[])`, f.users(), emails)
	b.Queue(`INSERT INTO stories (id, title, slug, content) VALUES ($1, 'Fixture story', $2, 'Once upon a time.')`, f.Story, f.Prefix+"-story")
	b.Queue(`INSERT INTO profiles (user_id, display_name) VALUES ($1, 'A'), ($2, 'B')`, f.A, f.B)
	b.Queue(`INSERT INTO voice_samples (user_id, elevenlabs_voice_id, verification_phrase, verified)
		VALUES ($1, 'voice-a', 'apple river candle', true), ($2, 'voice-b', 'apple river candle', false)`, f.A, f.B)
	b.Queue(`INSERT INTO story_generations (id, user_id, story_id, status, progress, result_url) VALUES
		($1, $6, $8, 'pending', 0, NULL),
		($2, $6, $8, 'in_progress', 40, NULL),
		($3, $6, $8, 'completed', 100, 'audio/a.mp3'),
		($4, $6, $8, 'failed', 10, NULL),
		($5, $7, $8, 'pending', 0, NULL)`,
		f.GenPending, f.GenRunning, f.GenCompleted, f.GenFailed, f.GenB, f.A, f.B, f.Story)
	b.Queue(`INSERT INTO generation_logs (generation_id, event) VALUES ($1, 'queued'), ($2, 'completed'), ($3, 'queued')`,
		f.GenPending, f.GenCompleted, f.GenB)
	if err := admin.SendBatch(context.Background(), b).Close(); err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return f
}

// expand replaces the fixture's placeholders in sql with literals.
func (f *fixture) expand(sql string) string {
	lit := func(id uuid.UUID) string { return "'" + id.String() + "'::uuid" }
	arr := func(ids []uuid.UUID) string {
		parts := make([]string, len(ids))
		for i, id := range ids {
			parts[i] = "'" + id.String() + "'"
		}
		return "ARRAY[" + strings.Join(parts, ", ") + "]::uuid[]"
	}
	return strings.NewReplacer(
		"{A}", lit(f.A), "{B}", lit(f.B), "{M}", lit(f.M), "{F}", lit(f.F), "{S}", lit(f.Story),
		"{gP}", lit(f.GenPending), "{gR}", lit(f.GenRunning), "{gC}", lit(f.GenCompleted),
		"{gF}", lit(f.GenFailed), "{gB}", lit(f.GenB),
		"{users}", arr(f.users()), "{agens}", arr(f.aGenerations()),
		"{gens}", arr(append(f.aGenerations(), f.GenB)),
		"{p}", f.Prefix,
	).Replace(sql)
}

// snapshot returns, as seen by the superuser, every row that belongs to the
// fixture, so a test can tell whether a statement changed anything.
func (f *fixture) snapshot(t *testing.T, admin *pgxpool.Pool) string {
	t.Helper()
	var s string
	err := admin.QueryRow(context.Background(), `
		SELECT jsonb_build_object(
		  'users', (SELECT jsonb_agg(to_jsonb(u) ORDER BY u.id) FROM auth.users u WHERE u.id = ANY($1)),
		  'profiles', (SELECT jsonb_agg(to_jsonb(p) ORDER BY p.user_id) FROM profiles p WHERE p.user_id = ANY($1)),
		  'voice_samples', (SELECT jsonb_agg(to_jsonb(v) ORDER BY v.user_id) FROM voice_samples v WHERE v.user_id = ANY($1)),
		  'stories', (SELECT jsonb_agg(to_jsonb(s) ORDER BY s.id) FROM stories s WHERE s.slug LIKE $2 || '%'),
		  'generations', (SELECT jsonb_agg(to_jsonb(g) ORDER BY g.id) FROM story_generations g WHERE g.user_id = ANY($1)),
		  'logs', (SELECT jsonb_agg(to_jsonb(l) ORDER BY l.id) FROM generation_logs l
		           JOIN story_generations g ON g.id = l.generation_id WHERE g.user_id = ANY($1))
		)::text`, f.users(), f.Prefix).Scan(&s)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return s
}

// who maps an actor's name in a test table to its identity.
func (f *fixture) who(actor string) identity {
	switch actor {
	case "A":
		return userIdentity(f.A, false)
	case "B":
		return userIdentity(f.B, false)
	case "F":
		return userIdentity(f.F, false)
	case "admin":
		return userIdentity(f.M, true)
	case "adminclaim":
		return identity{role: "authenticated", claims: string(userClaims(f.M, true))}
	case "adminrole":
		return identity{role: "narrate_admin", claims: string(userClaims(f.M, false))}
	case "anon":
		return anonIdentity
	case "service":
		return serviceIdentity
	case "login":
		return loginIdentity
	}
	panic("unknown actor " + actor)
}
