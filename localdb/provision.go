package localdb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// LoginRole is the non-superuser role the application logs in as. Like
// Supabase's authenticator it holds no privileges of its own (NOINHERIT) and
// only switches to the API roles.
const LoginRole = "authenticator"

// APIRoles are the roles LoginRole may switch to. The project's migrations
// create them.
var APIRoles = []string{"anon", "authenticated", "service_role", "narrate_admin"}

// ErrRolePrivilege is returned (wrapped) by Provision when the admin user may
// not create LoginRole or grant it the API roles. The database has been
// created and migrated by then; callers that can live with it, such as tests
// against a shared server, may fall back to the admin URL.
var ErrRolePrivilege = errors.New("not allowed to create or grant the login role")

// provisionLockKey serialises Provision calls against one server (advisory
// locks are per database, so per admin database). Concurrent test packages
// sharing a server would otherwise race on CREATE ROLE and GRANT, which
// PostgreSQL reports as duplicate or "tuple concurrently updated" errors.
const provisionLockKey int64 = 0x6e61727261746501

// Provision makes database dbname exist (creating it if absent), runs
// migrate(ctx, url) against it as the admin user, then makes sure LoginRole
// exists as a non-superuser login that may switch to APIRoles and connect to
// the database, and returns the URL the application should use: the admin
// URL with user LoginRole and database dbname.
//
// adminURL must be a postgres:// URL of a user allowed to create databases;
// its database is where dbname is created from. When adminURL carries a
// password, LoginRole is given the same password, so the returned URL also
// works on servers that require passwords. A nil migrate runs no migrations.
// Provision is idempotent: calling it again on a provisioned database only
// runs migrate again.
func Provision(ctx context.Context, adminURL string, dbname string, migrate func(ctx context.Context, url string) error) (appURL string, err error) {
	if dbname == "" {
		return "", errors.New("localdb: provision: empty database name")
	}
	dbURL, err := WithDatabase(adminURL, dbname)
	if err != nil {
		return "", err
	}
	u, _ := url.Parse(dbURL)
	password, hasPassword := u.User.Password()

	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("localdb: provision %s: connect: %w", dbname, err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	// Closing the connection releases the session lock too, including on the
	// error paths below.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", provisionLockKey); err != nil {
		return "", fmt.Errorf("localdb: provision %s: lock: %w", dbname, err)
	}
	if err := createDatabase(ctx, conn, dbname); err != nil {
		return "", fmt.Errorf("localdb: provision %s: %w", dbname, err)
	}
	if migrate != nil {
		if err := migrate(ctx, dbURL); err != nil {
			return "", fmt.Errorf("localdb: provision %s: migrate: %w", dbname, err)
		}
	}
	if err := ensureLoginRole(ctx, conn, LoginRole, password, dbname); err != nil {
		return "", fmt.Errorf("localdb: provision %s: %w", dbname, err)
	}
	if hasPassword {
		u.User = url.UserPassword(LoginRole, password)
	} else {
		u.User = url.User(LoginRole)
	}
	return u.String(), nil
}

// WithDatabase returns rawURL, a postgres:// URL, pointing at database dbname.
func WithDatabase(rawURL, dbname string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("localdb: parse database URL: %w", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", fmt.Errorf("localdb: database URL must use the postgres:// scheme, got %q", u.Scheme)
	}
	q := u.Query()
	if q.Has("dbname") {
		q.Del("dbname")
		u.RawQuery = q.Encode()
	}
	u.Path, u.RawPath = "/"+dbname, ""
	return u.String(), nil
}

func createDatabase(ctx context.Context, conn *pgx.Conn, dbname string) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", dbname).Scan(&exists); err != nil {
		return fmt.Errorf("check database: %w", err)
	}
	if exists {
		return nil
	}
	_, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{dbname}.Sanitize())
	if pgErrCode(err) == "42P04" { // duplicate_database: created by someone else meanwhile.
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	return nil
}

// ensureLoginRole creates or repairs role login and grants it what is
// missing, in one transaction so a failure leaves no half-made role behind.
// It only issues statements that change something, so that an unprivileged
// admin user succeeds against a server already set up by someone else; the
// exception is a password, which cannot be read back to compare and is set
// on every call, so such a user needs a password-less admin URL.
func ensureLoginRole(ctx context.Context, conn *pgx.Conn, login, password, dbname string) (err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("login role: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()

	var missing []string
	if err := queryStrings(ctx, tx, &missing,
		"SELECT r FROM unnest($1::text[]) AS r WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r)", APIRoles); err != nil {
		return fmt.Errorf("check API roles: %w", err)
	}
	if len(missing) > 0 {
		return fmt.Errorf("roles %v do not exist: the migrations must create them", missing)
	}

	var super, inherit, canLogin bool
	err = tx.QueryRow(ctx, "SELECT rolsuper, rolinherit, rolcanlogin FROM pg_roles WHERE rolname = $1", login).
		Scan(&super, &inherit, &canLogin)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		stmt := "CREATE ROLE %I LOGIN NOINHERIT NOSUPERUSER"
		if password != "" {
			stmt += " PASSWORD %L"
		}
		if err := execFormatted(ctx, tx, stmt, login, password); err != nil {
			return roleErr("create role", err)
		}
	case err != nil:
		return fmt.Errorf("check login role: %w", err)
	default:
		if super || inherit || !canLogin {
			if err := execFormatted(ctx, tx, "ALTER ROLE %I LOGIN NOINHERIT NOSUPERUSER", login); err != nil {
				return roleErr("alter role", err)
			}
		}
		if password != "" {
			if err := execFormatted(ctx, tx, "ALTER ROLE %I PASSWORD %L", login, password); err != nil {
				return roleErr("set password", err)
			}
		}
	}

	var toGrant []string
	if err := queryStrings(ctx, tx, &toGrant,
		"SELECT r FROM unnest($2::text[]) AS r WHERE NOT pg_has_role($1::name, r::name, 'MEMBER')", login, APIRoles); err != nil {
		return fmt.Errorf("check role membership: %w", err)
	}
	if len(toGrant) > 0 {
		roles := make([]string, len(toGrant))
		for i, r := range toGrant {
			roles[i] = pgx.Identifier{r}.Sanitize()
		}
		stmt := "GRANT " + strings.Join(roles, ", ") + " TO " + pgx.Identifier{login}.Sanitize()
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return roleErr("grant roles", err)
		}
	}

	var canConnect bool
	if err := tx.QueryRow(ctx, "SELECT has_database_privilege($1::name, $2::text, 'CONNECT')", login, dbname).Scan(&canConnect); err != nil {
		return fmt.Errorf("check connect privilege: %w", err)
	}
	if !canConnect {
		if err := execFormatted(ctx, tx, "GRANT CONNECT ON DATABASE %I TO %I", dbname, login); err != nil {
			return roleErr("grant connect", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return roleErr("commit login role", err)
	}
	return nil
}

// execFormatted builds a utility statement with the server's format(), whose
// %I and %L quote identifiers and literals; utility statements such as
// CREATE ROLE take no bind parameters.
func execFormatted(ctx context.Context, tx pgx.Tx, format string, args ...string) error {
	params := make([]any, 0, len(args)+1)
	params = append(params, format)
	for _, a := range args {
		params = append(params, a)
	}
	placeholders := make([]string, len(params))
	for i := range params {
		placeholders[i] = fmt.Sprintf("$%d::text", i+1)
	}
	var stmt string
	if err := tx.QueryRow(ctx, "SELECT format("+strings.Join(placeholders, ", ")+")", params...).Scan(&stmt); err != nil {
		return fmt.Errorf("format statement: %w", err)
	}
	_, err := tx.Exec(ctx, stmt)
	return err
}

func queryStrings(ctx context.Context, tx pgx.Tx, dst *[]string, sql string, args ...any) error {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	*dst, err = pgx.CollectRows(rows, pgx.RowTo[string])
	return err
}

func roleErr(op string, err error) error {
	if pgErrCode(err) == "42501" { // insufficient_privilege
		return fmt.Errorf("%w: %s: %w", ErrRolePrivilege, op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func pgErrCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
