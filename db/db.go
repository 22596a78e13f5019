// Package db is the data layer: a pgx pool whose every transaction runs as
// the API role and JWT claims of the caller, so PostgreSQL's row-level
// security decides what each request sees, and the queries the API needs.
package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/narrate/narrate/role"
)

// Session is the identity database work runs under: the role to switch to
// and the verified JWT claims that auth.uid() and auth.jwt() read.
type Session struct {
	Role   string
	Claims json.RawMessage
	// UserID is the claims' subject, uuid.Nil for anonymous and service work.
	UserID uuid.UUID
}

// Anonymous is the session of a request without a token.
func Anonymous() Session { return Session{Role: role.Anon} }

// Service is the privileged session of the worker and the listener.
func Service() Session {
	return Session{Role: role.Service, Claims: serviceClaims}
}

// UserSession is the session of a signed-in user with their verified claims.
func UserSession(userID uuid.UUID, claims json.RawMessage) Session {
	return Session{Role: role.Authenticated, Claims: claims, UserID: userID}
}

// serviceClaims are the claims of service work, as Supabase's service key
// carries them.
var serviceClaims, _ = json.Marshal(map[string]string{"role": role.Service})

// AdminSession is the session of a signed-in admin (their verified claims
// say app_metadata.role = "admin"): the admin policies require both the
// role and the claim.
func AdminSession(userID uuid.UUID, claims json.RawMessage) Session {
	return Session{Role: role.Admin, Claims: claims, UserID: userID}
}

// claimsArg is the claims as set_config's text argument: the token's bytes
// as they are (no copy into a string), or ” when there are none, which
// auth.jwt() reads as no claims.
func (s Session) claimsArg() any {
	if len(s.Claims) == 0 {
		return ""
	}
	return []byte(s.Claims)
}

// setSessionSQL switches role and claims for the current transaction only.
// SET LOCAL cannot take parameters, set_config can; is_local=true makes both
// revert at commit or rollback, so a pooled connection never carries one
// user's identity into the next transaction.
//
// It also has the transaction's prepared statements run their generic
// plans. PostgreSQL otherwise plans a statement anew for every execution
// whenever it estimates the generic plan dearer than plans made for the
// actual values, as it does for the batched lateral listings (it cannot
// know how many keys an array holds): planning then costs more than
// running the statement. The statements name only the predicates they use
// (see statement), so their generic plans are the index scans a custom
// plan would choose.
const setSessionSQL = `SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true),
  set_config('plan_cache_mode', 'force_generic_plan', true)`

// Querier is what code running inside a transaction may use.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// DB is the application's connection pool.
type DB struct {
	Pool *pgxpool.Pool
}

// Options tune Open.
type Options struct {
	// Tracer observes every query, e.g. to count statements in tests.
	Tracer pgx.QueryTracer
	// MaxConns caps the pool; 0 keeps pgxpool's default.
	MaxConns int32
}

// Open connects a pool to url. It does not wait for the database to answer.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if opts.Tracer != nil {
		cfg.ConnConfig.Tracer = opts.Tracer
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	return &DB{Pool: pool}, nil
}

// Close closes the pool.
func (d *DB) Close() { d.Pool.Close() }

// Ping reports whether the database answers.
func (d *DB) Ping(ctx context.Context) error { return d.Pool.Ping(ctx) }

// Batch runs the statements queue adds in one transaction under s, in a
// single round trip: BEGIN, the session settings, the statements and COMMIT
// are pipelined together. A failing statement aborts the transaction, and
// its error is returned. The statements' callbacks (QueuedQuery.Query,
// QueryRow, Exec) run as results arrive, after the whole batch, COMMIT
// included, has been sent: an error a callback returns is returned too, but
// cannot undo the transaction, which commits when its statements succeeded.
// Work that must decide whether to commit from what it read uses Tx.
//
// pgx prepares the statements a connection has not run before in a round
// trip of their own ahead of the batch, that is before the role switch and
// as the login role: they may name only what the login can resolve, such as
// tables and functions in schema public, but not schema auth (call a public
// function such as user_emails instead, or use Tx, whose statements are
// prepared after the switch).
func (d *DB) Batch(ctx context.Context, s Session, queue func(b *pgx.Batch)) error {
	return d.send(ctx, s, "BEGIN", queue)
}

// send runs a batch under s: in an explicit transaction that begin starts
// (BEGIN, say) and COMMIT ends when begin is not empty, else in the implicit transaction PostgreSQL gives the
// statements of a pipeline up to its Sync, which pgx sends once, at the
// end of the batch. The implicit one is enough for reads (the settings are
// transaction-local all the same, and a failing statement rolls back the
// rest) and spares the server two statements; some statements (LOCK, SET
// TRANSACTION) require an explicit one.
func (d *DB) send(ctx context.Context, s Session, begin string, queue func(b *pgx.Batch)) error {
	return d.retryStale(ctx, func() error {
		conn, err := d.Pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("acquire connection: %w", err)
		}
		defer conn.Release()

		b := &pgx.Batch{}
		if begin != "" {
			b.Queue(begin)
		}
		b.Queue(setSessionSQL, s.Role, s.claimsArg())
		queue(b)
		if begin != "" {
			b.Queue("COMMIT")
		}
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			abort(ctx, conn)
			return err
		}
		return nil
	})
}

// retryStale runs fn again, once, when it failed on a connection the
// server had already dropped: a pooled connection that outlived a server
// restart or failover. Two kinds of failure qualify, both certain not to
// have committed anything. Those pgx marks safe to retry failed before
// anything reached the server. A 57P class error (admin or crash shutdown,
// or a terminated backend) ends the session before the transaction's COMMIT
// completes: had COMMIT completed, its result would have been read first,
// and the batch would have succeeded. The retry gets a fresh connection.
//
// A 57P error usually means the server restarted, and then every idle
// connection in the pool is dead too: the pool is reset so the retry, and
// the requests after it, do not meet them one by one.
func (d *DB) retryStale(ctx context.Context, fn func() error) error {
	err := fn()
	if err == nil || ctx.Err() != nil {
		return err
	}
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "57P"):
		d.Pool.Reset()
	case !pgconn.SafeToRetry(err):
		return err
	}
	return fn()
}

// Tx runs fn in a transaction under s, for work that needs several
// round trips (read, decide, write). BEGIN and the session settings share
// the first round trip.
func (d *DB) Tx(ctx context.Context, s Session, fn func(q Querier) error) error {
	var conn *pgxpool.Conn
	err := d.retryStale(ctx, func() error {
		c, err := d.Pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("acquire connection: %w", err)
		}
		if err := c.SendBatch(ctx, begin(s)).Close(); err != nil {
			abort(ctx, c)
			c.Release()
			return fmt.Errorf("begin: %w", err)
		}
		conn = c
		return nil
	})
	if err != nil {
		return err
	}
	defer conn.Release()

	if err := fn(conn); err != nil {
		abort(ctx, conn)
		return err
	}
	ct, err := conn.Exec(ctx, "COMMIT")
	if err != nil {
		abort(ctx, conn)
		return fmt.Errorf("commit: %w", err)
	}
	// COMMIT of a transaction a statement has aborted succeeds but rolls
	// back: fn saw a statement fail and still returned nil. Reporting
	// success would claim writes that never happened.
	if ct.String() == "ROLLBACK" {
		return fmt.Errorf("commit: %w", pgx.ErrTxCommitRollback)
	}
	return nil
}

// abort rolls back whatever transaction the connection is left in. If that
// fails the pool discards the connection on release, because pgxpool never
// reuses a connection that is not idle outside a transaction.
func abort(ctx context.Context, conn *pgxpool.Conn) {
	if conn.Conn().PgConn().TxStatus() == 'I' {
		return
	}
	_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
}

// begin starts a batch with BEGIN and the session's settings, which every
// transaction sends before its statements.
func begin(s Session) *pgx.Batch {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(setSessionSQL, s.Role, s.claimsArg())
	return b
}

// Errors callers branch on.
var (
	// ErrNotFound: no such row, or not one the session may see.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique key is taken or a precondition no longer holds.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the database rejected a value (a CHECK constraint).
	ErrInvalid = errors.New("invalid value")
	// ErrForbidden: a row-level security policy refused the write.
	ErrForbidden = errors.New("forbidden")
)

// classify maps PostgreSQL errors to the errors above, keeping the original
// for logs.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505":
			return fmt.Errorf("%w: %s", ErrConflict, pgErr.ConstraintName)
		case "23514", "22001", "23502":
			return fmt.Errorf("%w: %s", ErrInvalid, fieldOf(pgErr))
		case "42501":
			return fmt.Errorf("%w: %s", ErrForbidden, pgErr.Message)
		}
	}
	return err
}

// fieldOf names the column a rejected value was for, rather than the
// constraint, whose name tells clients about the schema: a CHECK named
// stories_title_check is about "title".
func fieldOf(e *pgconn.PgError) string {
	if e.ColumnName != "" {
		return e.ColumnName
	}
	name := strings.TrimSuffix(e.ConstraintName, "_check")
	if e.TableName != "" {
		name = strings.TrimPrefix(name, e.TableName+"_")
	}
	if name == "" {
		return "a field"
	}
	return name
}
