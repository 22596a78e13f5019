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
	"github.com/narrate/narrate/limit"
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
	// CORSHeaders lists the request headers allowed cross-origin; empty
	// allows whatever a preflight asks for.
	CORSHeaders []string
	// Sockets serves subscriptions over websockets; nil serves none.
	Sockets *Sockets
	// DevToken, in local development only, is put in GraphiQL's Headers
	// tab, so the example operation runs signed in.
	DevToken string
	// PersistedLimit bounds the automatic persisted queries kept in the
	// database; 0 uses DefaultPersistedLimit.
	PersistedLimit int
	// TrustedDocuments runs only the operations registered as trusted
	// documents (db.TrustOperations), refusing any other.
	TrustedDocuments bool
	// Limits bound what callers may send and use; nil is
	// limit.Defaults().
	Limits *limit.Settings
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
	if o.Limits == nil {
		d := limit.Defaults()
		o.Limits = &d
	}
	if o.Resolver.Limits == nil {
		o.Resolver.Limits = o.Limits
	}

	gql := NewGraphQL(o)
	metrics := newHTTPMetrics(o.Registry)
	adm := &admission{limits: *o.Limits}

	mux := http.NewServeMux()
	var graphqlHandler http.Handler = authenticate(o.Verifier, adm.admit(readBody(*o.Limits, gql)))
	// Inside track, which serves websockets on goroutines of their own.
	graphqlHandler = recoverPanics(o.Resolver.Panics, o.Logger, graphqlHandler)
	if o.Sockets != nil {
		graphqlHandler = o.Sockets.track(graphqlHandler)
	}
	mux.Handle("/graphql", graphqlHandler)
	if o.Limits.Introspection {
		// The schema file tells what introspection would: with
		// INTROSPECTION=false it is not served either.
		mux.Handle("GET /graphql/schema.graphql", schemaFile())
	}
	mux.Handle("GET /{$}", graphiqlPage(o.DevToken))
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

	var h http.Handler = recoverPanics(o.Resolver.Panics, o.Logger, mux)
	h = cors(o.CORSOrigins, o.CORSHeaders, h)
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
		// Streams over plain HTTP, for clients that cannot use websockets:
		// server-sent events (graphql-sse) and Apollo's multipart
		// subscriptions. They come before the JSON transport, which
		// refuses subscriptions.
		srv.AddTransport(sseTransport{transport.SSE{KeepAlivePingInterval: o.Sockets.KeepAlive}})
		srv.AddTransport(multipartSubscription{})
	}
	l := limit.Defaults()
	if o.Limits != nil {
		l = *o.Limits
	}
	srv.AddTransport(incremental{transport.MultipartMixed{Boundary: "-"}})
	srv.AddTransport(transport.Options{})
	srv.AddTransport(jsonTransport{})
	srv.AddTransport(&uploads{limits: l, schema: es.Schema()})
	srv.AddTransport(unsupported{})

	srv.SetQueryCache(smallOnly[*ast.QueryDocument]{Cache: lru.New[*ast.QueryDocument](1000), max: maxCachedQuery})
	if l.Introspection {
		srv.Use(extension.Introspection{})
	}
	srv.Use(persistedExtension(o))
	srv.Use(&graph.Limits{
		MaxDepth:               l.MaxDepth,
		MaxComplexity:          l.MaxComplexity,
		MaxAnonymousComplexity: l.MaxAnonymousComplexity,
		MaxAliases:             l.MaxAliases,
		MaxRootFields:          l.MaxRootFields,
		DisableIntrospection:   !l.Introspection,
	})
	srv.AroundResponses(o.Resolver.LoaderMiddleware)
	srv.SetErrorPresenter(graph.ErrorPresenter(o.Logger))
	srv.AroundOperations(graph.EndStreamsWithErrors)
	srv.SetRecoverFunc(o.Resolver.RecoverPanic)
	return srv
}

// signIn is the one way from a token to a viewer, for HTTP requests and
// websockets alike. It verifies authorization, an Authorization value
// ("Bearer <token>", from a header or a websocket's connection_init), and
// returns ctx carrying the token's viewer, whose database work runs as
// authenticated (admins: narrate_admin) with the token's claims, and the
// verified identity. A
// blank value is an anonymous caller: ctx as it is and a nil identity.
// Errors wrap auth.ErrInvalidToken when the token is at fault; any other
// is the verifier's own failure (keys unreachable).
func signIn(ctx context.Context, v *auth.Verifier, authorization string) (context.Context, *auth.Identity, error) {
	token, ok, err := auth.BearerToken(authorization)
	if err != nil || !ok {
		return ctx, nil, err
	}
	id, err := v.Verify(ctx, token)
	if err != nil {
		return ctx, nil, err
	}
	session := db.UserSession(id.UserID, id.Claims)
	if id.Admin {
		session = db.AdminSession(id.UserID, id.Claims)
	}
	return graph.WithViewer(ctx, graph.Viewer{
		Session:   session,
		UserID:    id.UserID,
		Email:     id.Email,
		Admin:     id.Admin,
		ExpiresAt: id.ExpiresAt,
	}), id, nil
}
