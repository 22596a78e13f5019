package api

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"net/http"
	"net/url"
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
	example := "/?" + url.Values{"query": {exampleOperation}}.Encode()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "" {
			http.Redirect(w, r, example, http.StatusFound)
			return
		}
		page.ServeHTTP(w, r)
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
