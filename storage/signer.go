package storage

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Errors returned by Signer.Check.
var (
	// ErrExpired means the link's signature is valid but its expiry has
	// passed.
	ErrExpired = errors.New("link expired")
	// ErrBadSignature means the link is malformed or was not signed by
	// this Signer for this key and expiry.
	ErrBadSignature = errors.New("bad link signature")
)

// AudioPath is the URL path prefix under which Handler serves objects.
const AudioPath = "/audio/"

// Signer makes and checks short-lived links: HMAC-SHA256 over key and expiry.
type Signer struct {
	secret  []byte
	baseURL string
}

// NewSigner returns a Signer making links under baseURL, such as
// "http://localhost:8080". It panics when secret is empty, since every link
// would then be forgeable.
func NewSigner(secret []byte, baseURL string) *Signer {
	if len(secret) == 0 {
		panic("storage: NewSigner needs a non-empty secret")
	}
	return &Signer{secret: bytes.Clone(secret), baseURL: strings.TrimRight(baseURL, "/")}
}

// URL returns an absolute link to key valid for at least ttl:
// baseURL + "/audio/" + key + "?exp=<unix seconds>&sig=<base64url>".
//
// The expiry is rounded up to a step of a quarter of ttl (at least a
// minute), so every read of the same key within a step, on any server
// sharing the secret, gives the same link: an <audio src> does not change
// under the player when a query is read again, and the browser reuses the
// file it cached instead of downloading it again. A link then stays valid
// for between ttl and 1.25 ttl.
func (s *Signer) URL(key string, ttl time.Duration) string {
	return s.urlAt(key, ttl, time.Now())
}

func (s *Signer) urlAt(key string, ttl time.Duration, now time.Time) string {
	step := int64(max(ttl/4, time.Minute) / time.Second)
	exp := now.Add(ttl).Unix()
	exp = (exp + step - 1) / step * step
	q := url.Values{"exp": {strconv.FormatInt(exp, 10)}}
	q.Set("sig", s.sign(key, q.Get("exp")))
	return s.baseURL + AudioPath + escapeKey(key) + "?" + q.Encode()
}

// Check verifies the exp and sig query values of a link to key at time now.
// It returns ErrBadSignature for a malformed or forged link and ErrExpired
// for a genuine link past its expiry; the signature is checked first so
// that a forged expiry is reported as forged.
func (s *Signer) Check(key string, exp, sig string, now time.Time) error {
	expUnix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return ErrBadSignature
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return ErrBadSignature
	}
	if !hmac.Equal(got, s.mac(key, exp)) {
		return ErrBadSignature
	}
	if now.Unix() >= expUnix {
		return ErrExpired
	}
	return nil
}

func (s *Signer) sign(key, exp string) string {
	return base64.RawURLEncoding.EncodeToString(s.mac(key, exp))
}

// mac authenticates key and expiry. The NUL separators keep different
// (key, exp) pairs from producing the same message, and the prefix keeps
// these MACs from being valid for any other use of the same secret.
func (s *Signer) mac(key, exp string) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte("narrate-audio-link\x00"))
	m.Write([]byte(key))
	m.Write([]byte{0})
	m.Write([]byte(exp))
	return m.Sum(nil)
}

// escapeKey escapes each segment of key for use in a URL path.
func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return strings.Join(segs, "/")
}
