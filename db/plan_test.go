package db_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// rlsOnlyQ2 is the peer comparison's Q2 as a client that relies on
// row-level security alone sends it (../shared/bench/raw-sql/q2.sql, which
// PostGraphile and supabase-js produce too): the caller's latest
// generations with their story and five newest log events, without naming
// the caller.
const rlsOnlyQ2 = `
SELECT g.id, g.status, g.progress, g.created_at, s.title, s.slug,
  (SELECT json_agg(l) FROM (SELECT event, occurred_at FROM generation_logs l WHERE l.generation_id = g.id ORDER BY occurred_at DESC, id DESC LIMIT 5) l)
FROM story_generations g JOIN stories s ON s.id = g.story_id ORDER BY g.created_at DESC, g.id DESC LIMIT 20`

// scan is one table access of a plan.
type scan struct{ Node, Relation, Index string }

func (s scan) String() string { return fmt.Sprintf("%s on %s %s", s.Node, s.Relation, s.Index) }

// explainScans returns the table accesses of sql's plan as who sees it.
func explainScans(t *testing.T, ctx context.Context, tdb *testDB, who identity, sql string) []scan {
	t.Helper()
	var raw []byte
	err := runAs(ctx, tdb.App, who, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `EXPLAIN (FORMAT JSON) `+sql).Scan(&raw)
	})
	if err != nil {
		t.Fatal(err)
	}
	return parseScans(t, raw)
}

// parseScans lists the table accesses of a JSON plan.
func parseScans(t *testing.T, raw []byte) []scan {
	t.Helper()
	type node struct {
		Type     string `json:"Node Type"`
		Relation string `json:"Relation Name"`
		Index    string `json:"Index Name"`
		Plans    []node `json:"Plans"`
	}
	var plans []struct{ Plan node }
	if err := json.Unmarshal(raw, &plans); err != nil || len(plans) != 1 {
		t.Fatalf("decode plan %s: %v", raw, err)
	}
	var out []scan
	var walk func(n node)
	walk = func(n node) {
		if n.Relation != "" || strings.HasSuffix(n.Type, "Index Scan") {
			out = append(out, scan{n.Type, n.Relation, n.Index})
		}
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(plans[0].Plan)
	return out
}

// TestRLSOnlyReadUsesIndex checks that a user's read of their generations
// that leaves finding them to row-level security reads them through the
// user_id index, on enough rows (10,000 generations of 200 users) that a
// sequential scan would be the planner's choice otherwise. It also shows
// the test can fail: with an admin policy shared with authenticated, as
// before migration 00020, the same statement scans the whole table.
func TestRLSOnlyReadUsesIndex(t *testing.T) {
	t.Parallel()
	tdb := newTestDB(t)
	ctx := context.Background()
	mustExec(t, tdb.Admin, `INSERT INTO auth.users (id, email)
		SELECT md5('user-' || u)::uuid, 'user' || u || '@plan.test' FROM generate_series(0, 199) u`)
	mustExec(t, tdb.Admin, `INSERT INTO stories (id, title, slug, content)
		SELECT md5('story-' || s)::uuid, 'Story ' || s, 'story-' || s, repeat('x', 2048) FROM generate_series(0, 49) s`)
	mustExec(t, tdb.Admin, `INSERT INTO story_generations (id, user_id, story_id, status, created_at)
		SELECT md5('gen-' || g)::uuid, md5('user-' || (g % 200))::uuid, md5('story-' || (g % 50))::uuid,
		  'completed', timestamptz '2025-01-01' + g * interval '5 minutes'
		FROM generate_series(0, 9999) g`)
	mustExec(t, tdb.Admin, `INSERT INTO generation_logs (generation_id, event, occurred_at)
		SELECT md5('gen-' || g)::uuid, 'event ' || i, timestamptz '2025-01-01' + g * interval '5 minutes' + i * interval '1 second'
		FROM generate_series(0, 9999) g, generate_series(1, 3) i`)
	mustExec(t, tdb.Admin, `ANALYZE`)
	var user uuid.UUID
	if err := tdb.Admin.QueryRow(ctx, `SELECT md5('user-1')::uuid`).Scan(&user); err != nil {
		t.Fatal(err)
	}

	// The statement returns the user's own rows only, newest first.
	var n int
	err := runAs(ctx, tdb.App, userIdentity(user, false), func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM (`+rlsOnlyQ2+`) q`).Scan(&n)
	})
	if err != nil || n != 20 {
		t.Fatalf("Q2 as a user: %d rows, %v; want 20", n, err)
	}

	generations := func(scans []scan) []scan {
		var out []scan
		for _, s := range scans {
			if s.Relation == "story_generations" {
				out = append(out, s)
			}
		}
		return out
	}
	// The listing itself goes through the user's index entries (the
	// logs' policy looks each generation up by primary key besides).
	byIndex := func(scans []scan, index string) bool {
		for _, s := range scans {
			if s.Index == index && s.Node != "Seq Scan" {
				return true
			}
		}
		return false
	}

	scans := explainScans(t, ctx, tdb, userIdentity(user, false), rlsOnlyQ2)
	if g := generations(scans); !byIndex(g, "story_generations_user_created_idx") {
		t.Errorf("story_generations read by %v, want the user_id index (plan: %v)", g, scans)
	}
	for _, s := range scans {
		if s.Node == "Seq Scan" && s.Relation != "stories" {
			// The catalogue has no owner: reading it whole for a join is
			// the planner's call. Users' tables must not be scanned.
			t.Errorf("sequential scan of %s (plan: %v)", s.Relation, scans)
		}
	}

	// The same plan with the admin policy written for authenticated, as
	// before narrate_admin: the OR defeats the index.
	tx, err := tdb.Admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `CREATE POLICY old_admin_read ON public.story_generations
		FOR SELECT TO authenticated USING ((SELECT public.is_admin()))`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, setSessionSQL, "authenticated", string(userClaims(user, false))); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := tx.QueryRow(ctx, `EXPLAIN (FORMAT JSON) `+rlsOnlyQ2).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if g := generations(parseScans(t, raw)); len(g) == 0 || g[0].Node != "Seq Scan" {
		t.Errorf("with an admin policy shared with authenticated, story_generations is read by %v, not scanned: the test cannot tell", g)
	}
}
