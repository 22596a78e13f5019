package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// DevIssuer is the iss of tokens made by [Mint].
const DevIssuer = "narrate-dev"

// devSecretFile is the name of the development secret inside its directory.
const devSecretFile = "jwt-secret"

// devSecretBytes is the amount of randomness in a new development secret.
const devSecretBytes = 32

// Mint signs a development HS256 token shaped like a Supabase access token:
// sub, email, role "authenticated", aud, iat, exp, iss [DevIssuer],
// app_metadata {"provider":"email","providers":["email"]} (plus
// "role":"admin" when admin), user_metadata {}, a random session_id and
// is_anonymous false. An empty audience means [DefaultAudience].
func Mint(secret []byte, userID uuid.UUID, email string, admin bool, audience string, ttl time.Duration) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("mint token: empty secret")
	}
	if userID == uuid.Nil {
		return "", errors.New("mint token: nil user id")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("mint token: ttl %s is not positive", ttl)
	}
	if audience == "" {
		audience = DefaultAudience
	}
	appMetadata := map[string]any{
		"provider":  "email",
		"providers": []string{"email"},
	}
	if admin {
		appMetadata["role"] = "admin"
	}
	now := time.Now()
	claims := jwt.MapClaims{
		"sub":           userID.String(),
		"email":         email,
		"role":          "authenticated",
		"aud":           audience,
		"iat":           now.Unix(),
		"exp":           now.Add(ttl).Unix(),
		"iss":           DevIssuer,
		"app_metadata":  appMetadata,
		"user_metadata": map[string]any{},
		"session_id":    uuid.NewString(),
		"is_anonymous":  false,
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return signed, nil
}

// DevSecret returns the development HS256 secret kept in dir/jwt-secret,
// creating dir (0700) and the file (0600, 32 random bytes hex-encoded) on
// first use.
//
// The secret is the file's hex text itself, used as raw bytes, the same way
// a JWT_SECRET value is used, so the file's content can be passed as
// JWT_SECRET to another process and verify the same tokens. Concurrent first
// calls, even from different processes, agree on one secret.
func DevSecret(dir string) ([]byte, error) {
	path := filepath.Join(dir, devSecretFile)
	secret, err := readDevSecret(path)
	if err == nil {
		return secret, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dev secret: %w", err)
	}
	raw := make([]byte, devSecretBytes)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("dev secret: %w", err)
	}
	encoded := []byte(hex.EncodeToString(raw))
	if err := createExclusive(dir, path, append(encoded, '\n')); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another caller created it first; use theirs.
			return readDevSecret(path)
		}
		return nil, fmt.Errorf("dev secret: %w", err)
	}
	return encoded, nil
}

// readDevSecret reads and checks an existing secret file. A file that does
// not hold a full-length hex secret is an error rather than something to
// overwrite, so a damaged file never silently invalidates issued tokens.
func readDevSecret(path string) ([]byte, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dev secret: %w", err)
	}
	text := strings.TrimSpace(string(content))
	decoded, err := hex.DecodeString(text)
	if err != nil || len(decoded) < devSecretBytes {
		return nil, fmt.Errorf("dev secret: %s does not hold a hex secret of at least %d bytes", path, devSecretBytes)
	}
	return []byte(text), nil
}

// createExclusive writes data to a temporary file and links it to path, so
// path appears complete and with mode 0600 or not at all, and fails with
// fs.ErrExist when path already exists.
func createExclusive(dir, path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(dir, "."+devSecretFile+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if rmErr := os.Remove(tmp.Name()); rmErr != nil && err == nil {
			err = rmErr
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Link(tmp.Name(), path)
}
