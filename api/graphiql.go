package api

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql/playground"
	"github.com/vektah/gqlparser/v2/formatter"

	"github.com/narrate/narrate/graph"
)

// graphiqlAssets are the scripts and styles of gqlgen's GraphiQL page, the
// same files it would load from jsDelivr (see graphiql/LICENSES.txt),
// served by the server itself: GraphiQL then works offline, behind a
// firewall, and without trusting a third-party CDN.
//
//go:embed graphiql/*.js graphiql/*.css
var graphiqlAssets embed.FS

// graphiqlPath is where the assets are served.
const graphiqlPath = "/graphiql/"

// exampleOperation is what GraphiQL opens with.
const exampleOperation = `# Narrate's API. Run the query with the play button; the subscription
# below it follows your narrations live (start one with startGeneration).
# The Docs and Explorer panes list everything else.
query Catalogue {
  viewer { email }
  stories(first: 5) {
    nodes { id title slug }
    pageInfo { hasNextPage endCursor }
  }
}

subscription MyNarrations {
  viewerGenerations { id status progress resultUrl story { title } }
}
`

// graphiqlPage is GraphiQL on /graphql, with its assets from graphiqlPath
// and their subresource-integrity hashes computed from the embedded bytes.
// It keeps its state in the URL, so "/" alone is sent on to the example
// operation; devToken, when set, fills the Headers tab.
func graphiqlPage(devToken string) http.Handler {
	asset := func(name string) (url, sri string) {
		b, err := graphiqlAssets.ReadFile("graphiql/" + name)
		if err != nil {
			panic("graphiql asset missing: " + name)
		}
		sum := sha256.Sum256(b)
		return graphiqlPath + name, "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
	}
	js, jsSRI := asset("graphiql.min.js")
	css, cssSRI := asset("graphiql.min.css")
	react, reactSRI := asset("react.production.min.js")
	reactDOM, reactDOMSRI := asset("react-dom.production.min.js")
	explorerJS, explorerJSSRI := asset("plugin-explorer.umd.js")
	explorerCSS, explorerCSSSRI := asset("plugin-explorer.css")
	opts := []playground.GraphiqlConfigOption{
		playground.WithGraphiqlVersion(js, css, jsSRI, cssSRI),
		playground.WithGraphiqlReactVersion(react, reactDOM, reactSRI, reactDOMSRI),
		playground.WithGraphiqlPluginExplorerVersion(explorerJS, explorerCSS, explorerJSSRI, explorerCSSSRI),
		playground.WithGraphiqlEnablePluginExplorer(true),
		playground.WithGraphiqlPersistStateInURL(true),
	}
	if devToken != "" {
		opts = append(opts, playground.WithGraphiqlUiHeaders(map[string]string{"Authorization": "Bearer " + devToken}))
	}
	page := playground.Handler("Narrate GraphiQL", "/graphql", opts...)
	// The page is the same for every request: render it once, so that the
	// policy can allow its one inline script by hash.
	rec := httptest.NewRecorder()
	page.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	body := rec.Body.Bytes()
	csp := graphiqlPolicy(body)
	example := "/?" + url.Values{"query": {exampleOperation}}.Encode()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "" {
			http.Redirect(w, r, example, http.StatusFound)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		_, _ = w.Write(body)
	})
}

// graphiqlFiles serves the assets; they never change for a given build,
// so browsers may cache them for a day.
func graphiqlFiles() http.Handler {
	sub, err := fs.Sub(graphiqlAssets, "graphiql")
	if err != nil {
		panic(err)
	}
	files := http.StripPrefix(graphiqlPath, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=86400")
		files.ServeHTTP(w, r)
	})
}

// schemaFile serves the schema as SDL, for code generators and editors
// that read a file rather than introspect (the schema is the same for
// every caller, and changes only with a new build).
func schemaFile() http.Handler {
	var sdl bytes.Buffer
	formatter.NewFormatter(&sdl, formatter.WithIndent("  ")).FormatSchema(graph.NewExecutableSchema(graph.Config{}).Schema())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=300")
		http.ServeContent(w, r, "schema.graphql", time.Time{}, bytes.NewReader(sdl.Bytes()))
	})
}

// inlineScript finds the page's inline scripts (those without src).
var inlineScript = regexp.MustCompile(`(?s)<script>(.*?)</script>`)

// graphiqlPolicy is the page's Content-Security-Policy: scripts only from
// the server itself plus the page's own inline script (by hash), no
// framing (clickjacking), no plugins, no base or form redirection, and
// connections only back to the server (queries, and subscriptions over
// websockets). Styles may be inline: GraphiQL's editor sets style
// attributes, which hashes cannot allow.
func graphiqlPolicy(page []byte) string {
	scripts := []string{"'self'"}
	for _, m := range inlineScript.FindAllSubmatch(page, -1) {
		sum := sha256.Sum256(m[1])
		scripts = append(scripts, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
	}
	return strings.Join([]string{
		"default-src 'none'",
		"script-src " + strings.Join(scripts, " "),
		"style-src 'self' 'unsafe-inline'",
		"img-src 'self' data:",
		"font-src 'self' data:",
		"connect-src 'self' ws: wss:",
		"frame-ancestors 'none'",
		"base-uri 'none'",
		"form-action 'none'",
		"object-src 'none'",
	}, "; ")
}
