package api_test

import (
	"crypto/sha256"
	"encoding/base64"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"
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
