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
	writeRequestErrors(w, responseType(r), http.StatusTooManyRequests, gqlerror.List{{
		Message: message, Extensions: map[string]any{"code": graph.CodeRateLimited, "retryAfter": retryAfter},
	}})
}
