// Package auth verifies the bearer tokens that Supabase Auth issues and mints
// equivalent tokens for local development.
//
// A [Verifier] accepts HS256 tokens signed with the project's legacy JWT
// secret and ES256/RS256 tokens signed with keys published at a JWKS
// endpoint. Each algorithm is pinned to its kind of key, so a token can never
// choose how it is checked. Every verification failure wraps
// [ErrInvalidToken] and carries a message that is safe to show to clients.
package auth

import (
	"errors"
	"strings"
)

// ErrInvalidToken is wrapped by every error that reports a token, or an
// Authorization header, that cannot be accepted.
var ErrInvalidToken = errors.New("invalid token")

// tokenError is a verification failure. Its message is a fixed, client-safe
// reason; the underlying cause stays reachable through errors.Is and
// errors.As for logs and tests without ever leaking into Error().
type tokenError struct {
	reason string
	cause  error
}

func (e *tokenError) Error() string { return ErrInvalidToken.Error() + ": " + e.reason }

func (e *tokenError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrInvalidToken}
	}
	return []error{ErrInvalidToken, e.cause}
}

func invalid(reason string, cause error) error {
	return &tokenError{reason: reason, cause: cause}
}

// BearerToken extracts the token from an Authorization header value.
//
// It returns ok=false and no error when the header is absent or blank, which
// marks an anonymous request. A header that is present but is not
// "Bearer <token>" (the scheme is matched case-insensitively) returns an
// error wrapping [ErrInvalidToken], because a client that sent credentials
// must never be silently downgraded to anonymous.
func BearerToken(header string) (token string, ok bool, err error) {
	header = strings.TrimSpace(header)
	if header == "" {
		return "", false, nil
	}
	scheme, rest, _ := strings.Cut(header, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false, invalid("authorization header must use the Bearer scheme", nil)
	}
	token = strings.TrimSpace(rest)
	if token == "" {
		return "", false, invalid("bearer token is empty", nil)
	}
	if strings.ContainsAny(token, " \t") {
		return "", false, invalid("token is malformed", nil)
	}
	return token, true, nil
}
