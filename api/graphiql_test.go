package api_test

import (
	"crypto/sha256"
	"encoding/base64"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/narrate/narrate/api"
)

// TestGraphiQLServesItsOwnAssets checks that the GraphiQL page loads every
// script and style from the server itself (so it works offline) and that
// each asset matches the integrity hash the page asks the browser to check.
func TestGraphiQLServesItsOwnAssets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	get := func(path string) string {
		t.Helper()
		res, body := e.Do(http.MethodGet, path, nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, res.StatusCode)
		}
		return body
	}
	page := get("/")
	if !strings.Contains(page, "GraphiQL") {
		t.Fatalf("/ is not the GraphiQL page: %.200s", page)
	}
	tags := regexp.MustCompile(`(?s)(?:src|href)="([^"]+)"\s+integrity="([^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(tags) < 6 {
		t.Fatalf("found %d assets with integrity hashes, want the 6 of GraphiQL, React and the explorer", len(tags))
	}
	for _, tag := range tags {
		// Attributes are HTML-escaped (+ as &#43;), as browsers expect.
		url, integrity := html.UnescapeString(tag[1]), html.UnescapeString(tag[2])
		if !strings.HasPrefix(url, "/graphiql/") {
			t.Errorf("asset %s is not served by the server", url)
			continue
		}
		body := get(url)
		sum := sha256.Sum256([]byte(body))
		if got := "sha256-" + base64.StdEncoding.EncodeToString(sum[:]); got != integrity {
			t.Errorf("%s: integrity %s, page says %s", url, got, integrity)
		}
	}
}

// TestGraphiQLOpensWithExample: "/" leads to GraphiQL holding an example
// operation; the development token fills the Headers tab only when the
// server was given one (local development).
func TestGraphiQLOpensWithExample(t *testing.T) {
	t.Parallel()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tests := []struct {
		name, token string
	}{
		{"local development", "dev-token-123"},
		{"production", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// The page needs no database: the handler alone, as the
			// assembly builds it with or without a development token.
			srv := httptest.NewServer(api.New(api.Options{DevToken: tt.token}))
			t.Cleanup(srv.Close)
			res, err := noRedirect.Get(srv.URL + "/")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			loc, err := url.Parse(res.Header.Get("Location"))
			if res.StatusCode != http.StatusFound || err != nil || loc.Path != "/" {
				t.Fatalf("GET / = %d, Location %q", res.StatusCode, res.Header.Get("Location"))
			}
			if q := loc.Query().Get("query"); !strings.Contains(q, "query Catalogue") || !strings.Contains(q, "subscription") {
				t.Errorf("example operation %q", q)
			}
			res, err = http.Get(srv.URL + loc.String())
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(res.Body)
			res.Body.Close()
			page := string(raw)
			if res.StatusCode != http.StatusOK || !strings.Contains(page, "parameters.query") {
				t.Fatalf("GraphiQL page: %d, does not take its query from the URL", res.StatusCode)
			}
			hasToken := strings.Contains(page, "Bearer dev-token-123")
			if hasToken != (tt.token != "") {
				t.Errorf("page has the dev token: %v, want %v", hasToken, tt.token != "")
			}
		})
	}
}
