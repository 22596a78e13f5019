package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/recovery"
)

// newLogBuffer returns a debug-level logger writing JSON lines to the
// returned buffer, so a test can check that what the client is not told
// reaches the operator. The presenter logs on the caller's goroutine, so
// the buffer needs no lock.
func newLogBuffer() (*slog.Logger, *bytes.Buffer) {
	b := &bytes.Buffer{}
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// secretSQL is what an internal error may carry and a client must never see.
const secretSQL = `SELECT email FROM auth.users WHERE id = $1`

// internalPgError is an error as pgx returns it for a statement the
// database rejected, with the statement's text in it.
func internalPgError() error {
	return fmt.Errorf("query stories: %s: %w", secretSQL, &pgconn.PgError{
		Severity:      "ERROR",
		Code:          "42501",
		Message:       "permission denied for table users",
		InternalQuery: secretSQL,
		TableName:     "users",
	})
}

// present runs err through the presenter and returns what the client
// receives, as the JSON it is sent as.
func present(t *testing.T, ctx context.Context, logger *slog.Logger, err error) (*gqlerror.Error, string) {
	t.Helper()
	presented := ErrorPresenter(logger)(ctx, err)
	if presented == nil {
		t.Fatalf("presenter returned nil for %v", err)
	}
	body, jerr := json.Marshal(presented)
	if jerr != nil {
		t.Fatalf("marshal presented error: %v", jerr)
	}
	return presented, string(body)
}

func TestFromDB(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		err      error
		wantCode string // empty: the error stays internal
		wantMsg  string
		hidden   string // a part of err the message must not carry
	}{
		{"not found", db.ErrNotFound, CodeNotFound, "story not found", ""},
		{"wrapped not found", fmt.Errorf("load story: %w", db.ErrNotFound), CodeNotFound, "story not found", "load story"},
		{"conflict keeps its reason", fmt.Errorf("%w: a story with slug %q already exists", db.ErrConflict, "fox"),
			CodeConflict, `conflict: a story with slug "fox" already exists`, ""},
		{"invalid names the field", fmt.Errorf("%w: title", db.ErrInvalid), CodeBadUserInput, "invalid value: title", ""},
		{"forbidden hides the policy", fmt.Errorf("%w: new row violates row-level security policy for table \"stories\"", db.ErrForbidden),
			CodeForbidden, "not allowed", "row-level security"},
		{"voice not verified", fmt.Errorf("start generation: %w", db.ErrVoiceNotVerified), CodeVoiceNotVerified,
			"record and verify your voice sample before starting a narration", "start generation"},
		{"database failure stays internal", internalPgError(), "", "", ""},
		{"context error stays internal", fmt.Errorf("query: %w", context.DeadlineExceeded), "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := fromDB(tt.err, "story not found")
			if !errors.Is(got, tt.err) {
				t.Errorf("fromDB(%v) = %v, which lost the cause the logs need", tt.err, got)
			}
			var appErr *Error
			if tt.wantCode == "" {
				if errors.As(got, &appErr) {
					t.Fatalf("fromDB(%v) = client error %s %q, want it kept internal", tt.err, appErr.Code, appErr.Message)
				}
				return
			}
			if !errors.As(got, &appErr) {
				t.Fatalf("fromDB(%v) = %v, want a client error", tt.err, got)
			}
			if appErr.Code != tt.wantCode || appErr.Message != tt.wantMsg {
				t.Errorf("fromDB(%v) = %s %q, want %s %q", tt.err, appErr.Code, appErr.Message, tt.wantCode, tt.wantMsg)
			}
			if tt.hidden != "" && strings.Contains(appErr.Message, tt.hidden) {
				t.Errorf("message %q shows %q", appErr.Message, tt.hidden)
			}
		})
	}
	if err := fromDB(nil, "story not found"); err != nil {
		t.Errorf("fromDB(nil) = %v, want nil", err)
	}
}

func TestErrorPresenter(t *testing.T) {
	t.Parallel()
	validation := gqlerror.ErrorPosf(nil, "Cannot query field \"nope\" on type \"Query\".")
	validation.Extensions = map[string]any{"code": "GRAPHQL_VALIDATION_FAILED"}

	tests := []struct {
		name     string
		err      error
		wantCode string
		wantMsg  string
		// wantLog is a part of the error that must reach the log (at
		// logLevel), empty when nothing is logged.
		wantLog  string
		logLevel string
	}{
		{"client error", badInput("first must be between 0 and 100"),
			CodeBadUserInput, "first must be between 0 and 100", "", ""},
		{"client error wrapped by a resolver", fmt.Errorf("stories: %w", errUnauthenticated()),
			CodeUnauthenticated, "sign in to do this", "", ""},
		{"forbidden", errForbidden(), CodeForbidden, "only admins may do this", "", ""},
		{"client error with an internal cause", fromDB(fmt.Errorf("%s: %w", secretSQL, db.ErrNotFound), "generation not found"),
			CodeNotFound, "generation not found", secretSQL, "DEBUG"},
		{"database failure", internalPgError(),
			CodeInternal, "internal server error", "permission denied for table users", "ERROR"},
		{"plain error", errors.New("dial tcp 10.0.0.7:5432: connection refused"),
			CodeInternal, "internal server error", "10.0.0.7:5432", "ERROR"},
		// gqlgen wraps errors of arguments and directives so.
		{"gqlerror around an internal error", gqlerror.WrapPath(ast.Path{ast.PathName("stories")}, internalPgError()),
			CodeInternal, "internal server error", "permission denied", "ERROR"},
		{"gqlerror with its own code", &gqlerror.Error{Message: "operation too complex", Err: errors.New("cost 30000"),
			Extensions: map[string]any{"code": CodeQueryTooComplex}},
			CodeQueryTooComplex, "operation too complex", "", ""},
		{"validation error", validation, "GRAPHQL_VALIDATION_FAILED", `Cannot query field "nope" on type "Query".`, "", ""},
		{"canceled request", fmt.Errorf("query stories: %s: %w", secretSQL, context.Canceled),
			CodeInternal, "request canceled", "", ""},
		// A transport's recovered panic was logged, with its stack, where
		// it was recovered: it is not logged again.
		{"panic a transport recovered", gqlerror.WrapPath(nil, &recovery.Error{Where: "websocket", Value: "boom: " + secretSQL}),
			CodeInternal, "internal server error", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logger, logs := newLogBuffer()
			ctx := graphql.WithPathContext(context.Background(), graphql.NewPathWithField("stories"))
			got, body := present(t, ctx, logger, tt.err)
			if got.Message != tt.wantMsg {
				t.Errorf("message = %q, want %q", got.Message, tt.wantMsg)
			}
			if code := got.Extensions["code"]; code != tt.wantCode {
				t.Errorf("extensions.code = %v, want %s", code, tt.wantCode)
			}
			if len(got.Extensions) != 1 {
				t.Errorf("extensions = %v, want only the code", got.Extensions)
			}
			for _, leak := range []string{secretSQL, "auth.users", "42501", "permission denied", "10.0.0.7", "cost 30000"} {
				if strings.Contains(body, leak) {
					t.Errorf("client receives %q: %s", leak, body)
				}
			}
			logged := logs.String()
			if tt.wantLog == "" {
				if strings.Contains(logged, `"level":"ERROR"`) {
					t.Errorf("a client error was logged as an internal one: %s", logged)
				}
				return
			}
			if !strings.Contains(logged, `"level":"`+tt.logLevel+`"`) || !strings.Contains(logged, tt.wantLog) {
				t.Errorf("log lacks %q at %s:\n%s", tt.wantLog, tt.logLevel, logged)
			}
			if !strings.Contains(logged, `"path":"stories"`) {
				t.Errorf("log lacks the field's path:\n%s", logged)
			}
		})
	}
}

// TestErrorPresenterKeepsPath checks a resolver error keeps the path of the
// field it failed on, which is how a client tells which field is null.
func TestErrorPresenterKeepsPath(t *testing.T) {
	t.Parallel()
	logger, _ := newLogBuffer()
	ctx := graphql.WithPathContext(context.Background(), graphql.NewPathWithField("story"))
	for _, err := range []error{badInput("give exactly one of id and slug"), internalPgError()} {
		got, _ := present(t, ctx, logger, err)
		if got.Path.String() != "story" {
			t.Errorf("path of %v = %q, want story", err, got.Path.String())
		}
	}
}

func TestRecoverFunc(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value any
		want  string // in the log
	}{
		{"string", "boom: " + secretSQL, secretSQL},
		{"error", fmt.Errorf("index out of range [7] with length 3 in %s", secretSQL), "index out of range [7]"},
		{"struct", struct{ Token string }{"eyJhbGciOi.secret"}, "eyJhbGciOi.secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logger, logs := newLogBuffer()
			ctx := graphql.WithPathContext(context.Background(), graphql.NewPathWithField("viewer"))
			err := (&Resolver{Logger: logger}).RecoverPanic(ctx, tt.value)
			if err == nil {
				t.Fatal("RecoverPanic returned nil: the panicking field would look successful")
			}
			got, body := present(t, ctx, logger, err)
			if got.Message != "internal server error" || got.Extensions["code"] != CodeInternal {
				t.Errorf("client receives %s, want a bare internal server error", body)
			}
			for _, leak := range []string{"boom", "index out of range", "eyJhbGciOi", "auth.users"} {
				if strings.Contains(body, leak) {
					t.Errorf("client receives %q: %s", leak, body)
				}
			}
			logged := logs.String()
			if !strings.Contains(logged, `"level":"ERROR"`) || !strings.Contains(logged, tt.want) {
				t.Errorf("log lacks the panic value %q at ERROR:\n%s", tt.want, logged)
			}
		})
	}
}
