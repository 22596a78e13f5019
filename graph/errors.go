package graph

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/recovery"
	"github.com/narrate/narrate/voice"
)

// The error codes of the contract, carried in extensions.code.
const (
	CodeUnauthenticated  = "UNAUTHENTICATED"
	CodeForbidden        = "FORBIDDEN"
	CodeNotFound         = "NOT_FOUND"
	CodeBadUserInput     = "BAD_USER_INPUT"
	CodeConflict         = "CONFLICT"
	CodeVoiceNotVerified = "VOICE_NOT_VERIFIED"
	CodeRateLimited      = "RATE_LIMITED"
	CodeQueryTooComplex  = "QUERY_TOO_COMPLEX"
	CodeInternal         = "INTERNAL_SERVER_ERROR"
	CodeNotImplemented   = "NOT_IMPLEMENTED"
)

// Error is an error meant for the client: its message is safe to show and
// its code is one of the contract's.
type Error struct {
	Code    string
	Message string
	// Err is the cause, logged but never shown.
	Err error
	// RetryAfter, when positive, tells a RATE_LIMITED client how many
	// seconds to wait (extensions.retryAfter).
	RetryAfter int
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

// NewError makes a client error with a code.
func NewError(code, message string) *Error { return &Error{Code: code, Message: message} }

func errUnauthenticated() *Error {
	return NewError(CodeUnauthenticated, "sign in to do this")
}

func errForbidden() *Error { return NewError(CodeForbidden, "only admins may do this") }

func badInput(message string) *Error { return NewError(CodeBadUserInput, message) }

// fromDB turns a data-layer error into a client error where it has a
// meaning for the client; anything else stays internal.
func fromDB(err error, notFound string) error {
	var limited *db.RateLimitError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, db.ErrNotFound):
		return &Error{Code: CodeNotFound, Message: notFound, Err: err}
	case errors.Is(err, db.ErrConflict):
		return &Error{Code: CodeConflict, Message: err.Error(), Err: err}
	case errors.Is(err, db.ErrInvalid):
		return &Error{Code: CodeBadUserInput, Message: err.Error(), Err: err}
	case errors.Is(err, db.ErrForbidden):
		return &Error{Code: CodeForbidden, Message: "not allowed", Err: err}
	case errors.As(err, &limited):
		return &Error{Code: CodeRateLimited, Message: limited.Error(), Err: err,
			RetryAfter: max(1, int(math.Ceil(limited.Wait.Seconds())))}
	case errors.Is(err, db.ErrDailyBudget):
		return &Error{Code: CodeRateLimited, Message: err.Error() + " (the budget renews at midnight UTC)", Err: err,
			RetryAfter: secondsUntil(nextUTCMidnight(time.Now()))}
	case errors.Is(err, db.ErrQuota):
		return &Error{Code: CodeRateLimited, Message: err.Error() + "; wait for one to finish or cancel one", Err: err}
	case errors.Is(err, db.ErrVoiceProviderUnverified):
		return &Error{Code: CodeVoiceNotVerified, Message: "the voice service holds your cloned voice back until it is verified there " +
			"(ElevenLabs answered requires_verification); create a new voice sample from other recordings, " +
			"or ask the service's operator to verify the voice at ElevenLabs", Err: err}
	case errors.Is(err, db.ErrVoiceNotVerified):
		return &Error{Code: CodeVoiceNotVerified, Message: "record and verify your voice sample before starting a narration", Err: err}
	}
	return err
}

// ErrorPresenter returns gqlgen's error presenter: client errors keep their
// message and code; anything else is logged with its detail and reaches the
// client as a bare INTERNAL_SERVER_ERROR, so SQL, stack traces and other
// users' data never leak.
func ErrorPresenter(logger *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		var gqlErr *gqlerror.Error
		if errors.As(err, &gqlErr) && gqlErr.Err == nil {
			// Parse, validation and argument errors made by gqlgen or the
			// scalars: already client errors.
			return gqlErr
		}
		presented := graphql.DefaultErrorPresenter(ctx, err)
		var appErr *Error
		if errors.As(err, &appErr) {
			if appErr.Err != nil {
				logger.DebugContext(ctx, "client error", "code", appErr.Code, "err", appErr.Err, "path", graphql.GetPath(ctx).String())
			}
			presented.Message = appErr.Message
			presented.Extensions = map[string]any{"code": appErr.Code}
			if appErr.RetryAfter > 0 {
				presented.Extensions["retryAfter"] = appErr.RetryAfter
			}
			return presented
		}
		if errors.As(err, &gqlErr) && gqlErr.Extensions["code"] != nil {
			return presented
		}
		if errors.Is(err, recovery.ErrPanic) {
			// A panic a transport recovered, logged with its stack and
			// counted there.
			presented.Message = "internal server error"
			presented.Extensions = map[string]any{"code": CodeInternal}
			return presented
		}
		if errors.Is(err, voice.ErrNotConfigured) {
			// A server without a voice provider: what the client and the
			// operator need to know, not an internal failure.
			presented.Message = "voice features are not available on this server: " + voice.ErrNotConfigured.Error()
			presented.Extensions = map[string]any{"code": CodeNotImplemented}
			return presented
		}
		if errors.Is(err, context.Canceled) {
			presented.Message = "request canceled"
			presented.Extensions = map[string]any{"code": CodeInternal}
			return presented
		}
		logger.ErrorContext(ctx, "internal error", "err", err, "path", graphql.GetPath(ctx).String())
		presented.Message = "internal server error"
		presented.Extensions = map[string]any{"code": CodeInternal}
		return presented
	}
}

// RecoverPanic is gqlgen's RecoverFunc: gqlgen recovers panics in
// resolvers and in its transports' goroutines (a websocket's operations, a
// server-sent event stream) and hands them here, which logs and counts
// them and answers an internal error, all the client learns.
func (r *Resolver) RecoverPanic(ctx context.Context, v any) error {
	err := r.Panics.Recovered(ctx, r.logger().With("path", graphql.GetPath(ctx).String()), "graphql", v)
	return &Error{Code: CodeInternal, Message: "internal server error", Err: err}
}

func nextUTCMidnight(now time.Time) time.Time {
	y, m, d := now.UTC().Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}

// secondsUntil is the whole seconds until t, at least 1.
func secondsUntil(t time.Time) int {
	return max(1, int(math.Ceil(time.Until(t).Seconds())))
}
