package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"

	"github.com/narrate/narrate/graph"
	"github.com/narrate/narrate/limit"
)

// ConfigureServer applies the connection-level limits to srv: how long a
// client may take to send its request headers, and how long an idle
// keep-alive connection is kept. There is deliberately no ReadTimeout or
// WriteTimeout: request bodies get their own deadline (readBody) or a
// minimum transfer rate (uploads), and subscriptions over server-sent
// events live as long as their token.
func ConfigureServer(srv *http.Server, l limit.Settings) {
	srv.ReadHeaderTimeout = l.ReadHeaderTimeout
	srv.IdleTimeout = l.IdleTimeout
	srv.MaxHeaderBytes = maxHeaderBytes
}

// maxHeaderBytes bounds request headers; GET queries travel in the URL,
// which counts here.
const maxHeaderBytes = 256 << 10

// readBody reads a JSON POST body before gqlgen sees it, within
// l.MaxBodyBytes and l.BodyTimeout: a larger body is answered 413, a body
// that is not UTF-8 400, and a client that stops sending is cut off at the
// deadline instead of holding a connection and a goroutine forever. gqlgen
// reads the whole body before doing anything anyway, so reading it here
// costs one copy of at most MaxBodyBytes. Multipart uploads are the upload
// transport's, which applies its own limits, and a body of another type
// is refused unread.
func readBody(l limit.Settings, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !isJSON(r) {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(l.BodyTimeout))
		body, err := io.ReadAll(io.LimitReader(r.Body, l.MaxBodyBytes+1))
		if err != nil || int64(len(body)) > l.MaxBodyBytes {
			// The rest of the body is not worth reading: the connection
			// is closed after the answer, keeping the deadline, so
			// net/http does not wait for the rest.
			w.Header().Set("Connection", "close")
		} else {
			// Cleared at once: net/http keeps reading the connection in
			// the background to notice a client hanging up, and a passed
			// deadline would cancel the request.
			_ = rc.SetReadDeadline(time.Time{})
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			WriteError(w, r, http.StatusRequestTimeout, graph.CodeBadUserInput,
				fmt.Sprintf("the request body did not arrive within %s", l.BodyTimeout))
			return
		case err != nil:
			// The client went away mid-body; nobody reads an answer.
			return
		case int64(len(body)) > l.MaxBodyBytes:
			WriteError(w, r, http.StatusRequestEntityTooLarge, graph.CodeBadUserInput,
				fmt.Sprintf("the request body is larger than %d bytes", l.MaxBodyBytes))
			return
		case !utf8.Valid(body):
			WriteError(w, r, http.StatusBadRequest, graph.CodeBadUserInput, "the request body is not valid UTF-8")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		next.ServeHTTP(w, r)
	})
}

// isJSON reports whether the request's body is JSON, by its media type
// alone, without allocating: it runs on every request. (The JSON transport
// checks the parameters too.)
func isJSON(r *http.Request) bool {
	mediaType, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	return strings.EqualFold(strings.TrimSpace(mediaType), mediaJSON)
}

func isMultipart(r *http.Request) bool {
	return strings.HasPrefix(strings.ToLower(r.Header.Get("Content-Type")), "multipart/")
}

// admission caps the requests, and separately the server-sent event
// streams, that one user and one client address may have in flight at
// once. The caps are this process's: they bound its goroutines, memory
// and database connections, not a quota. Websockets have their own caps.
type admission struct {
	limits           limit.Settings
	requests, stream limit.Counter
}

// admit runs after authentication, so the viewer is known. A refusal is
// 429 RATE_LIMITED and costs nothing more than the check.
func (a *admission) admit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isWebsocket(r) {
			next.ServeHTTP(w, r)
			return
		}
		counter, perUser, perAddress, what := &a.requests, a.limits.RequestsPerUser, a.limits.RequestsPerAddress, "requests"
		if isStream(r) {
			counter, perUser, perAddress, what = &a.stream, a.limits.StreamsPerUser, a.limits.StreamsPerAddress, "subscription streams"
		}
		releaseAddr, ok := counter.Acquire("addr:"+clientAddress(r), perAddress)
		if !ok {
			writeRateLimited(w, r, fmt.Sprintf("too many concurrent %s from your address (at most %d)", what, perAddress), 1)
			return
		}
		defer releaseAddr()
		if v := graph.ViewerFrom(r.Context()); !v.Anonymous() {
			releaseUser, ok := counter.Acquire("user:"+v.UserID.String(), perUser)
			if !ok {
				writeRateLimited(w, r, fmt.Sprintf("too many concurrent %s for your account (at most %d)", what, perUser), 1)
				return
			}
			defer releaseUser()
		}
		next.ServeHTTP(w, r)
	})
}

// clientAddress is the address the connection comes from. Forwarding
// headers are not trusted: anyone can send them.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// maxCachedQuery is the longest query text kept in the parsed-query cache.
// The cache holds 1,000 documents; without a bound each could be a
// megabyte of query text kept alive with its syntax tree, a gigabyte or
// more in all. Queries that apps send again and again are far shorter.
const maxCachedQuery = 16 << 10

// smallOnly is a cache that keeps only entries whose key (the query text)
// is at most max bytes long; longer ones are parsed again each time.
type smallOnly[T any] struct {
	graphql.Cache[T]
	max int
}

// Add keeps the entry when its key is short enough.
func (c smallOnly[T]) Add(ctx context.Context, key string, value T) {
	if len(key) <= c.max {
		c.Cache.Add(ctx, key, value)
	}
}
