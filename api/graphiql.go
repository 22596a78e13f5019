package api

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"net/http"

	"github.com/99designs/gqlgen/graphql/playground"
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

// graphiqlPage is GraphiQL on /graphql, with its assets from graphiqlPath
// and their subresource-integrity hashes computed from the embedded bytes.
func graphiqlPage() http.Handler {
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
	return playground.Handler("Narrate GraphiQL", "/graphql",
		playground.WithGraphiqlVersion(js, css, jsSRI, cssSRI),
		playground.WithGraphiqlReactVersion(react, reactDOM, reactSRI, reactDOMSRI),
		playground.WithGraphiqlPluginExplorerVersion(explorerJS, explorerCSS, explorerJSSRI, explorerCSSSRI),
		playground.WithGraphiqlEnablePluginExplorer(true),
	)
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
