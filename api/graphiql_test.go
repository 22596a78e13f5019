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
	"slices"
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

// TestGraphiQLContentSecurityPolicy checks that the page may not be
// framed and runs no script but its own: the assets from the server and
// the one inline script whose hash the policy names.
func TestGraphiQLContentSecurityPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res, page := e.Do(http.MethodGet, "/", nil)
	csp := res.Header.Get("Content-Security-Policy")
	directives := map[string]string{}
	for _, d := range strings.Split(csp, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = value
	}
	for name, want := range map[string]string{
		"frame-ancestors": "'none'",
		"default-src":     "'none'",
		"object-src":      "'none'",
		"base-uri":        "'none'",
	} {
		if directives[name] != want {
			t.Errorf("%s = %q, want %q (policy %q)", name, directives[name], want, csp)
		}
	}
	if res.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("X-Frame-Options = %q", res.Header.Get("X-Frame-Options"))
	}
	// Every inline script is allowed by its hash, and nothing else is
	// allowed to run inline.
	scripts := strings.Fields(directives["script-src"])
	if slices.Contains(scripts, "'unsafe-inline'") || slices.Contains(scripts, "'unsafe-eval'") {
		t.Errorf("script-src allows inline code: %q", directives["script-src"])
	}
	inline := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindAllStringSubmatch(page, -1)
	if len(inline) == 0 {
		t.Fatal("no inline script found: the page changed shape")
	}
	for _, m := range inline {
		sum := sha256.Sum256([]byte(m[1]))
		if h := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !slices.Contains(scripts, h) {
			t.Errorf("inline script %.60q is not allowed by script-src %q", m[1], directives["script-src"])
		}
	}
	// Every external script comes from the server itself ('self').
	for _, m := range regexp.MustCompile(`<script\s+src="([^"]+)"`).FindAllStringSubmatch(page, -1) {
		if !strings.HasPrefix(m[1], "/") || strings.HasPrefix(m[1], "//") {
			t.Errorf("script %s is not same-origin", m[1])
		}
	}
}
