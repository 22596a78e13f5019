package auth

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/narrate/narrate/auth/authtest"
	"github.com/narrate/narrate/db/dbtest"
)

var testSecret = []byte("super-secret-jwt-token-with-at-least-32-characters-long")

// claimsFor returns Supabase-shaped claims for userID, valid for an hour,
// after applying mod.
func claimsFor(userID uuid.UUID, mod func(jwt.MapClaims)) jwt.MapClaims {
	return authtest.Claims(userID, "alice@example.com", mod)
}

// payloadOf returns the decoded payload segment of a compact token.
func payloadOf(t *testing.T, token string) []byte {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("decode payload: %v", err)
	}
	return b
}

func TestVerify(t *testing.T) {
	t.Parallel()

	srv := newJWKSServer(t)
	srv.add(t, &rsaKey.PublicKey, "rsa-1", jwkset.AlgRS256)
	srv.add(t, &ecKey.PublicKey, "ec-1", jwkset.AlgES256)
	// Keys published without an alg leave the key-type check to the
	// Verifier alone.
	srv.add(t, &ecKey.PublicKey, "ec-noalg", "")
	srv.add(t, &rsaKey.PublicKey, "rsa-noalg", "")

	verifiers := map[string]*Verifier{
		"secret": newVerifier(t, Config{Secret: testSecret}),
		"jwks":   newVerifier(t, Config{JWKSURL: srv.URL, HTTPClient: srv.Client()}),
		"both":   newVerifier(t, Config{Secret: testSecret, JWKSURL: srv.URL, HTTPClient: srv.Client()}),
	}

	rsaPublicPEM := func() []byte {
		der, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}()

	user := uuid.New()
	now := time.Now()
	// signed makes a token maker for a table entry: user's claims after mod,
	// signed with method and key under kid.
	signed := func(method jwt.SigningMethod, key any, kid string, mod func(jwt.MapClaims)) func(*testing.T) string {
		return func(t *testing.T) string { return authtest.Sign(t, method, key, kid, claimsFor(user, mod)) }
	}
	tests := []struct {
		name     string
		verifier string
		token    func(t *testing.T) string
		admin    bool
		// wantReason, when set, is the expected failure's reason.
		wantReason string
		// wantCause, when set, must be in the failure's chain.
		wantCause error
	}{
		{
			name: "valid HS256", verifier: "secret",
			token: signed(jwt.SigningMethodHS256, testSecret, "", nil),
		},
		{
			name: "valid RS256", verifier: "jwks",
			token: signed(jwt.SigningMethodRS256, rsaKey, "rsa-1", nil),
		},
		{
			name: "valid ES256", verifier: "jwks",
			token: signed(jwt.SigningMethodES256, ecKey, "ec-1", nil),
		},
		{
			name: "valid HS256 with both configured", verifier: "both",
			token: signed(jwt.SigningMethodHS256, testSecret, "", nil),
		},
		{
			name: "valid ES256 with both configured", verifier: "both",
			token: signed(jwt.SigningMethodES256, ecKey, "ec-1", nil),
		},
		{
			name: "valid RS256 without kid", verifier: "jwks",
			token: signed(jwt.SigningMethodRS256, rsaKey, "", nil),
		},
		{
			name: "valid ES256 against a JWK without alg", verifier: "jwks",
			token: signed(jwt.SigningMethodES256, ecKey, "ec-noalg", nil),
		},
		{
			name: "admin", verifier: "secret", admin: true,
			token: signed(jwt.SigningMethodHS256, testSecret, "", func(c jwt.MapClaims) {
				c["app_metadata"] = map[string]any{"provider": "email", "role": "admin"}
			}),
		},
		{
			name: "admin only through app_metadata", verifier: "secret",
			token: signed(jwt.SigningMethodHS256, testSecret, "", func(c jwt.MapClaims) {
				c["user_metadata"] = map[string]any{"role": "admin"}
			}),
		},
		{
			name: "aud as an array", verifier: "secret",
			token: signed(jwt.SigningMethodHS256, testSecret, "", func(c jwt.MapClaims) {
				c["aud"] = []string{"other", "authenticated"}
			}),
		},
		{
			name: "expired within leeway", verifier: "secret",
			token: signed(jwt.SigningMethodHS256, testSecret, "", func(c jwt.MapClaims) {
				c["iat"] = now.Add(-time.Hour).Unix()
				c["exp"] = now.Add(-10 * time.Second).Unix()
			}),
		},
		{
			name: "nbf within leeway", verifier: "secret",
			token: signed(jwt.SigningMethodHS256, testSecret, "", func(c jwt.MapClaims) {
				c["nbf"] = now.Add(10 * time.Second).Unix()
				c["iat"] = now.Add(10 * time.Second).Unix()
			}),
		},
		{
			name: "expired", verifier: "secret", wantReason: "token is expired", wantCause: jwt.ErrTokenExpired,
			token: signed(jwt.SigningMethodHS256, testSecret, "", func(c jwt.MapClaims) {
				c["iat"] = now.Add(-2 * time.Hour).Unix()
				c["exp"] = now.Add(-time.Minute).Unix()
			}),
		},
		{
			name: "nbf in the future", verifier: "secret", wantReason: "token is not valid yet", wantCause: jwt.ErrTokenNotValidYet,
			token: signed(jwt.SigningMethodHS256, testSecret, "", func(c jwt.MapClaims) {
				c["nbf"] = now.Add(5 * time.Minute).Unix()
			}),
		},
		{
			name: "iat in the future", verifier: "secret", wantReason: "token used before issued", wantCause: jwt.ErrTokenUsedBeforeIssued,
			token: signed(jwt.SigningMethodHS256, testSecret, "", func(c jwt.MapClaims) {
				c["iat"] = now.Add(5 * time.Minute).Unix()
			}),
		},
		{
			name: "wrong HS256 secret", verifier: "secret", wantReason: "token signature is invalid", wantCause: jwt.ErrTokenSignatureInvalid,
			token: signed(jwt.SigningMethodHS256, []byte("another-secret-of-sufficient-length-000"), "", nil),
		},
		{
			name: "RS256 signed by a key that is not published", verifier: "jwks", wantReason: "token signature is invalid", wantCause: jwt.ErrTokenSignatureInvalid,
			token: signed(jwt.SigningMethodRS256, otherRSAKey, "rsa-1", nil),
		},
		{
			name: "ES256 signed by a key that is not published", verifier: "jwks", wantReason: "token signature is invalid", wantCause: jwt.ErrTokenSignatureInvalid,
			token: signed(jwt.SigningMethodES256, otherECKey, "ec-1", nil),
		},
		{
			name: "tampered payload", verifier: "secret", wantReason: "token signature is invalid", wantCause: jwt.ErrTokenSignatureInvalid,
			token: func(t *testing.T) string {
				good := strings.Split(authtest.Sign(t, jwt.SigningMethodHS256, testSecret, "", claimsFor(user, nil)), ".")
				forged := strings.Split(authtest.Sign(t, jwt.SigningMethodHS256, []byte("x"), "", claimsFor(user, func(c jwt.MapClaims) {
					c["app_metadata"] = map[string]any{"role": "admin"}
				})), ".")
				return good[0] + "." + forged[1] + "." + good[2]
			},
		},
		{
			name: "alg none", verifier: "both", wantReason: "token signature is invalid", wantCause: jwt.ErrTokenSignatureInvalid,
			token: signed(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", nil),
		},
		{
			name: "alg none with a published kid", verifier: "jwks", wantReason: "token signature is invalid", wantCause: jwt.ErrTokenSignatureInvalid,
			token: signed(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "rsa-1", nil),
		},
		{
			name: "wrong audience", verifier: "secret", wantReason: "token has invalid audience", wantCause: jwt.ErrTokenInvalidAudience,
			token: signed(jwt.SigningMethodHS256, testSecret, "", func(c jwt.MapClaims) { c["aud"] = "anon" }),
		},
		{
			name: "missing audience", verifier: "secret", wantReason: "token is missing a required claim", wantCause: jwt.ErrTokenRequiredClaimMissing,
			token: signed(jwt.SigningMethodHS256, testSecret, "", func(c jwt.MapClaims) { delete(c, "aud") }),
		},
		{
			name: "missing exp", verifier: "secret", wantReason: "token is missing a required claim", wantCause: jwt.ErrTokenRequiredClaimMissing,
			token: signed(jwt.SigningMethodHS256, testSecret, "", func(c jwt.MapClaims) { delete(c, "exp") }),
		},
		{
			name: "non-uuid sub", verifier: "secret", wantReason: "subject is not a valid user id",
			token: signed(jwt.SigningMethodHS256, testSecret, "", func(c jwt.MapClaims) { c["sub"] = "alice" }),
		},
		{
			name: "missing sub", verifier: "secret", wantReason: "subject is not a valid user id",
			token: signed(jwt.SigningMethodHS256, testSecret, "", func(c jwt.MapClaims) { delete(c, "sub") }),
		},
		{
			name: "HS256 signed with the RSA public key against JWKS", verifier: "jwks", wantReason: "token signature is invalid", wantCause: jwt.ErrTokenSignatureInvalid,
			token: signed(jwt.SigningMethodHS256, rsaPublicPEM, "rsa-1", nil),
		},
		{
			name: "HS256 signed with the RSA public key against both", verifier: "both", wantReason: "token signature is invalid", wantCause: jwt.ErrTokenSignatureInvalid,
			token: signed(jwt.SigningMethodHS256, rsaPublicPEM, "rsa-1", nil),
		},
		{
			name: "HS256 against JWKS only", verifier: "jwks", wantReason: "token signature is invalid", wantCause: jwt.ErrTokenSignatureInvalid,
			token: signed(jwt.SigningMethodHS256, testSecret, "", nil),
		},
		{
			name: "RS256 with only the secret configured", verifier: "secret", wantReason: "token signature is invalid", wantCause: jwt.ErrTokenSignatureInvalid,
			token: signed(jwt.SigningMethodRS256, rsaKey, "rsa-1", nil),
		},
		{
			name: "HS384 is not accepted", verifier: "both", wantReason: "token signature is invalid", wantCause: jwt.ErrTokenSignatureInvalid,
			token: signed(jwt.SigningMethodHS384, testSecret, "", nil),
		},
		{
			name: "PS256 is not accepted", verifier: "jwks", wantReason: "token signature is invalid", wantCause: jwt.ErrTokenSignatureInvalid,
			token: signed(jwt.SigningMethodPS256, rsaKey, "rsa-noalg", nil),
		},
		{
			name: "unknown kid", verifier: "jwks", wantReason: "signing key is unknown", wantCause: errKeyUnknown,
			token: signed(jwt.SigningMethodRS256, rsaKey, "nope", nil),
		},
		{
			name: "RS256 naming an EC key without alg", verifier: "jwks", wantReason: "signing key is unknown", wantCause: errKeyUnknown,
			token: signed(jwt.SigningMethodRS256, rsaKey, "ec-noalg", nil),
		},
		{
			name: "ES256 naming an RSA key without alg", verifier: "jwks", wantReason: "signing key is unknown", wantCause: errKeyUnknown,
			token: signed(jwt.SigningMethodES256, ecKey, "rsa-noalg", nil),
		},
		{
			name: "ES256 naming an RS256 key", verifier: "jwks", wantReason: "signing key is unknown", wantCause: errKeyUnknown,
			token: signed(jwt.SigningMethodES256, ecKey, "rsa-1", nil),
		},
		{
			name: "garbage", verifier: "both", wantReason: "token is malformed", wantCause: jwt.ErrTokenMalformed,
			token: func(*testing.T) string { return "garbage" },
		},
		{
			name: "three garbage segments", verifier: "both", wantReason: "token is malformed", wantCause: jwt.ErrTokenMalformed,
			token: func(*testing.T) string { return "not.a.token" },
		},
		{
			name: "empty", verifier: "both", wantReason: "token is malformed", wantCause: jwt.ErrTokenMalformed,
			token: func(*testing.T) string { return "" },
		},
		{
			name: "too large", verifier: "secret", wantReason: "token is too large",
			token: signed(jwt.SigningMethodHS256, testSecret, "", func(c jwt.MapClaims) {
				c["user_metadata"] = map[string]any{"bio": strings.Repeat("a", maxTokenLen)}
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			token := tt.token(t)
			id, err := verifiers[tt.verifier].Verify(t.Context(), token)
			if tt.wantReason != "" {
				if err == nil {
					t.Fatalf("Verify succeeded, want %q", tt.wantReason)
				}
				if !errors.Is(err, ErrInvalidToken) {
					t.Errorf("error %v does not wrap ErrInvalidToken", err)
				}
				if want := "invalid token: " + tt.wantReason; err.Error() != want {
					t.Errorf("error = %q, want %q", err.Error(), want)
				}
				if tt.wantCause != nil && !errors.Is(err, tt.wantCause) {
					t.Errorf("error %v does not wrap %v", err, tt.wantCause)
				}
				if id != nil {
					t.Errorf("identity = %+v, want nil", id)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if id.UserID != user {
				t.Errorf("UserID = %s, want %s", id.UserID, user)
			}
			if id.Email != "alice@example.com" || id.Role != "authenticated" {
				t.Errorf("Email, Role = %q, %q", id.Email, id.Role)
			}
			if id.Admin != tt.admin {
				t.Errorf("Admin = %v, want %v", id.Admin, tt.admin)
			}
			var exp struct {
				Exp int64 `json:"exp"`
			}
			if err := json.Unmarshal(id.Claims, &exp); err != nil {
				t.Fatalf("Claims are not JSON: %v", err)
			}
			if !id.ExpiresAt.Equal(time.Unix(exp.Exp, 0)) {
				t.Errorf("ExpiresAt = %s, want %s", id.ExpiresAt, time.Unix(exp.Exp, 0))
			}
			if want := payloadOf(t, token); !bytes.Equal(id.Claims, want) {
				t.Errorf("Claims = %s, want %s", id.Claims, want)
			}
		})
	}
}

// TestVerifyClaimsExactBytes checks that Claims is the payload exactly as
// signed, not a re-encoding, and that a payload PostgreSQL could not store as
// text is refused.
func TestVerifyClaimsExactBytes(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, Config{Secret: testSecret})
	user := uuid.New()
	exp := time.Now().Add(time.Hour).Unix()

	signRaw := func(t *testing.T, payload []byte) string {
		t.Helper()
		enc := base64.RawURLEncoding
		unsigned := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(payload)
		sig, err := jwt.SigningMethodHS256.Sign(unsigned, testSecret)
		if err != nil {
			t.Fatal(err)
		}
		return unsigned + "." + enc.EncodeToString(sig)
	}

	tests := []struct {
		name    string
		payload string
		wantErr bool
	}{
		{
			name:    "unusual spacing, order and escapes",
			payload: `{ "exp" : ` + strconv.FormatInt(exp, 10) + `, "zz":"\u00e9t\u00e9 ☀", "sub": "` + user.String() + `",` + "\n" + `"aud":"authenticated", "n": 1.50 }`,
		},
		{
			name:    "invalid UTF-8",
			payload: `{"exp":` + strconv.FormatInt(exp, 10) + `,"sub":"` + user.String() + `","aud":"authenticated","x":"` + "\xff\xfe" + `"}`,
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, err := v.Verify(t.Context(), signRaw(t, []byte(tt.payload)))
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("Verify error = %v, want ErrInvalidToken", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if string(id.Claims) != tt.payload {
				t.Errorf("Claims = %s, want %s", id.Claims, tt.payload)
			}
		})
	}
}

func TestVerifyIssuer(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, Config{Secret: testSecret, Issuer: "https://ref.supabase.co/auth/v1"})
	user := uuid.New()
	tests := []struct {
		name    string
		iss     any
		wantErr error
	}{
		{name: "matching", iss: "https://ref.supabase.co/auth/v1"},
		{name: "other", iss: "https://evil.supabase.co/auth/v1", wantErr: jwt.ErrTokenInvalidIssuer},
		{name: "missing", iss: nil, wantErr: jwt.ErrTokenRequiredClaimMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok := authtest.Sign(t, jwt.SigningMethodHS256, testSecret, "", claimsFor(user, func(c jwt.MapClaims) {
				if tt.iss == nil {
					delete(c, "iss")
				} else {
					c["iss"] = tt.iss
				}
			}))
			_, err := v.Verify(t.Context(), tok)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func TestVerifyCustomAudienceAndLeeway(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, Config{Secret: testSecret, Audience: "narrate", Leeway: 2 * time.Minute})
	user := uuid.New()
	tests := []struct {
		name    string
		mod     func(jwt.MapClaims)
		wantErr error
	}{
		{name: "custom audience", mod: func(c jwt.MapClaims) { c["aud"] = "narrate" }},
		{name: "default audience refused", mod: nil, wantErr: jwt.ErrTokenInvalidAudience},
		{name: "expired inside the wider leeway", mod: func(c jwt.MapClaims) {
			c["aud"] = "narrate"
			c["exp"] = time.Now().Add(-90 * time.Second).Unix()
		}},
		{name: "expired beyond it", mod: func(c jwt.MapClaims) {
			c["aud"] = "narrate"
			c["exp"] = time.Now().Add(-3 * time.Minute).Unix()
		}, wantErr: jwt.ErrTokenExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := v.Verify(t.Context(), authtest.Sign(t, jwt.SigningMethodHS256, testSecret, "", claimsFor(user, tt.mod)))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestVerifyRemembersTokens checks that a token verified once is served
// from memory (the same identity) until it expires or is a few minutes
// old, and then checked again: expired, it is refused.
func TestVerifyRemembersTokens(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, Config{Secret: testSecret, Leeway: time.Second})
	start := time.Now()
	clock := start
	v.now = func() time.Time { return clock }
	token := authtest.Sign(t, jwt.SigningMethodHS256, testSecret, "", claimsFor(uuid.New(), func(c jwt.MapClaims) {
		c["exp"] = start.Add(time.Hour).Unix()
	}))

	first, err := v.Verify(t.Context(), token)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := v.Verify(t.Context(), token); err != nil || again != first {
		t.Fatalf("second Verify = %p, %v; want the remembered %p", again, err, first)
	}
	// Past the cache's lifetime, the token is checked again: a new identity.
	clock = start.Add(verifiedTTL + time.Second)
	later, err := v.Verify(t.Context(), token)
	if err != nil || later == first {
		t.Fatalf("Verify after %s = %p, %v; want a fresh identity", verifiedTTL, later, err)
	}
	// Expired while remembered: refused, like any expired token.
	clock = start.Add(verifiedTTL + 2*time.Second)
	if _, err := v.Verify(t.Context(), token); err != nil {
		t.Fatal(err)
	}
	clock = start.Add(time.Hour + 2*time.Second)
	if _, err := v.Verify(t.Context(), token); !errors.Is(err, jwt.ErrTokenExpired) {
		t.Fatalf("Verify of an expired remembered token: %v, want expired", err)
	}
	// A refused token is not remembered as valid: another one, tampered
	// with, fails every time.
	forged := token[:len(token)-2] + "xx"
	for range 2 {
		if _, err := v.Verify(t.Context(), forged); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("forged token: %v", err)
		}
	}
}

// TestVerifierRefreshesOnUnknownKID rotates a new key into the JWKS and
// checks that the first token signed with it triggers one refresh, while a
// second unknown kid right after is refused without another fetch.
func TestVerifierRefreshesOnUnknownKID(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t)
	srv.add(t, &rsaKey.PublicKey, "rsa-1", jwkset.AlgRS256)
	v := newVerifier(t, Config{JWKSURL: srv.URL, HTTPClient: srv.Client()})
	if got := srv.fetchCount(); got != 1 {
		t.Fatalf("fetches after NewVerifier = %d, want 1", got)
	}
	user := uuid.New()

	srv.add(t, &ecKey.PublicKey, "ec-rotated", jwkset.AlgES256)
	if _, err := v.Verify(t.Context(), authtest.Sign(t, jwt.SigningMethodES256, ecKey, "ec-rotated", claimsFor(user, nil))); err != nil {
		t.Fatalf("Verify with rotated key: %v", err)
	}
	if got := srv.fetchCount(); got != 2 {
		t.Fatalf("fetches after rotated kid = %d, want 2", got)
	}

	srv.add(t, &otherRSAKey.PublicKey, "rsa-rotated", jwkset.AlgRS256)
	_, err := v.Verify(t.Context(), authtest.Sign(t, jwt.SigningMethodRS256, otherRSAKey, "rsa-rotated", claimsFor(user, nil)))
	if !errors.Is(err, errKeyUnknown) || !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("Verify with a second new kid = %v, want unknown key (rate limited)", err)
	}
	if got := srv.fetchCount(); got != 2 {
		t.Fatalf("fetches after rate-limited kid = %d, want 2", got)
	}

	// Known keys keep working without any fetch.
	if _, err := v.Verify(t.Context(), authtest.Sign(t, jwt.SigningMethodRS256, rsaKey, "rsa-1", claimsFor(user, nil))); err != nil {
		t.Fatalf("Verify with known key: %v", err)
	}
	if got := srv.fetchCount(); got != 2 {
		t.Fatalf("fetches after known kid = %d, want 2", got)
	}
}

// TestVerifierJWKSUnavailableAtStart checks that a JWKS outage at boot is
// logged rather than fatal, and that keys are picked up once it recovers.
func TestVerifierJWKSUnavailableAtStart(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t)
	srv.add(t, &rsaKey.PublicKey, "rsa-1", jwkset.AlgRS256)
	srv.mu.Lock()
	srv.fail = true
	srv.mu.Unlock()

	var logs dbtest.Buffer
	v := newVerifier(t, Config{
		JWKSURL:    srv.URL,
		HTTPClient: srv.Client(),
		Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if !strings.Contains(logs.String(), "refresh JWKS") {
		t.Errorf("logs = %q, want a refresh failure", logs.String())
	}

	srv.mu.Lock()
	srv.fail = false
	srv.mu.Unlock()
	if _, err := v.Verify(t.Context(), authtest.Sign(t, jwt.SigningMethodRS256, rsaKey, "rsa-1", claimsFor(uuid.New(), nil))); err != nil {
		t.Fatalf("Verify after recovery: %v", err)
	}
}

// TestVerifyCancelledContext checks that a lookup cut short by the caller is
// reported as the caller's cancellation, not as a bad token.
func TestVerifyCancelledContext(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t)
	srv.add(t, &rsaKey.PublicKey, "rsa-1", jwkset.AlgRS256)
	v := newVerifier(t, Config{JWKSURL: srv.URL, HTTPClient: srv.Client()})

	_, err := v.Verify(cancelledContext(), authtest.Sign(t, jwt.SigningMethodRS256, rsaKey, "unknown", claimsFor(uuid.New(), nil)))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Verify error = %v, want context.Canceled", err)
	}
	if errors.Is(err, ErrInvalidToken) {
		t.Errorf("Verify error %v wraps ErrInvalidToken", err)
	}
}

func TestNewVerifierConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "nothing configured", cfg: Config{}},
		{name: "empty secret", cfg: Config{Secret: []byte{}}},
		{name: "negative leeway", cfg: Config{Secret: testSecret, Leeway: -time.Second}},
		{name: "relative JWKS URL", cfg: Config{JWKSURL: "/jwks.json"}},
		{name: "non-http JWKS URL", cfg: Config{JWKSURL: "ftp://example.com/jwks.json"}},
		{name: "unparsable JWKS URL", cfg: Config{JWKSURL: "http://[::1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := NewVerifier(t.Context(), tt.cfg)
			if err == nil {
				t.Fatalf("NewVerifier succeeded: %+v", v)
			}
		})
	}
}

// TestVerifierSecretIsCopied checks that changing the caller's slice after
// NewVerifier does not change the key.
func TestVerifierSecretIsCopied(t *testing.T) {
	t.Parallel()
	secret := append([]byte(nil), testSecret...)
	v := newVerifier(t, Config{Secret: secret})
	secret[0] ^= 0xff
	if _, err := v.Verify(t.Context(), authtest.Sign(t, jwt.SigningMethodHS256, testSecret, "", claimsFor(uuid.New(), nil))); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}
