package db

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/narrate/narrate/limit"
)

// ErrQuota: the database refused a write that would exceed a user's quota.
// It wraps one of ErrTooManyActive and ErrDailyBudget.
var ErrQuota = errors.New("quota exceeded")

// The quotas, as the quota trigger reports them (SQLSTATE NQ001, NQ002).
var (
	ErrTooManyActive = fmt.Errorf("%w: too many narrations queued or running", ErrQuota)
	ErrDailyBudget   = fmt.Errorf("%w: daily narration budget reached", ErrQuota)
)

// QuotaError is a refused write with the database's explanation.
type QuotaError struct {
	Kind    error // ErrTooManyActive or ErrDailyBudget
	Message string
}

func (e *QuotaError) Error() string { return e.Message }
func (e *QuotaError) Unwrap() error { return e.Kind }

// quotaError recognises the quota trigger's errors.
func quotaError(err error) (error, bool) {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return nil, false
	}
	switch pgErr.Code {
	case "NQ001":
		return &QuotaError{Kind: ErrTooManyActive, Message: pgErr.Message}, true
	case "NQ002":
		return &QuotaError{Kind: ErrDailyBudget, Message: pgErr.Message}, true
	}
	return nil, false
}

// SetGenerationLimits writes the quotas the database enforces on every
// user's inserts: at most maxActive PENDING plus IN_PROGRESS generations,
// and dailyCharacters story characters queued per UTC day. Every server
// sharing the database should be given the same values.
func (d *DB) SetGenerationLimits(ctx context.Context, maxActive int, dailyCharacters int64) error {
	return d.Batch(ctx, Service(), func(b *pgx.Batch) {
		b.Queue(`UPDATE generation_limits SET max_active = $1, daily_characters = $2`, maxActive, dailyCharacters)
	})
}

// RateLimitError is a refused call: the user's bucket for Action is
// empty, and the next token comes in Wait.
type RateLimitError struct {
	Action string
	Rate   limit.Rate
	Wait   time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("%s is limited to %d per %s; try again in %s", e.Action, e.Rate.Burst, e.Rate.Per, e.Wait.Round(time.Second))
}

// TakeToken takes one token from the session user's bucket for action,
// which holds r.Burst tokens refilled at r.Burst per r.Per, or returns a
// *RateLimitError. The bucket lives in the database, so the limit holds
// across servers. An unlimited rate takes nothing.
func (d *DB) TakeToken(ctx context.Context, s Session, action string, r limit.Rate) error {
	return d.Tx(ctx, s, func(q Querier) error { return takeToken(ctx, q, action, r) })
}

// takeToken is TakeToken inside a transaction: if the transaction rolls
// back, the token is given back.
func takeToken(ctx context.Context, q Querier, action string, r limit.Rate) error {
	if r.Unlimited() {
		return nil
	}
	var wait float64
	if err := q.QueryRow(ctx, `SELECT take_rate_token($1, $2, $3)`, action, r.Burst, r.PerSecond()).Scan(&wait); err != nil {
		return fmt.Errorf("take rate token: %w", err)
	}
	if wait > 0 {
		return &RateLimitError{Action: action, Rate: r, Wait: time.Duration(math.Ceil(wait * float64(time.Second)))}
	}
	return nil
}
