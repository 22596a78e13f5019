package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"

	"github.com/MicahParks/jwkset"
	"go.uber.org/goleak"
)

// Keys shared by every test; RSA generation is too slow to repeat per test.
var (
	rsaKey      *rsa.PrivateKey
	otherRSAKey *rsa.PrivateKey
	ecKey       *ecdsa.PrivateKey
	otherECKey  *ecdsa.PrivateKey
)

// TestMain generates the keys and checks, after all tests, that no JWKS
// refresh goroutine outlives the context that started it.
func TestMain(m *testing.M) {
	var err error
	rsaKey, err = rsa.GenerateKey(rand.Reader, 2048)
	if err == nil {
		otherRSAKey, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err == nil {
		ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err == nil {
		otherECKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m)
}

// jwksServer serves a mutable JWK set and counts how often it is fetched.
type jwksServer struct {
	*httptest.Server

	mu      sync.Mutex
	keys    []jwkset.JWK
	fetches int
	fail    bool
}

func newJWKSServer(t *testing.T) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.fetches++
	fail := s.fail
	store := jwkset.NewMemoryStorage()
	for _, k := range s.keys {
		if err := store.KeyWrite(r.Context(), k); err != nil {
			s.mu.Unlock()
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	s.mu.Unlock()
	if fail {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	body, err := store.JSONPublic(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// add publishes the public half of key under kid; alg may be empty, as the
// JWK RFC allows.
func (s *jwksServer) add(t *testing.T, key any, kid string, alg jwkset.ALG) {
	t.Helper()
	jwk, err := jwkset.NewJWKFromKey(key, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: alg, USE: jwkset.UseSig},
	})
	if err != nil {
		t.Fatalf("build JWK %s: %v", kid, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, jwk)
}

func (s *jwksServer) fetchCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

// newVerifier builds a Verifier whose background work ends with the test.
func newVerifier(t *testing.T, cfg Config) *Verifier {
	t.Helper()
	v, err := NewVerifier(t.Context(), cfg)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// cancelledContext returns a context that is already done.
func cancelledContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
