package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/narrate/narrate/app/apptest"
	"github.com/narrate/narrate/config"
	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/graph"
	"github.com/narrate/narrate/limit"
)

// introspectionQuery is the schema query GraphiQL sends when it opens
// (graphql-js getIntrospectionQuery with input value deprecation).
const introspectionQuery = `
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args(includeDeprecated: true) { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description
    args(includeDeprecated: true) { ...InputValue }
    type { ...TypeRef }
    isDeprecated deprecationReason
  }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name description type { ...TypeRef } defaultValue isDeprecated deprecationReason
}
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
}`

// withLimits changes the default limits.
func withLimits(mod func(l *limit.Settings)) apptest.Option {
	return apptest.WithConfig(func(c *config.Config) { mod(&c.Limits) })
}

// asUser runs one statement the way Supabase's REST API would on the
// user's behalf: in a transaction as the authenticated role with the
// user's claims, on the server's own (non-superuser) login.
func (e *env) asUser(u user, sql string, args ...any) error {
	e.t.Helper()
	return e.App.DB.Tx(context.Background(), sessionOf(u), func(q db.Querier) error {
		_, err := q.Exec(context.Background(), sql, args...)
		return err
	})
}

// sessionOf is the user's database session, as the API makes it.
func sessionOf(u user) db.Session {
	claims, _ := json.Marshal(map[string]any{"sub": u.ID, "role": "authenticated", "email": u.Email})
	return db.UserSession(u.ID, claims)
}

func TestIntrospectionIsPricedAndBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.NewUser("alice@example.com", false)
	aliased := func(n int, sel string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, " s%d: %s", i, sel)
		}
		b.WriteString(" }")
		return b.String()
	}
	nestedType := "{ __type(name: \"Query\") { " + strings.Repeat("fields { type { ", 6) + "name" + strings.Repeat(" } }", 6) + " } }"
	tests := []struct {
		name, token, query string
		code               string // empty: it runs
	}{
		{"GraphiQL's schema query, anonymous", "", introspectionQuery, ""},
		{"GraphiQL's schema query, signed in", alice.Token, introspectionQuery, ""},
		{"__typename anywhere", "", `{ __typename stories(first: 1) { __typename nodes { __typename } } }`, ""},
		{"two __schema roots", "", `{ a: __schema { types { name } } b: __schema { types { name } } }`, graph.CodeQueryTooComplex},
		{"__schema and __type", "", `{ __schema { queryType { name } } __type(name: "Story") { name } }`, graph.CodeQueryTooComplex},
		{"aliased __schema, as in the attack", "", aliased(40, `__schema { types { fields { name } } }`), graph.CodeQueryTooComplex},
		{"nested type fields", "", nestedType, "GRAPHQL_VALIDATION_FAILED"},
		{"introspection in a fragment spread twice", "", `fragment S on Query { __schema { types { name } } } { ...S ... on Query { ...S } }`, graph.CodeQueryTooComplex},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			r := e.Post(tt.token, tt.query, nil)
			if tt.code == "" {
				r.Decode(t, &map[string]any{})
				return
			}
			r.WantCode(t, tt.code)
			r.WantNoData(t)
		})
	}
}

func TestQueryShapeLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withLimits(func(l *limit.Settings) { l.MaxAliases = 3; l.MaxRootFields = 4 }))
	alice := e.NewUser("alice@example.com", false)
	e.story("A", "a")
	aliases := func(n int) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, ` s%d: story(slug: "a") { id }`, i)
		}
		b.WriteString(" }")
		return b.String()
	}
	tests := []struct {
		name, query string
		code        string
	}{
		{"3 aliases", aliases(3), ""},
		{"4 aliases", aliases(4), graph.CodeQueryTooComplex},
		{"aliases counted through fragments", `fragment F on Story { a: id b: title } { story(slug: "a") { ...F c: slug ... on Story { ...F } } }`, graph.CodeQueryTooComplex},
		{"4 root fields", `{ viewer { id } stories(first: 1) { nodes { id } } story(slug: "a") { id } x: story(slug: "b") { id } }`, ""},
		{"5 root fields", `{ viewer { id } stories(first: 1) { nodes { id } } story(slug: "a") { id } x: story(slug: "b") { id } y: viewer { id } }`, graph.CodeQueryTooComplex},
		{"__typename is not a root field", `{ __typename viewer { id } stories(first: 1) { nodes { id } } story(slug: "a") { id } x: story(slug: "b") { id } }`, ""},
		{"root fields counted through fragments", `fragment Q on Query { viewer { id } stories(first: 1) { nodes { id } } story(slug: "a") { id } } { ...Q ... on Query { ...Q } }`, graph.CodeQueryTooComplex},
		{"9,500 aliases, as in the attack", aliases(9500), graph.CodeQueryTooComplex},
	}
	for _, tt := range tests {
		// Not parallel: each case counts the statements run in between.
		t.Run(tt.name, func(t *testing.T) {
			e.on(t).wantLimit(t, alice.Token, tt.query, nil, tt.code)
		})
	}
}

func TestAnonymousBudgetIsSmaller(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.NewUser("alice@example.com", false)
	e.story("A", "a")
	// 1 + 100 × (1 + (1 + 50 × 2)) = 10,201: over the anonymous budget of
	// 5,000, under the signed-in one of 20,000.
	q := `{ stories(first: 100) { nodes { myGenerations(first: 50) { nodes { id } } } } }`
	r := e.Post("", q, nil)
	r.WantError(t, graph.CodeQueryTooComplex, "anonymous")
	e.Post(alice.Token, q, nil).Decode(t, &map[string]any{})
}

func TestIntrospectionSwitch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withLimits(func(l *limit.Settings) { l.Introspection = false }))
	for _, q := range []string{introspectionQuery, `{ __type(name: "Story") { name } }`} {
		r := e.Post("", q, nil)
		r.WantCode(t, "GRAPHQL_VALIDATION_FAILED")
		r.WantNoData(t)
	}
	var out struct {
		Typename string `json:"__typename"`
	}
	e.Post("", `{ __typename }`, nil).Decode(t, &out)
	if out.Typename != "Query" {
		t.Errorf("__typename = %q", out.Typename)
	}
	// The schema file would tell what introspection does not.
	if res, _ := e.Do(http.MethodGet, "/graphql/schema.graphql", nil); res.StatusCode == http.StatusOK {
		t.Errorf("GET /graphql/schema.graphql = %d with introspection off", res.StatusCode)
	}
}

func TestBadTextIsBadUserInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.NewUser("alice@example.com", false)
	root := e.NewUser("root@example.com", true)
	tests := []struct {
		name, token, query string
		vars               map[string]any
	}{
		{"NUL in a variable", "", `query($s: String) { stories(search: $s) { nodes { id } } }`, map[string]any{"s": "a\x00b"}},
		{"NUL in a literal", "", `{ stories(search: "a\u0000b") { nodes { id } } }`, nil},
		{"NUL in a nested input", alice.Token, `mutation($i: UpdateProfileInput!) { updateProfile(input: $i) { displayName } }`, map[string]any{"i": map[string]any{"displayName": "x\x00"}}},
		{"NUL in an input literal", root.Token, `mutation { createStory(input: {title: "t\u0000", slug: "s", content: "c"}) { id } }`, nil},
		{"NUL in a fragment's argument", "", `fragment F on Query { story(slug: "a\u0000") { id } } { ...F }`, nil},
		{"NUL in a default value", "", `query($s: String = "\u0000") { stories(search: $s) { nodes { id } } }`, nil},
	}
	for _, tt := range tests {
		e.wantRefusal(t, tt.name, tt.token, tt.query, tt.vars, graph.CodeBadUserInput, response.WantNoData)
	}

	t.Run("invalid UTF-8 in a JSON body", func(t *testing.T) {
		t.Parallel()
		e := e.on(t)
		body := []byte(`{"query":"{ stories(search: \"a` + "\xff\xfe" + `\") { nodes { id } } }"}`)
		r := e.postRaw("application/json", bytes.NewReader(body), "")
		if r.Status != http.StatusBadRequest {
			t.Errorf("status %d, want 400", r.Status)
		}
		r.WantCode(t, graph.CodeBadUserInput)
	})
	t.Run("invalid UTF-8 in a GET query", func(t *testing.T) {
		t.Parallel()
		e := e.on(t)
		r := e.Get("", map[string][]string{"query": {"{ stories(search: \"a\xffb\") { nodes { id } } }"}})
		r.WantCode(t, graph.CodeBadUserInput)
	})
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withLimits(func(l *limit.Settings) { l.MaxBodyBytes = 4096 }))
	query := func(size int) []byte {
		prefix, suffix := `{"query":"{ stories(search: \"`, `\") { nodes { id } } }"}`
		return []byte(prefix + strings.Repeat("a", size-len(prefix)-len(suffix)) + suffix)
	}
	tests := []struct {
		name    string
		body    []byte
		chunked bool
		status  int
	}{
		{name: "at the limit", body: query(4096), status: http.StatusOK},
		{name: "one byte over", body: query(4097), status: http.StatusRequestEntityTooLarge},
		{name: "far over, chunked", body: query(10 << 20), chunked: true, status: http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			var body io.Reader = bytes.NewReader(tt.body)
			if tt.chunked {
				body = struct{ io.Reader }{body}
			}
			r := e.postRaw("application/json", body, "")
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d: %.300s", r.Status, tt.status, r.Raw)
			}
			if tt.status != http.StatusOK {
				r.WantCode(t, graph.CodeBadUserInput)
			}
		})
	}
}

func TestCacheControl(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.NewUser("alice@example.com", false)
	tests := []struct {
		name, auth string
		want       string
	}{
		{"signed in", "Bearer " + alice.Token, "no-store"},
		{"bad token", "Bearer nope", "no-store"},
		{"anonymous", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			var r response
			if tt.auth == "" {
				r = e.Post("", `{ viewer { id } }`, nil)
			} else {
				r = e.PostAuth(tt.auth, `{ viewer { id } }`)
			}
			if got := r.Header.Get("Cache-Control"); got != tt.want {
				t.Errorf("Cache-Control = %q, want %q", got, tt.want)
			}
		})
	}
}

// postRaw sends a raw body to /graphql; a body of unknown length (not a
// *bytes.Reader) goes chunked.
func (e *env) postRaw(contentType string, body io.Reader, token string) response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.URL+"/graphql", body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.Send(req)
}

// TestMetadataIsBounded inserts generations the way Supabase's REST API
// would, as the signed-in user with their claims, bypassing the server.
func TestMetadataIsBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.narrator("alice@example.com")
	story := e.story("A", "a")
	tests := []struct {
		name     string
		metadata string
		ok       bool
	}{
		{"small object", `{"note": "hi"}`, true},
		{"16 KiB", `{"k": "` + strings.Repeat("x", 16384-len(`{"k": ""}`)) + `"}`, true},
		{"over 16 KiB", `{"k": "` + strings.Repeat("x", 16384) + `"}`, false},
		{"an array", `[1, 2]`, false},
		{"a string", `"x"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			err := e.asUser(alice, `INSERT INTO story_generations (user_id, story_id, metadata) VALUES ($1, $2, $3::jsonb)`,
				alice.ID, story, tt.metadata)
			if tt.ok && err != nil {
				t.Fatalf("insert refused: %v", err)
			}
			if !tt.ok && (err == nil || !strings.Contains(err.Error(), "metadata_bounded")) {
				t.Fatalf("insert error = %v, want the metadata_bounded check", err)
			}
		})
	}
}
