// Package authtest makes the tokens tests present: Supabase-shaped claims,
// signed with any method and key, so that tests can forge the expired,
// misaddressed and badly signed tokens a verifier must refuse.
package authtest

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Claims are the claims Supabase gives user id with email: signed in by
// email, valid for an hour, as changed by mod (nil: unchanged).
func Claims(id uuid.UUID, email string, mod func(jwt.MapClaims)) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"sub":           id.String(),
		"email":         email,
		"role":          "authenticated",
		"aud":           "authenticated",
		"iat":           now.Unix(),
		"exp":           now.Add(time.Hour).Unix(),
		"iss":           "https://ref.supabase.co/auth/v1",
		"app_metadata":  map[string]any{"provider": "email", "providers": []string{"email"}},
		"user_metadata": map[string]any{},
		"session_id":    uuid.NewString(),
		"is_anonymous":  false,
	}
	if mod != nil {
		mod(c)
	}
	return c
}

// Sign signs claims with method and key, naming kid in the header unless
// it is empty.
func Sign(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}
