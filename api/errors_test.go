package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/narrate/narrate/auth"
	"github.com/narrate/narrate/auth/authtest"
	"github.com/narrate/narrate/graph"
)

func TestMalformedIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.narrator("alice@example.com")
	root := e.NewUser("root@example.com", true)

	tests := []struct {
		name, token, query string
	}{
		{"story", "", `{ story(id: "abc") { id } }`},
		{"generation", alice.Token, `{ generation(id: "abc") { id } }`},
		{"generation with a number", alice.Token, `{ generation(id: 12) { id } }`},
		{"generations storyId", alice.Token, `{ viewer { generations(storyId: "abc") { nodes { id } } } }`},
		{"startGeneration", alice.Token, `mutation { startGeneration(storyId: "abc") { id } }`},
		{"cancelGeneration", alice.Token, `mutation { cancelGeneration(id: "00000000-0000-0000-0000-00000000000") { id } }`},
		{"updateStory", root.Token, `mutation { updateStory(id: "abc", expectedVersion: 1, input: {}) { id } }`},
		{"deleteStory", root.Token, `mutation { deleteStory(id: "{` + uuid.NewString() + `}") }`},
	}
	for _, tt := range tests {
		e.wantRefusal(t, tt.name, tt.token, tt.query, nil, graph.CodeBadUserInput, response.WantNullData)
	}
}

func TestParseAndValidationErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name, query string
		vars        map[string]any
		code        string
	}{
		{"unterminated", `{ stories { nodes { id }`, nil, "GRAPHQL_PARSE_FAILED"},
		{"garbage", `SELECT * FROM stories`, nil, "GRAPHQL_PARSE_FAILED"},
		{"unknown field", `{ nope }`, nil, "GRAPHQL_VALIDATION_FAILED"},
		{"missing selection", `{ stories }`, nil, "GRAPHQL_VALIDATION_FAILED"},
		{"unknown argument", `{ stories(last: 1) { nodes { id } } }`, nil, "GRAPHQL_VALIDATION_FAILED"},
		{"wrong argument type", `{ stories(first: "ten") { nodes { id } } }`, nil, "GRAPHQL_VALIDATION_FAILED"},
		{"unknown enum value", `{ viewer { generations(status: DONE) { nodes { id } } } }`, nil, "GRAPHQL_VALIDATION_FAILED"},
		{"missing required variable", `query($id: ID!) { generation(id: $id) { id } }`, nil, "GRAPHQL_VALIDATION_FAILED"},
		{"variable of the wrong type", `query($n: Int) { stories(first: $n) { nodes { id } } }`, map[string]any{"n": "x"}, "GRAPHQL_VALIDATION_FAILED"},
	}
	// As the GraphQL-over-HTTP spec has it: application/json clients get
	// 200 (older clients and proxies read any other status as a transport
	// failure), application/graphql-response+json clients get 400; neither
	// gets a data entry, since nothing ran.
	accepts := []struct {
		accept, contentType string
		status              int
	}{
		{"", "application/json", http.StatusOK},
		{"application/json", "application/json", http.StatusOK},
		{"application/graphql-response+json, application/json;q=0.9", "application/graphql-response+json", http.StatusBadRequest},
	}
	for _, tt := range tests {
		for _, a := range accepts {
			t.Run(tt.name+"/"+a.contentType, func(t *testing.T) {
				t.Parallel()
				e := e.on(t)
				r := e.postAccept(a.accept, "", tt.query, tt.vars)
				r.WantCode(t, tt.code)
				if r.Status != a.status {
					t.Errorf("HTTP status %d, want %d", r.Status, a.status)
				}
				if ct := r.Header.Get("Content-Type"); ct != a.contentType {
					t.Errorf("Content-Type %q, want %q", ct, a.contentType)
				}
				if bytes.Contains(r.Raw, []byte(`"data"`)) {
					t.Errorf("body %s has a data entry", r.Raw)
				}
			})
		}
	}
}

// TestInternalErrorsDoNotLeak breaks the database under the server (the
// anon role loses its grant on stories) and checks the client learns
// nothing about why.
func TestInternalErrorsDoNotLeak(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.story("A", "a")
	e.Exec(`REVOKE SELECT ON stories FROM anon`)

	r := e.Post("", `{ stories { nodes { id } } }`, nil)
	r.WantCode(t, graph.CodeInternal)
	if r.Errors[0].Message != "internal server error" {
		t.Errorf("message = %q, want a bare internal server error", r.Errors[0].Message)
	}
	body := strings.ToLower(string(r.Raw))
	for _, leak := range []string{"permission", "denied", "sqlstate", "42501", "select", "table", "goroutine"} {
		if strings.Contains(body, leak) {
			t.Errorf("response leaks %q: %s", leak, r.Raw)
		}
	}
	if len(r.Errors[0].Extensions) != 1 {
		t.Errorf("extensions = %v, want only the code", r.Errors[0].Extensions)
	}
}

func TestQueryLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.NewUser("alice@example.com", false)
	e.story("A", "a")

	nest := func(levels int, leaf string) string {
		q := leaf
		for range levels {
			q = `myGenerations(first: 1) { nodes { story { ` + q + ` } } }`
		}
		return `{ stories(first: 1) { nodes { ` + q + ` } } }`
	}
	tests := []struct {
		name  string
		query string
		vars  map[string]any
		code  string // empty: the query runs
	}{
		// stories, nodes, then three fields a level, then the leaf.
		{"depth 12 runs", nest(3, "id"), nil, ""},
		{"depth 13 is too deep", nest(3, "myGenerations(first: 1) { nodes { id } }"), nil, graph.CodeQueryTooComplex},
		{"far too deep", nest(10, "id"), nil, graph.CodeQueryTooComplex},
		{"too deep through fragments", `
			fragment G on StoryGeneration { story { myGenerations(first: 1) { nodes { story { myGenerations(first: 1) { nodes { ...L } } } } } } }
			fragment L on StoryGeneration { logs(first: 1) { nodes { id } } }
			fragment S on Story { myGenerations(first: 1) { nodes { ...G } } }
			{ stories(first: 1) { nodes { ...S } } }`, nil, graph.CodeQueryTooComplex},
		{"within budget", `query($n: Int) { stories(first: $n) { nodes { myGenerations(first: $n) { nodes { id } } } } }`,
			map[string]any{"n": 50}, ""},
		{"over budget", `{ stories(first: 100) { nodes { myGenerations(first: 100) { nodes { logs(first: 100) { nodes { id } } } } } } }`,
			nil, graph.CodeQueryTooComplex},
		{"over budget through variables", `query($n: Int) { stories(first: $n) { nodes { myGenerations(first: $n) { nodes { logs(first: $n) { nodes { id } } } } } } }`,
			map[string]any{"n": 100}, graph.CodeQueryTooComplex},
		{"over budget through aliases", `{ ` + strings.Repeat(`s%d: stories(first: 100) { nodes { myGenerations(first: 100) { nodes { id } } } } `, 3) + `}`,
			nil, graph.CodeQueryTooComplex},
	}
	for _, tt := range tests {
		// Not parallel: each case counts the statements run in between.
		t.Run(tt.name, func(t *testing.T) {
			query := tt.query
			if strings.Contains(query, "%d") {
				query = fmt.Sprintf(query, 1, 2, 3)
			}
			e.on(t).wantLimit(t, alice.Token, query, tt.vars, tt.code)
		})
	}
}

func TestGetRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.NewUser("alice@example.com", false)
	story := e.story("The Fox", "the-fox")

	t.Run("query", func(t *testing.T) {
		e := e.on(t)
		var got struct{ Story struct{ Title string } }
		e.Get("", url.Values{
			"query":     {`query($id: ID!) { story(id: $id) { title } }`},
			"variables": {fmt.Sprintf(`{"id": %q}`, story)},
		}).Decode(t, &got)
		if got.Story.Title != "The Fox" {
			t.Errorf("story = %+v", got.Story)
		}
	})
	t.Run("query chosen from a document with a mutation", func(t *testing.T) {
		e := e.on(t)
		var got struct{ Viewer struct{ ID string } }
		e.Get(alice.Token, url.Values{
			"query":         {`query Q { viewer { id } } mutation M { updateProfile(input: {displayName: "Mallory"}) { userId } }`},
			"operationName": {"Q"},
		}).Decode(t, &got)
		if got.Viewer.ID != alice.ID.String() {
			t.Errorf("viewer = %+v", got.Viewer)
		}
	})

	mutations := []url.Values{
		{"query": {`mutation { updateProfile(input: {displayName: "Mallory"}) { userId } }`}},
		{"query": {`mutation M { updateProfile(input: {displayName: "Mallory"}) { userId } }`}, "operationName": {"M"}},
		{"query": {`query Q { viewer { id } } mutation M { updateProfile(input: {displayName: "Mallory"}) { userId } }`}, "operationName": {"M"}},
		{"query": {`  mutation{updateProfile(input:{displayName:"Mallory"}){userId}}`}},
	}
	for i, params := range mutations {
		t.Run(fmt.Sprintf("mutation %d", i), func(t *testing.T) {
			e := e.on(t)
			r := e.Get(alice.Token, params)
			if r.Status != http.StatusMethodNotAllowed {
				t.Errorf("HTTP status %d, want 405", r.Status)
			}
			if allow := r.Header.Get("Allow"); allow != http.MethodPost {
				t.Errorf("Allow = %q, want POST", allow)
			}
		})
	}

	t.Run("persisted mutation", func(t *testing.T) {
		e := e.on(t)
		// A mutation registered as an automatic persisted query and then
		// replayed by its hash alone, with no query text in the URL.
		const q = `mutation { updateProfile(input: {displayName: "Alice"}) { userId } }`
		sum := sha256.Sum256([]byte(q))
		ext := fmt.Sprintf(`{"persistedQuery":{"version":1,"sha256Hash":%q}}`, hex.EncodeToString(sum[:]))
		body, _ := json.Marshal(map[string]any{"query": q, "extensions": json.RawMessage(ext)})
		req, _ := http.NewRequest(http.MethodPost, e.URL+"/graphql", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+alice.Token)
		e.Send(req).Decode(t, &struct{}{})
		e.Exec(`UPDATE profiles SET display_name = 'Unchanged' WHERE user_id = $1`, alice.ID)

		r := e.Get(alice.Token, url.Values{"extensions": {ext}})
		if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != http.MethodPost {
			t.Errorf("HTTP status %d, Allow %q; want 405 and POST", r.Status, r.Header.Get("Allow"))
		}
	})

	if n := e.Count(`SELECT count(*) FROM profiles WHERE display_name = 'Mallory'`); n != 0 {
		t.Error("a GET mutation ran")
	}
	if n := e.Count(`SELECT count(*) FROM profiles WHERE display_name = 'Alice'`); n != 0 {
		t.Error("a persisted GET mutation ran")
	}
}

// claimsOf returns Supabase-shaped claims for u, changed by mod.
func claimsOf(u user, mod func(jwt.MapClaims)) jwt.MapClaims {
	return authtest.Claims(u.ID, u.Email, mod)
}

func TestTokenAttacks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.NewUser("alice@example.com", false)
	e.story("A", "a")

	wrongAud, err := auth.Mint(testSecret, alice.ID, alice.Email, false, "service", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherSecret, err := auth.Mint([]byte("another-secret-another-secret-12"), alice.ID, alice.Email, true, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	none := authtest.Sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claimsOf(alice, nil))
	parts := strings.Split(alice.Token, ".")
	tests := []struct {
		name, header string
	}{
		{"garbage", "Bearer garbage"},
		{"three garbage segments", "Bearer a.b.c"},
		{"expired", "Bearer " + authtest.Sign(t, jwt.SigningMethodHS256, testSecret, "", claimsOf(alice, func(c jwt.MapClaims) {
			c["iat"] = time.Now().Add(-2 * time.Hour).Unix()
			c["exp"] = time.Now().Add(-time.Hour).Unix()
		}))},
		{"no exp", "Bearer " + authtest.Sign(t, jwt.SigningMethodHS256, testSecret, "", claimsOf(alice, func(c jwt.MapClaims) { delete(c, "exp") }))},
		{"wrong signature", "Bearer " + otherSecret},
		{"tampered payload", "Bearer " + parts[0] + "." + strings.TrimRight(parts[1], "A") + "B." + parts[2]},
		{"alg none", "Bearer " + none},
		{"alg none without signature", "Bearer " + strings.TrimSuffix(none, ".")},
		{"wrong aud", "Bearer " + wrongAud},
		{"empty bearer", "Bearer "},
		{"bearer alone", "Bearer"},
		{"basic scheme", "Basic YWxpY2U6c2VjcmV0"},
		{"token without scheme", alice.Token},
		{"HS384", "Bearer " + authtest.Sign(t, jwt.SigningMethodHS384, testSecret, "", claimsOf(alice, nil))},
		{"sub not a uuid", "Bearer " + authtest.Sign(t, jwt.SigningMethodHS256, testSecret, "", claimsOf(alice, func(c jwt.MapClaims) { c["sub"] = "alice" }))},
	}
	for _, tt := range tests {
		// Not parallel: each case checks that no statement ran.
		t.Run(tt.name, func(t *testing.T) {
			e := e.on(t)
			before := e.Statements.Load()
			r := e.PostAuth(tt.header, `{ stories { nodes { id } } }`)
			if r.Status != http.StatusUnauthorized {
				t.Errorf("HTTP status %d, want 401", r.Status)
			}
			r.WantCode(t, graph.CodeUnauthenticated)
			r.WantNoData(t)
			if n := e.Statements.Load() - before; n != 0 {
				t.Errorf("%d statements ran for a rejected token", n)
			}
		})
	}
	t.Run("valid token", func(t *testing.T) {
		e := e.on(t)
		var got struct{ Viewer struct{ ID string } }
		e.PostAuth("bearer "+alice.Token, `{ viewer { id } }`).Decode(t, &got)
		if got.Viewer.ID != alice.ID.String() {
			t.Errorf("viewer = %+v", got.Viewer)
		}
	})
}

// rsaTestKey is generated once: RSA generation is slow.
var rsaTestKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// newJWKSVerifier serves key's public half as a JWK set and returns a
// verifier configured with that JWKS URL only.
func newJWKSVerifier(t *testing.T, key *rsa.PrivateKey, kid string) *auth.Verifier {
	t.Helper()
	jwk, err := jwkset.NewJWKFromKey(&key.PublicKey, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: jwkset.AlgRS256, USE: jwkset.UseSig},
	})
	if err != nil {
		t.Fatal(err)
	}
	store := jwkset.NewMemoryStorage()
	if err := store.KeyWrite(context.Background(), jwk); err != nil {
		t.Fatal(err)
	}
	body, err := store.JSONPublic(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	v, err := auth.NewVerifier(t.Context(), auth.Config{JWKSURL: srv.URL, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestJWKSOnlyServer(t *testing.T) {
	t.Parallel()
	key := rsaTestKey()
	e := newEnv(t, withVerifier(newJWKSVerifier(t, key, "rsa-1")))
	alice := e.NewUser("alice@example.com", false)

	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	publicPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("valid RS256", func(t *testing.T) {
		t.Parallel()
		e := e.on(t)
		var got struct{ Viewer struct{ ID, Email string } }
		e.Post(authtest.Sign(t, jwt.SigningMethodRS256, key, "rsa-1", claimsOf(alice, nil)), `{ viewer { id email } }`, nil).Decode(t, &got)
		if got.Viewer.ID != alice.ID.String() || got.Viewer.Email != alice.Email {
			t.Errorf("viewer = %+v, want alice", got.Viewer)
		}
	})
	rejected := []struct{ name, token string }{
		{"HS256 signed with the public key PEM", authtest.Sign(t, jwt.SigningMethodHS256, publicPEM, "rsa-1", claimsOf(alice, nil))},
		{"HS256 signed with the public key DER", authtest.Sign(t, jwt.SigningMethodHS256, der, "rsa-1", claimsOf(alice, nil))},
		{"HS256 with the test secret", alice.Token},
		{"RS256 by an unpublished key", authtest.Sign(t, jwt.SigningMethodRS256, otherKey, "rsa-1", claimsOf(alice, nil))},
		{"RS256 with an unknown kid", authtest.Sign(t, jwt.SigningMethodRS256, otherKey, "rsa-2", claimsOf(alice, nil))},
		{"RS256 with a wrong aud", authtest.Sign(t, jwt.SigningMethodRS256, key, "rsa-1", claimsOf(alice, func(c jwt.MapClaims) { c["aud"] = "anon" }))},
	}
	for _, tt := range rejected {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			r := e.Post(tt.token, `{ stories { nodes { id } } }`, nil)
			if r.Status != http.StatusUnauthorized {
				t.Errorf("HTTP status %d, want 401", r.Status)
			}
			r.WantCode(t, graph.CodeUnauthenticated)
		})
	}
}
