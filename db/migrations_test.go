package db_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/localdb"
	"github.com/narrate/narrate/migrations"
)

// schemaFingerprint describes what the migrations make: applied versions,
// policies, grants and the definitions of the auth functions.
func schemaFingerprint(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var s string
	err := pool.QueryRow(context.Background(), `
		SELECT jsonb_build_object(
		  'versions', (SELECT jsonb_agg(version_id ORDER BY id) FROM goose_db_version),
		  'policies', (SELECT jsonb_agg(p ORDER BY p.tablename, p.policyname) FROM pg_policies p WHERE schemaname = 'public'),
		  'columns', (SELECT jsonb_agg(c.table_schema || '.' || c.table_name || '.' || c.column_name || ' ' || c.data_type
		                               ORDER BY c.table_schema, c.table_name, c.ordinal_position)
		              FROM information_schema.columns c WHERE c.table_schema IN ('public', 'auth')),
		  'functions', (SELECT jsonb_agg(pg_get_functiondef(p.oid) ORDER BY p.oid::regprocedure::text)
		                FROM pg_proc p WHERE p.pronamespace IN ('public'::regnamespace, 'auth'::regnamespace)),
		  'acl', (SELECT jsonb_agg(c.relname || coalesce(c.relacl::text, '') ORDER BY c.relname)
		          FROM pg_class c WHERE c.relnamespace IN ('public'::regnamespace, 'auth'::regnamespace))
		)::text`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testMigrationsTwiceIsNoop(t *testing.T, tdb *testDB) {
	ctx := context.Background()
	before := schemaFingerprint(t, tdb.Admin)
	if err := migrations.Up(ctx, tdb.AdminURL); err != nil {
		t.Fatalf("migrating an up-to-date database: %v", err)
	}
	if after := schemaFingerprint(t, tdb.Admin); after != before {
		t.Fatalf("second run changed the schema\nbefore: %s\nafter:  %s", before, after)
	}
}

// supabaseLogin stands for the postgres login a Supabase project gives its
// owner (the test cluster's superuser already has that name). Like
// Supabase's, it is not a superuser: it may create roles and databases and
// bypasses row-level security, may act as the API roles, and may read
// auth.users, which supabase_auth_admin owns.
const supabaseLogin = "supabase_postgres"

// supabaseRoles creates, once per cluster, the roles of a Supabase project
// that are not already in the test cluster's template.
const supabaseRoles = `
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'supabase_auth_admin') THEN
    CREATE ROLE supabase_auth_admin NOINHERIT CREATEROLE LOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '` + supabaseLogin + `') THEN
    CREATE ROLE ` + supabaseLogin + ` LOGIN NOSUPERUSER CREATEROLE CREATEDB REPLICATION BYPASSRLS;
  END IF;
END
$$;
GRANT anon, authenticated, service_role TO ` + supabaseLogin + `;
`

// supabasePrelude creates, in an empty database owned by supabaseLogin,
// what a Supabase project has before the migrations run: the auth schema
// and Supabase's own auth.users (more columns, no email default, no id
// default), owned by supabase_auth_admin, readable by postgres and not by
// the service role; Supabase's auth functions; and Supabase's default
// privileges, which grant everything postgres creates in public to the API
// roles.
const supabasePrelude = `
CREATE SCHEMA auth AUTHORIZATION supabase_auth_admin;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role, ` + supabaseLogin + `;
CREATE TABLE auth.users (
  instance_id uuid,
  id uuid NOT NULL PRIMARY KEY,
  aud varchar(255),
  role varchar(255),
  email varchar(255) UNIQUE,
  encrypted_password varchar(255),
  email_confirmed_at timestamptz,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  is_super_admin boolean,
  created_at timestamptz,
  updated_at timestamptz,
  phone text UNIQUE DEFAULT NULL,
  is_sso_user boolean NOT NULL DEFAULT false,
  deleted_at timestamptz,
  is_anonymous boolean NOT NULL DEFAULT false
);
ALTER TABLE auth.users OWNER TO supabase_auth_admin;
GRANT ALL ON auth.users TO ` + supabaseLogin + `;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  select
  coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;
CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$
  select
  coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;
CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$
  select
    coalesce(
        nullif(current_setting('request.jwt.claim', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')
    )::jsonb
$$;
ALTER FUNCTION auth.uid() OWNER TO supabase_auth_admin;
ALTER FUNCTION auth.role() OWNER TO supabase_auth_admin;
ALTER FUNCTION auth.jwt() OWNER TO supabase_auth_admin;
COMMENT ON FUNCTION auth.uid() IS 'Deprecated. Use auth.jwt() -> ''sub'' instead.';
ALTER DEFAULT PRIVILEGES FOR ROLE ` + supabaseLogin + ` IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE ` + supabaseLogin + ` IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE ` + supabaseLogin + ` IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
`

// withUser returns rawURL with its user replaced.
func withUser(t *testing.T, rawURL, user string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(user)
	return u.String()
}

// privilegeMatrix lists, for the API roles, every privilege they hold on
// the tables, columns and functions of schema public.
func privilegeMatrix(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, _ := pool.Query(context.Background(), `
		WITH roles(r) AS (VALUES ('anon'), ('authenticated'), ('service_role'), ('narrate_admin')),
		privs(p) AS (VALUES ('SELECT'), ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'), ('REFERENCES'), ('TRIGGER'))
		SELECT r || ' ' || p || ' ' || c.relname
		FROM roles, privs, pg_class c
		WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'p')
		  AND has_table_privilege(r, c.oid, p)
		UNION ALL
		SELECT r || ' ' || p || ' ' || c.relname || '.' || a.attname
		FROM roles, privs, pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND p IN ('SELECT', 'INSERT', 'UPDATE')
		  AND has_column_privilege(r, c.oid, a.attnum, p)
		UNION ALL
		SELECT r || ' EXECUTE ' || f.oid::regprocedure::text
		FROM roles, pg_proc f
		WHERE f.pronamespace = 'public'::regnamespace AND has_function_privilege(r, f.oid, 'EXECUTE')
		ORDER BY 1`)
	m, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// createEmptyDatabase makes a database from template0, not from the
// migrated test template, and drops it when the test ends.
func createEmptyDatabase(t *testing.T, tdb *testDB, name string) (adminURL, appURL string) {
	t.Helper()
	ctx := context.Background()
	ident := pgx.Identifier{name}.Sanitize()
	mustExec(t, tdb.Admin, `CREATE DATABASE `+ident+` TEMPLATE template0`)
	t.Cleanup(func() {
		if _, err := tdb.Admin.Exec(ctx, `DROP DATABASE IF EXISTS `+ident+` WITH (FORCE)`); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	var err error
	if adminURL, err = localdb.WithDatabase(tdb.AdminURL, name); err != nil {
		t.Fatal(err)
	}
	if appURL, err = localdb.WithDatabase(tdb.AppURL, name); err != nil {
		t.Fatal(err)
	}
	return adminURL, appURL
}

func testMigrationsOnSupabase(t *testing.T, tdb *testDB) {
	ctx := context.Background()
	mustExec(t, tdb.Admin, supabaseRoles)
	superURL, appURL := createEmptyDatabase(t, tdb, tdb.Name+"_supa")
	ident := pgx.Identifier{tdb.Name + "_supa"}.Sanitize()
	mustExec(t, tdb.Admin, `ALTER DATABASE `+ident+` OWNER TO `+supabaseLogin)
	super := newPool(t, superURL, 0)
	mustExec(t, super, supabasePrelude)
	// The project owner's login: what migrations and `server token` use.
	ownerURL := withUser(t, superURL, supabaseLogin)
	admin := newPool(t, ownerURL, 0)
	var isSuper bool
	if err := admin.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&isSuper); err != nil || isSuper {
		t.Fatalf("the project login is a superuser (%v, %v): the test would prove nothing", isSuper, err)
	}

	var authBefore string
	authSQL := `
		SELECT jsonb_build_object(
		  'functions', (SELECT jsonb_agg(pg_get_functiondef(p.oid) || coalesce(obj_description(p.oid, 'pg_proc'), '') || coalesce(p.proacl::text, '')
		                ORDER BY p.proname) FROM pg_proc p WHERE p.pronamespace = 'auth'::regnamespace),
		  'users', (SELECT jsonb_agg(column_name || ' ' || data_type || ' ' || coalesce(column_default, '') ORDER BY ordinal_position)
		            FROM information_schema.columns WHERE table_schema = 'auth' AND table_name = 'users'),
		  'comment', obj_description('auth.users'::regclass, 'pg_class'),
		  'acl', (SELECT relacl::text FROM pg_class WHERE oid = 'auth.users'::regclass)
		)::text`
	if err := admin.QueryRow(ctx, authSQL).Scan(&authBefore); err != nil {
		t.Fatal(err)
	}

	if err := migrations.Up(ctx, ownerURL); err != nil {
		t.Fatalf("migrate a Supabase-like database as its non-superuser owner: %v", err)
	}
	if err := migrations.Up(ctx, ownerURL); err != nil {
		t.Fatalf("migrate it again: %v", err)
	}

	var authAfter string
	if err := admin.QueryRow(ctx, authSQL).Scan(&authAfter); err != nil {
		t.Fatal(err)
	}
	if authAfter != authBefore {
		t.Fatalf("the migrations changed Supabase's auth objects\nbefore: %s\nafter:  %s", authBefore, authAfter)
	}

	// Supabase's default privileges must not widen what the API roles may
	// do: they hold exactly the privileges of a plain installation.
	plain := privilegeMatrix(t, tdb.Admin)
	supa := privilegeMatrix(t, admin)
	if extra, missing := diff(supa, plain); len(extra) > 0 || len(missing) > 0 {
		t.Fatalf("privileges on Supabase differ from a plain install:\nextra:   %s\nmissing: %s",
			strings.Join(extra, "\n         "), strings.Join(missing, "\n         "))
	}

	// Rows inserted with just id and email work, and the policies use
	// Supabase's auth.uid().
	a, b := uuid.New(), uuid.New()
	mustExec(t, admin, `INSERT INTO auth.users (id, email) VALUES ($1, 'a@example.com'), ($2, 'b@example.com')`, a, b)
	mustExec(t, admin, `INSERT INTO profiles (user_id, display_name) VALUES ($1, 'A'), ($2, 'B')`, a, b)
	app := newPool(t, appURL, 0)
	n, err := execAs(ctx, app, userIdentity(a, false), `SELECT 1 FROM profiles`)
	if err != nil || n != 1 {
		t.Fatalf("A sees %d profiles (err %v), want 1", n, err)
	}
	if _, err := execAs(ctx, app, anonIdentity, `SELECT * FROM public.user_emails(ARRAY[$1::uuid])`, a); dbtest.SQLState(err) != codeDenied {
		t.Fatalf("anon calling user_emails: %v, want permission denied", err)
	}
	if _, err := execAs(ctx, app, anonIdentity, `SELECT 1 FROM goose_db_version`); dbtest.SQLState(err) != codeDenied {
		t.Fatalf("anon reading the migration table: %v, want permission denied", err)
	}
	// As on Supabase, the service role may not read auth.users, and no API
	// role may ask which emails have accounts.
	if _, err := execAs(ctx, app, serviceIdentity, `SELECT 1 FROM auth.users`); dbtest.SQLState(err) != codeDenied {
		t.Fatalf("service role reading auth.users: %v, want permission denied", err)
	}
	for _, who := range []identity{anonIdentity, userIdentity(a, false)} {
		if _, err := execAs(ctx, app, who, `SELECT public.auth_user_id('a@example.com')`); dbtest.SQLState(err) != codeDenied {
			t.Fatalf("%v calling auth_user_id: %v, want permission denied", who, err)
		}
	}

	// EnsureUser, through the project login as `server token` uses it,
	// only looks users up: Supabase Auth owns auth.users here.
	d := openDB(t, ownerURL, 0)
	for _, email := range []string{"a@example.com", "A@Example.com"} {
		got, err := d.EnsureUser(ctx, email)
		if err != nil || got != a {
			t.Fatalf("EnsureUser(%s) = %v, %v; want %v", email, got, err, a)
		}
	}
	_, err = d.EnsureUser(ctx, "new@example.com")
	if !errors.Is(err, db.ErrNotLocalAuth) || !strings.Contains(err.Error(), "sign up through Supabase Auth first") {
		t.Fatalf("EnsureUser(new) error = %v, want ErrNotLocalAuth telling to sign up first", err)
	}
}

func testEnsureUserOnLocalAuth(t *testing.T, tdb *testDB) {
	d := openDB(t, tdb.AppURL, 0)
	ctx := context.Background()
	// Emails of its own: the database is shared.
	alice, bob := "alice-"+uuid.NewString()+"@example.com", "bob-"+uuid.NewString()+"@example.com"

	first, err := d.EnsureUser(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	var stored string
	if err := tdb.Admin.QueryRow(ctx, `SELECT email FROM auth.users WHERE id = $1`, first).Scan(&stored); err != nil || stored != alice {
		t.Fatalf("auth.users holds %q for %v (%v), want %q", stored, first, err, alice)
	}
	again, err := d.EnsureUser(ctx, alice)
	if err != nil || again != first {
		t.Fatalf("second EnsureUser = %v, %v; want %v", again, err, first)
	}
	other, err := d.EnsureUser(ctx, bob)
	if err != nil || other == first {
		t.Fatalf("EnsureUser(bob) = %v, %v; want a new id", other, err)
	}
}

// diff returns what is in a but not b, and what is in b but not a; both
// sorted.
func diff(a, b []string) (onlyA, onlyB []string) {
	inA, inB := map[string]bool{}, map[string]bool{}
	for _, s := range a {
		inA[s] = true
	}
	for _, s := range b {
		inB[s] = true
	}
	for _, s := range a {
		if !inB[s] {
			onlyA = append(onlyA, s)
		}
	}
	for _, s := range b {
		if !inA[s] {
			onlyB = append(onlyB, s)
		}
	}
	return onlyA, onlyB
}
