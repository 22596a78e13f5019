package api

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/narrate/narrate/auth"
	"github.com/narrate/narrate/graph"
)

// authenticate verifies the bearer token of HTTP GraphQL requests. No
// header is an anonymous request; a present but invalid token fails the
// whole request with 401, never a silent fallback to anonymous. Websocket
// upgrades carry their token in connection_init instead, where the
// websocket transport checks it.
func authenticate(v *auth.Verifier, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isWebsocket(r) {
			next.ServeHTTP(w, r)
			return
		}
		if r.Header.Get("Authorization") != "" {
			// What a signed-in user is shown is theirs alone: no shared
			// cache (proxy, CDN, browser) may keep it, refusals included.
			w.Header().Set("Cache-Control", "no-store")
		}
		ctx, id, err := signIn(r.Context(), v, r.Header.Get("Authorization"))
		if id != nil && isStream(r) {
			// A stream lives no longer than its token, like a websocket.
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, id.ExpiresAt)
			defer cancel()
		}
		r = r.WithContext(ctx)
		if err != nil {
			if !errors.Is(err, auth.ErrInvalidToken) {
				slog.ErrorContext(r.Context(), "verify token", "err", err)
				WriteError(w, r, http.StatusInternalServerError, graph.CodeInternal, "could not verify the token")
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			WriteError(w, r, http.StatusUnauthorized, graph.CodeUnauthenticated, err.Error())
			return
		}
		next.ServeHTTP(w, r)
	})
}

func isWebsocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// cors allows cross-origin requests from the listed origins (any when the
// list is empty). Tokens travel in headers, not cookies, so credentials are
// never allowed, and any request header may be allowed safely: a preflight
// is answered with the headers it asks for (clients add their own, such as
// apollographql-client-name, sentry-trace or baggage), unless headers
// restricts them. Scripts may read X-Request-Id, to quote it in a report.
func cors(origins, headers []string, next http.Handler) http.Handler {
	allowHeaders := strings.Join(headers, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		if !OriginAllowed(origins, origin) {
			if r.Method == http.MethodOptions {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", "X-Request-Id")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method, Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			if allowHeaders != "" {
				h.Set("Access-Control-Allow-Headers", allowHeaders)
			} else if requested := r.Header.Values("Access-Control-Request-Headers"); len(requested) > 0 {
				h.Set("Access-Control-Allow-Headers", strings.Join(requested, ", "))
			}
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// OriginAllowed reports whether origin may call the API: any origin when
// origins is empty, otherwise an exact (case-insensitive) match.
func OriginAllowed(origins []string, origin string) bool {
	if len(origins) == 0 {
		return true
	}
	return slices.ContainsFunc(origins, func(o string) bool { return strings.EqualFold(o, origin) })
}

type requestIDKey struct{}

// RequestID returns the id of the request ctx belongs to.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestID gives every request an id: the caller's X-Request-Id when it
// is sane, a random one otherwise. Logs carry it, and so does the response.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID.MatchString(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

// LogHandler adds the request id of the record's context to every log
// record, so everything a request logs can be found by its id.
type LogHandler struct{ slog.Handler }

// Handle adds request_id.
func (h LogHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs keeps the wrapper.
func (h LogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return LogHandler{h.Handler.WithAttrs(attrs)}
}

// WithGroup keeps the wrapper.
func (h LogHandler) WithGroup(name string) slog.Handler {
	return LogHandler{h.Handler.WithGroup(name)}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushing).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush streams what was written so far (server-sent events).
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		f.Flush()
	}
}

// Hijack hands the connection to gorilla/websocket, which asks for
// http.Hijacker directly; a websocket's status is 101 Switching Protocols.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("response writer cannot be hijacked")
	}
	if w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return h.Hijack()
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "narrate_http_requests_total", Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "narrate_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// observe logs every request once it is answered and records it in the
// metrics under its route pattern, never its raw path, so label
// cardinality stays bounded.
func (m *httpMetrics) observe(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		elapsed := time.Since(start)

		// The mux records the pattern it matched on the request it was
		// given, this one: no need to match again.
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		level := slog.LevelInfo
		switch {
		case isWebsocket(r):
			// A websocket's duration is its lifetime, not a latency.
			m.requests.WithLabelValues(route, "WS", strconv.Itoa(sw.status)).Inc()
		default:
			m.requests.WithLabelValues(route, r.Method, strconv.Itoa(sw.status)).Inc()
			m.duration.WithLabelValues(route).Observe(elapsed.Seconds())
		}
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || r.URL.Path == "/metrics" {
			level = slog.LevelDebug
		}
		logger.Log(r.Context(), level, "http request",
			"method", r.Method, "path", r.URL.Path, "status", sw.status,
			"duration", elapsed, "remote", r.RemoteAddr)
	})
}
