package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/narrate/narrate/api"
	"github.com/narrate/narrate/graph"
)

// hashOf is the hex SHA-256 of a document, its persisted-query id.
func hashOf(query string) string {
	sum := sha256.Sum256([]byte(query))
	return hex.EncodeToString(sum[:])
}

// persistedPost sends an operation with the persisted-query extension to
// the server at base; query may be empty (the hash alone).
func (e *env) persistedPost(base, query, hash string) response {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{
		"query":      query,
		"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash}},
	})
	req, err := http.NewRequest(http.MethodPost, base+"/graphql", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return e.Send(req)
}

// TestPersistedQueriesAreShared: a query registered through one instance
// runs by its hash alone on another, and on the first after its
// in-process cache is gone (a restart); unknown hashes ask for the text.
func TestPersistedQueriesAreShared(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.story("The Fox", "the-fox")
	const q = `{ stories { nodes { title } } }`
	hash := hashOf(q)

	if r := e.persistedPost(e.URL, "", hash); !strings.Contains(string(r.Raw), "PERSISTED_QUERY_NOT_FOUND") {
		t.Fatalf("unknown hash: %s, want PERSISTED_QUERY_NOT_FOUND", r.Raw)
	}
	var first struct {
		Stories struct{ Nodes []struct{ Title string } }
	}
	e.persistedPost(e.URL, q, hash).Decode(t, &first)

	for name, base := range map[string]string{"another instance": e.another(), "a restarted one": e.another()} {
		var got struct {
			Stories struct{ Nodes []struct{ Title string } }
		}
		e.persistedPost(base, "", hash).Decode(t, &got)
		if len(got.Stories.Nodes) != 1 || got.Stories.Nodes[0].Title != "The Fox" {
			t.Errorf("%s: %+v", name, got)
		}
	}
	// GET, as Apollo's persisted-query link sends queries by default.
	r := e.Get("", url.Values{"extensions": {fmt.Sprintf(`{"persistedQuery":{"version":1,"sha256Hash":%q}}`, hash)}})
	r.Decode(t, &first)
	e.WantCount(1, `SELECT count(*) FROM persisted_operations WHERE hash = $1 AND query = $2 AND NOT trusted`, hash, q)
}

// TestPersistedQueriesAreBounded: clients cannot grow the table beyond
// its limit; the least recently used go first.
func TestPersistedQueriesAreBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withPersistedLimit(3))
	var last string
	for i := range 6 {
		last = fmt.Sprintf(`{ stories(first: %d) { nodes { id } } }`, i+1)
		e.persistedPost(e.URL, last, hashOf(last)).Decode(t, &struct{}{})
	}
	e.WantCount(3, `SELECT count(*) FROM persisted_operations`)
	if n := e.Count(`SELECT count(*) FROM persisted_operations WHERE hash = $1`, hashOf(last)); n != 1 {
		t.Error("the newest operation was pruned")
	}
}

// TestTrustedDocuments: with trusted documents on, registered operations
// run by hash or by text; anything else is refused before it runs, and
// cannot be registered by a client.
func TestTrustedDocuments(t *testing.T) {
	t.Parallel()
	const trusted = `query Catalogue { stories { nodes { title } } }`
	manifest := filepath.Join(t.TempDir(), "persisted-documents.json")
	if err := os.WriteFile(manifest, []byte(`{"`+hashOf(trusted)+`":`+strconvQuote(trusted)+`}`), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withTrustedDocuments(manifest))
	e.story("The Fox", "the-fox")
	var got struct {
		Stories struct{ Nodes []struct{ Title string } }
	}
	e.persistedPost(e.URL, "", hashOf(trusted)).Decode(t, &got)
	e.Post("", trusted, nil).Decode(t, &got)
	if len(got.Stories.Nodes) != 1 {
		t.Errorf("trusted operation: %+v", got)
	}

	const other = `{ stories { nodes { id title } } }`
	e.Post("", other, nil).WantCode(t, graph.CodeForbidden)
	e.persistedPost(e.URL, other, hashOf(other)).WantCode(t, graph.CodeForbidden)
	if r := e.persistedPost(e.URL, "", hashOf(other)); !strings.Contains(string(r.Raw), "PERSISTED_QUERY_NOT_FOUND") {
		t.Errorf("unregistered hash: %s", r.Raw)
	}
	if n := e.Count(`SELECT count(*) FROM persisted_operations WHERE NOT trusted`); n != 0 {
		t.Errorf("a client registered %d operations", n)
	}
}

func TestReadTrustedDocuments(t *testing.T) {
	t.Parallel()
	const doc = `query Catalogue { stories { nodes { title } } }`
	h := hashOf(doc)
	tests := []struct {
		name, manifest string
		ok             bool
	}{
		{"apollo manifest", `{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id":"` + h + `","name":"Catalogue","type":"query","body":` + strconvQuote(doc) + `}]}`, true},
		{"hash to document", `{"` + h + `":` + strconvQuote(doc) + `}`, true},
		{"wrong hash", `{"` + hashOf("other") + `":` + strconvQuote(doc) + `}`, false},
		{"not json", `query {}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			docs, err := api.ReadTrustedDocuments(strings.NewReader(tt.manifest))
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
			if tt.ok && docs[h] != doc {
				t.Errorf("docs = %v", docs)
			}
		})
	}
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestSchemaDownload: the SDL is served for tools that read a file.
func TestSchemaDownload(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res, body := e.Do(http.MethodGet, "/graphql/schema.graphql", nil)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("HTTP %d, %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, want := range []string{"type Query {", "generationProgress(id: ID!): StoryGeneration!", "scalar Upload"} {
		if !strings.Contains(body, want) {
			t.Errorf("schema lacks %q", want)
		}
	}
	if strings.Contains(body, "__Schema") {
		t.Error("schema includes the introspection types")
	}
}
