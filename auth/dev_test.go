package auth

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestMintRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		admin    bool
		audience string
		wantAud  string
		ttl      time.Duration
	}{
		{name: "user", admin: false, audience: "", wantAud: "authenticated", ttl: 24 * time.Hour},
		{name: "admin", admin: true, audience: "authenticated", wantAud: "authenticated", ttl: time.Hour},
		{name: "custom audience", admin: false, audience: "narrate", wantAud: "narrate", ttl: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			user := uuid.New()
			token, err := Mint(testSecret, user, "bob@example.com", tt.admin, tt.audience, tt.ttl)
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			v := newVerifier(t, Config{Secret: testSecret, Audience: tt.wantAud, Issuer: DevIssuer})
			id, err := v.Verify(t.Context(), token)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if id.UserID != user || id.Email != "bob@example.com" || id.Role != "authenticated" || id.Admin != tt.admin {
				t.Errorf("identity = %+v", id)
			}
			if !bytes.Equal(id.Claims, payloadOf(t, token)) {
				t.Errorf("Claims = %s, want the signed payload %s", id.Claims, payloadOf(t, token))
			}

			var c struct {
				Sub         string          `json:"sub"`
				Email       string          `json:"email"`
				Role        string          `json:"role"`
				Aud         json.RawMessage `json:"aud"`
				Iat         int64           `json:"iat"`
				Exp         int64           `json:"exp"`
				Iss         string          `json:"iss"`
				AppMetadata struct {
					Provider  string   `json:"provider"`
					Providers []string `json:"providers"`
					Role      *string  `json:"role"`
				} `json:"app_metadata"`
				UserMetadata map[string]any `json:"user_metadata"`
				SessionID    string         `json:"session_id"`
				IsAnonymous  *bool          `json:"is_anonymous"`
			}
			if err := json.Unmarshal(id.Claims, &c); err != nil {
				t.Fatalf("Claims: %v", err)
			}
			if c.Sub != user.String() || c.Email != "bob@example.com" || c.Role != "authenticated" || c.Iss != DevIssuer {
				t.Errorf("claims = %+v", c)
			}
			// Supabase sends aud as a plain string, not an array.
			if want, _ := json.Marshal(tt.wantAud); string(c.Aud) != string(want) {
				t.Errorf("aud = %s, want %s", c.Aud, want)
			}
			if got := time.Duration(c.Exp-c.Iat) * time.Second; got != tt.ttl {
				t.Errorf("exp - iat = %s, want %s", got, tt.ttl)
			}
			if !id.ExpiresAt.Equal(time.Unix(c.Exp, 0)) {
				t.Errorf("ExpiresAt = %s, want %s", id.ExpiresAt, time.Unix(c.Exp, 0))
			}
			if c.AppMetadata.Provider != "email" || len(c.AppMetadata.Providers) != 1 || c.AppMetadata.Providers[0] != "email" {
				t.Errorf("app_metadata = %+v", c.AppMetadata)
			}
			switch {
			case tt.admin && (c.AppMetadata.Role == nil || *c.AppMetadata.Role != "admin"):
				t.Errorf("app_metadata.role = %v, want admin", c.AppMetadata.Role)
			case !tt.admin && c.AppMetadata.Role != nil:
				t.Errorf("app_metadata.role = %q, want absent", *c.AppMetadata.Role)
			}
			if c.UserMetadata == nil || len(c.UserMetadata) != 0 {
				t.Errorf("user_metadata = %v, want {}", c.UserMetadata)
			}
			if _, err := uuid.Parse(c.SessionID); err != nil {
				t.Errorf("session_id %q: %v", c.SessionID, err)
			}
			if c.IsAnonymous == nil || *c.IsAnonymous {
				t.Errorf("is_anonymous = %v, want false", c.IsAnonymous)
			}
		})
	}
}

func TestMintDistinctSessions(t *testing.T) {
	t.Parallel()
	user := uuid.New()
	a, err := Mint(testSecret, user, "a@example.com", false, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Mint(testSecret, user, "a@example.com", false, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var ca, cb struct {
		SessionID string `json:"session_id"`
	}
	if err := json.Unmarshal(payloadOf(t, a), &ca); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(payloadOf(t, b), &cb); err != nil {
		t.Fatal(err)
	}
	if ca.SessionID == cb.SessionID {
		t.Errorf("two tokens share session_id %s", ca.SessionID)
	}
}

func TestMintErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		secret []byte
		user   uuid.UUID
		ttl    time.Duration
	}{
		{name: "no secret", secret: nil, user: uuid.New(), ttl: time.Hour},
		{name: "nil user", secret: testSecret, user: uuid.Nil, ttl: time.Hour},
		{name: "zero ttl", secret: testSecret, user: uuid.New(), ttl: 0},
		{name: "negative ttl", secret: testSecret, user: uuid.New(), ttl: -time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tok, err := Mint(tt.secret, tt.user, "x@example.com", false, "", tt.ttl); err == nil {
				t.Fatalf("Mint succeeded: %s", tok)
			}
		})
	}
}

func TestDevSecret(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "nested", "data")

	first, err := DevSecret(dir)
	if err != nil {
		t.Fatalf("DevSecret: %v", err)
	}
	if raw, err := hex.DecodeString(string(first)); err != nil || len(raw) != 32 {
		t.Fatalf("secret %q is not 32 hex-encoded bytes (%v)", first, err)
	}
	path := filepath.Join(dir, "jwt-secret")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("file mode = %o, want 600", mode)
	}
	if info, err := os.Stat(dir); err != nil {
		t.Error(err)
	} else if mode := info.Mode().Perm(); mode != 0o755 {
		t.Errorf("dir mode = %o, want 755", mode)
	}

	second, err := DevSecret(dir)
	if err != nil {
		t.Fatalf("DevSecret again: %v", err)
	}
	if !bytes.Equal(first, second) {
		t.Errorf("secret changed: %q then %q", first, second)
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(content), first) {
		t.Errorf("file holds %q, DevSecret returned %q", content, first)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("dir holds %d entries, want only jwt-secret", len(entries))
	}

	other, err := DevSecret(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first, other) {
		t.Error("two directories got the same secret")
	}

	// The secret signs and verifies development tokens.
	token, err := Mint(first, uuid.New(), "dev@example.com", true, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newVerifier(t, Config{Secret: second}).Verify(t.Context(), token); err != nil {
		t.Fatalf("Verify with persisted secret: %v", err)
	}
}

func TestDevSecretConcurrentFirstUse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const n = 8
	secrets := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { secrets[i], errs[i] = DevSecret(dir) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("DevSecret %d: %v", i, errs[i])
		}
		if !bytes.Equal(secrets[i], secrets[0]) {
			t.Errorf("caller %d got %q, caller 0 got %q", i, secrets[i], secrets[0])
		}
	}
}

func TestDevSecretDamagedFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
	}{
		{name: "empty", content: ""},
		{name: "not hex", content: "this is not hex at all, not even close........................"},
		{name: "too short", content: "abcd\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "jwt-secret")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if s, err := DevSecret(dir); err == nil {
				t.Fatalf("DevSecret succeeded with %q", s)
			}
			// The damaged file is left for a human to look at.
			if got, _ := os.ReadFile(path); string(got) != tt.content {
				t.Errorf("file rewritten to %q", got)
			}
		})
	}
}
