package auth

import (
	"cmp"
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

	"github.com/narrate/narrate/role"
)

// DevIssuer is the iss of tokens made by [Mint].
const DevIssuer = "narrate-dev"

// DevSecretFile is the name of the development secret inside its directory.
const DevSecretFile = "jwt-secret"

// secretBytes is the amount of randomness in a new secret.
const secretBytes = 32

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
		"role":          role.Authenticated,
		"aud":           cmp.Or(audience, DefaultAudience),
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

// DevSecret returns the development HS256 secret kept in dir/jwt-secret
// (see [SecretFile]).
//
// The secret is the file's hex text itself, used as raw bytes, the same way
// a JWT_SECRET value is used, so the file's content can be passed as
// JWT_SECRET to another process and verify the same tokens.
func DevSecret(dir string) ([]byte, error) {
	return SecretFile(filepath.Join(dir, DevSecretFile))
}

// SecretFile returns the secret kept in path: the file's text, 32 random
// bytes hex-encoded, created (mode 0600) on first use together with its
// directory. The directory gets mode 0755, not 0700: it is DATA_DIR, which
// PostgreSQL's own user must be able to cross; the file itself stays
// private. Concurrent first calls, even from different processes, agree on
// one secret.
func SecretFile(path string) ([]byte, error) {
	secret, err := readSecret(path)
	if err == nil {
		return secret, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}

	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("secret %s: %w", path, err)
	}
	raw := make([]byte, secretBytes)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("secret %s: %w", path, err)
	}
	encoded := []byte(hex.EncodeToString(raw))
	if err := createExclusive(dir, path, append(encoded, '\n')); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another caller created it first; use theirs.
			return readSecret(path)
		}
		return nil, fmt.Errorf("secret %s: %w", path, err)
	}
	return encoded, nil
}

// readSecret reads and checks an existing secret file. A file that does
// not hold a full-length hex secret is an error rather than something to
// overwrite, so a damaged file never silently invalidates issued tokens or
// links.
func readSecret(path string) ([]byte, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	text := strings.TrimSpace(string(content))
	decoded, err := hex.DecodeString(text)
	if err != nil || len(decoded) < secretBytes {
		return nil, fmt.Errorf("secret: %s does not hold a hex secret of at least %d bytes", path, secretBytes)
	}
	return []byte(text), nil
}

// createExclusive writes data to a temporary file and links it to path, so
// path appears complete and with mode 0600 or not at all, and fails with
// fs.ErrExist when path already exists.
func createExclusive(dir, path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if rmErr := os.Remove(tmp.Name()); rmErr != nil && err == nil {
			err = rmErr
		}
	}()
	// CreateTemp's 0600 is subject to the umask; Chmod is not.
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return err
	}
	return os.Link(tmp.Name(), path)
}
