package api

import (
	"net/http"
	"strconv"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/narrate/narrate/graph"
)

// writeRateLimited answers 429 with RATE_LIMITED, a Retry-After header and
// extensions.retryAfter, both in seconds, in the type the client accepts.
func writeRateLimited(w http.ResponseWriter, r *http.Request, message string, retryAfter int) {
	retryAfter = max(retryAfter, 1)
	w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	closeUnlessBodyless(w, r)
	writeRequestErrors(w, responseType(r), http.StatusTooManyRequests, gqlerror.List{{
		Message: message, Extensions: map[string]any{"code": graph.CodeRateLimited, "retryAfter": retryAfter},
	}})
}

// closeUnlessBodyless makes a refusal close the connection when the
// request has a body, which a refusal leaves unread. Otherwise net/http
// reads up to 256 KB of that body, to keep the connection, before it sends
// the refusal: a client that sends its body slowly (or never) would hold
// the answer, and a goroutine, for as long as it likes, and a request over
// a concurrency cap would wait on the very thing the cap refused.
func closeUnlessBodyless(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
	}
}
