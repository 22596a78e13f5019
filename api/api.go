// Package api assembles the HTTP surface: GraphQL over HTTP (and, through
// the websocket transport, subscriptions), GraphiQL, health and readiness
// probes, metrics, signed audio downloads, and the middleware in front of
// them (request ids, logs, CORS, authentication).
package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/narrate/narrate/auth"
	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/graph"
)

// Limits on what a client may send.
const (
	maxJSONBody     = 1 << 20
	maxUploadFile   = 10 << 20
	maxUploadFiles  = 25
	maxUploadBody   = maxUploadFiles*maxUploadFile + 1<<20
	uploadMaxMemory = 32 << 20
)

// Options are the dependencies of the HTTP surface.
type Options struct {
	DB       *db.DB
	Verifier *auth.Verifier
	Logger   *slog.Logger
	// Resolver is the GraphQL root; its DB and Logger are filled in from
	// the fields above when nil.
	Resolver *graph.Resolver
	// Registry receives the HTTP metrics and is served on /metrics.
	Registry *prometheus.Registry
	// Ready reports whether the process can serve: the database answers
	// and, where there is one, the notification listener is connected.
	Ready func(context.Context) error
	// Audio serves signed audio links under /audio/; nil when there is no
	// audio storage.
	Audio http.Handler
	// CORSOrigins lists the allowed browser origins; empty allows any.
	CORSOrigins []string
	// Sockets serves subscriptions over websockets; nil serves none.
	Sockets *Sockets
	// MaxDepth and MaxComplexity bound operations; 0 uses the defaults.
	MaxDepth, MaxComplexity int
}

// New returns the server's HTTP handler.
func New(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Resolver == nil {
		o.Resolver = &graph.Resolver{}
	}
	if o.Resolver.DB == nil {
		o.Resolver.DB = o.DB
	}
	if o.Resolver.Logger == nil {
		o.Resolver.Logger = o.Logger
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.MaxDepth == 0 {
		o.MaxDepth = graph.DefaultMaxDepth
	}
	if o.MaxComplexity == 0 {
		o.MaxComplexity = graph.DefaultMaxComplexity
	}

	gql := NewGraphQL(o)
	metrics := newHTTPMetrics(o.Registry)

	mux := http.NewServeMux()
	var graphqlHandler http.Handler = authenticate(o.Verifier, rejectGetMutations(limitBody(gql)))
	if o.Sockets != nil {
		graphqlHandler = o.Sockets.track(graphqlHandler)
	}
	mux.Handle("/graphql", graphqlHandler)
	mux.Handle("GET /{$}", graphiqlPage())
	mux.Handle("GET "+graphiqlPath, graphiqlFiles())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if o.Ready != nil {
			if err := o.Ready(ctx); err != nil {
				o.Logger.WarnContext(ctx, "not ready", "err", err)
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("not ready\n"))
				return
			}
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry}))
	if o.Audio != nil {
		mux.Handle("/audio/", o.Audio)
	}

	var h http.Handler = mux
	h = cors(o.CORSOrigins, h)
	h = metrics.observe(o.Logger, h)
	h = requestID(h)
	return h
}

// NewGraphQL builds the gqlgen server: transports, caches, limits, the
// per-response loaders and the error presenter.
func NewGraphQL(o Options) *handler.Server {
	es := graph.NewExecutableSchema(graph.Config{Resolvers: o.Resolver, Complexity: graph.Complexity()})
	srv := handler.New(es)
	if o.Sockets != nil {
		srv.AddTransport(o.Sockets.Transport())
		// Server-sent events, for clients that cannot use websockets; it
		// must come before POST, which would take the request otherwise.
		srv.AddTransport(transport.SSE{KeepAlivePingInterval: o.Sockets.KeepAlive})
	}
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.AddTransport(transport.MultipartForm{MaxUploadSize: maxUploadBody, MaxMemory: uploadMaxMemory})

	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.Use(extension.Introspection{})
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](100)})
	srv.Use(&graph.Limits{MaxDepth: o.MaxDepth, MaxComplexity: o.MaxComplexity})
	srv.AroundResponses(o.Resolver.LoaderMiddleware)
	srv.SetErrorPresenter(graph.ErrorPresenter(o.Logger))
	srv.SetRecoverFunc(graph.RecoverFunc(o.Logger))
	return srv
}

// ViewerOf turns a verified identity into the GraphQL viewer whose
// database work runs as authenticated (admins: narrate_admin) with the
// token's claims.
func ViewerOf(id *auth.Identity) graph.Viewer {
	session := db.UserSession(id.UserID, id.Claims)
	if id.Admin {
		session = db.AdminSession(id.UserID, id.Claims)
	}
	return graph.Viewer{
		Session:   session,
		UserID:    id.UserID,
		Email:     id.Email,
		Admin:     id.Admin,
		ExpiresAt: id.ExpiresAt,
	}
}
