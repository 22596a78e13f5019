package db_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/narrate/narrate/role"
)

// rlsTables are the tables whose rows belong to users or are written by
// admins only.
var rlsTables = []string{"profiles", "voice_samples", "stories", "story_generations", "generation_logs"}

// apiRoles are the roles requests run as.
var apiRoles = []string{role.Anon, role.Authenticated, role.Admin}

type policy struct {
	Table     string   `db:"tablename"`
	Name      string   `db:"policyname"`
	Roles     []string `db:"roles"`
	Cmd       string   `db:"cmd"`
	Qual      *string  `db:"qual"`
	WithCheck *string  `db:"with_check"`
}

func loadPolicies(t *testing.T, ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) []policy {
	t.Helper()
	rows, _ := q.Query(ctx, `
		SELECT tablename::text, policyname::text, roles::text[], cmd, qual, with_check
		FROM pg_policies WHERE schemaname = 'public' ORDER BY tablename, policyname`)
	ps, err := pgx.CollectRows(rows, pgx.RowToStructByName[policy])
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// checkPolicies reports every policy that grants rows to every role, or
// lets an API role write every row.
func checkPolicies(ps []policy) []string {
	var bad []string
	for _, p := range ps {
		if slices.Contains(p.Roles, "public") {
			bad = append(bad, p.Table+"."+p.Name+": applies to every role (no TO clause)")
		}
		if p.Cmd == "SELECT" {
			continue
		}
		for _, r := range apiRoles {
			if !slices.Contains(p.Roles, r) {
				continue
			}
			if isTrue(p.Qual) || isTrue(p.WithCheck) || (p.Cmd == "INSERT" && p.WithCheck == nil) {
				bad = append(bad, p.Table+"."+p.Name+": lets "+r+" "+p.Cmd+" every row")
			}
		}
	}
	return bad
}

func isTrue(expr *string) bool { return expr != nil && *expr == "true" }

// adminInUserPolicies reports every policy of authenticated that also
// serves admins. Admins read through narrate_admin's policies: an admin
// condition in authenticated's, OR-ed with the owner's, keeps PostgreSQL
// from using the user_id index for any query that does not name the user
// itself (see TestRLSOnlyReadUsesIndex).
func adminInUserPolicies(ps []policy) []string {
	var bad []string
	for _, p := range ps {
		if !slices.Contains(p.Roles, "authenticated") {
			continue
		}
		for _, expr := range []*string{p.Qual, p.WithCheck} {
			if expr != nil && strings.Contains(*expr, "is_admin") {
				bad = append(bad, p.Table+"."+p.Name+": authenticated's policy also serves admins")
				break
			}
		}
	}
	return bad
}

func testUserPoliciesAreOwnerOnly(t *testing.T, tdb *testDB) {
	for _, b := range adminInUserPolicies(loadPolicies(t, context.Background(), tdb.Admin)) {
		t.Error(b)
	}
}

// TestAdminCheckerCatchesSharedPolicies proves the checker above would see
// the admin read policy this project had before narrate_admin.
func TestAdminCheckerCatchesSharedPolicies(t *testing.T) {
	t.Parallel()
	tdb := newTestDB(t)
	mustExec(t, tdb.Admin, `CREATE POLICY story_generations_old_admin_read ON public.story_generations
		FOR SELECT TO authenticated USING ((SELECT public.is_admin()))`)
	bad := adminInUserPolicies(loadPolicies(t, context.Background(), tdb.Admin))
	want := []string{"story_generations.story_generations_old_admin_read: authenticated's policy also serves admins"}
	if !slices.Equal(bad, want) {
		t.Fatalf("checker found %q, want %q", bad, want)
	}
}

func testNoPolicyGrantsEveryRole(t *testing.T, tdb *testDB) {
	ctx := context.Background()

	ps := loadPolicies(t, ctx, tdb.Admin)
	if len(ps) == 0 {
		t.Fatal("no policies in schema public")
	}
	for _, b := range checkPolicies(ps) {
		t.Error(b)
	}
	// Every RLS table has at least one policy, or RLS would make it
	// unusable rather than safe, which the matrix would also show.
	for _, table := range rlsTables {
		if !slices.ContainsFunc(ps, func(p policy) bool { return p.Table == table }) {
			t.Errorf("%s has no policy", table)
		}
	}
}

// TestPolicyCheckerCatchesSeedPolicies proves the checker above would see
// the seed's admin policies and a write policy open to all.
func TestPolicyCheckerCatchesSeedPolicies(t *testing.T) {
	t.Parallel()
	tdb := newTestDB(t)
	ctx := context.Background()
	mustExec(t, tdb.Admin, `CREATE POLICY admin_access_profiles ON profiles FOR ALL USING (true)`)
	mustExec(t, tdb.Admin, `CREATE POLICY open_update ON stories FOR UPDATE TO authenticated USING (true)`)
	mustExec(t, tdb.Admin, `CREATE POLICY open_insert ON generation_logs FOR INSERT TO anon WITH CHECK (true)`)

	bad := checkPolicies(loadPolicies(t, ctx, tdb.Admin))
	want := []string{
		"generation_logs.open_insert: lets anon INSERT every row",
		"profiles.admin_access_profiles: applies to every role (no TO clause)",
		"stories.open_update: lets authenticated UPDATE every row",
	}
	if !slices.Equal(bad, want) {
		t.Fatalf("checker found %q, want %q", bad, want)
	}
}

func testRowLevelSecurityEnabled(t *testing.T, tdb *testDB) {
	ctx := context.Background()

	for _, table := range rlsTables {
		var enabled bool
		var owner string
		err := tdb.Admin.QueryRow(ctx, `
			SELECT c.relrowsecurity, pg_get_userbyid(c.relowner)
			FROM pg_class c WHERE c.oid = ('public.' || $1)::regclass`, table).Scan(&enabled, &owner)
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		if !enabled {
			t.Errorf("%s: row-level security is not enabled", table)
		}
		// A table's owner bypasses its policies (short of FORCE ROW LEVEL
		// SECURITY), so no role requests can reach may own one.
		if slices.Contains(append(apiRoles, role.Service, role.Login), owner) {
			t.Errorf("%s is owned by %s, which would bypass its policies", table, owner)
		}
	}

	// No role requests can reach may bypass row-level security, and the
	// login itself must switch role to reach any row.
	rows, _ := tdb.Admin.Query(ctx, `
		SELECT rolname::text FROM pg_roles
		WHERE rolname = ANY($1) AND (rolsuper OR rolbypassrls OR (rolname = $2 AND rolinherit))`,
		append(apiRoles, role.Login), role.Login)
	privileged, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(privileged) > 0 {
		t.Errorf("roles %v are superusers, bypass RLS, or (the login) inherit the API roles' privileges", privileged)
	}

	// Nothing in schema public is granted to PUBLIC, which every role, the
	// login included, belongs to.
	rows, _ = tdb.Admin.Query(ctx, `
		SELECT c.relname::text FROM pg_class c, aclexplode(c.relacl) a
		WHERE c.relnamespace = 'public'::regnamespace AND a.grantee = 0
		UNION ALL
		SELECT p.oid::regprocedure::text FROM pg_proc p, aclexplode(p.proacl) a
		WHERE p.oid = 'public.user_emails(uuid[])'::regprocedure AND a.grantee = 0`)
	public, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(public) > 0 {
		t.Errorf("granted to PUBLIC: %v", public)
	}
}
