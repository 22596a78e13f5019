package api

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/narrate/narrate/graph"
)

// writeGraphQLError answers a whole request with one GraphQL error. Every
// refusal the HTTP layer makes (authentication, limits, malformed bodies)
// is written here, so the response format is decided in one place.
func writeGraphQLError(w http.ResponseWriter, status int, code, message string) {
	writeGraphQLErrorExt(w, status, code, message, nil)
}

// writeRateLimited answers 429 with RATE_LIMITED, a Retry-After header and
// extensions.retryAfter, both in seconds.
func writeRateLimited(w http.ResponseWriter, message string, retryAfter int) {
	retryAfter = max(retryAfter, 1)
	w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	writeGraphQLErrorExt(w, http.StatusTooManyRequests, graph.CodeRateLimited, message, map[string]any{"retryAfter": retryAfter})
}

// writeGraphQLErrorExt is writeGraphQLError with more extensions beside
// the code.
func writeGraphQLErrorExt(w http.ResponseWriter, status int, code, message string, ext map[string]any) {
	extensions := map[string]any{"code": code}
	for k, v := range ext {
		extensions[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]any{{"message": message, "extensions": extensions}},
	})
}
