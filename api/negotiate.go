package api

import (
	"encoding/json"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/vektah/gqlparser/v2/gqlerror"
)

// The media types of GraphQL responses.
const (
	// mediaJSON is the legacy GraphQL-over-HTTP response type: request
	// errors answer 200, since intermediaries and old clients read any
	// other status as a transport failure.
	mediaJSON = "application/json"
	// mediaGraphQLResponse is the GraphQL-over-HTTP spec's own type:
	// request errors answer 4xx with no data entry at all.
	mediaGraphQLResponse = "application/graphql-response+json"
	// mediaEventStream is graphql-sse (server-sent events).
	mediaEventStream = "text/event-stream"
	// mediaMultipartMixed carries Apollo's multipart subscriptions and
	// incremental delivery (@defer).
	mediaMultipartMixed = "multipart/mixed"
)

// mediaRange is one entry of an Accept header.
type mediaRange struct {
	typ    string // lower case, parameters removed
	params map[string]string
	q      float64
}

// accepted lists the media ranges of r's Accept header, most preferred
// first: by quality, then in the order the client wrote them. Ranges the
// client refuses (q=0) and unparsable ones are left out.
func accepted(r *http.Request) []mediaRange {
	var out []mediaRange
	for _, h := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(h, ",") {
			if strings.TrimSpace(part) == "" {
				continue
			}
			typ, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			q := 1.0
			if s, ok := params["q"]; ok {
				if q, err = strconv.ParseFloat(s, 64); err != nil {
					continue
				}
				delete(params, "q")
			}
			if q <= 0 {
				continue
			}
			out = append(out, mediaRange{typ: typ, params: params, q: q})
		}
	}
	slices.SortStableFunc(out, func(a, b mediaRange) int {
		switch {
		case a.q > b.q:
			return -1
		case a.q < b.q:
			return 1
		}
		return 0
	})
	return out
}

// preferred is the client's most preferred media type ("" when it sent no
// usable Accept header).
func preferred(r *http.Request) mediaRange {
	if ranges := accepted(r); len(ranges) > 0 {
		return ranges[0]
	}
	return mediaRange{}
}

// responseType is the JSON type a GraphQL response to r is written in:
// application/graphql-response+json when the client ranks it above
// application/json (or accepts only it), application/json otherwise,
// including when the client sent no Accept header or accepts anything,
// which is what clients written before the spec expect.
func responseType(r *http.Request) string {
	for _, m := range accepted(r) {
		switch m.typ {
		case mediaGraphQLResponse:
			return mediaGraphQLResponse
		case mediaJSON, "application/*", "*/*":
			return mediaJSON
		}
	}
	return mediaJSON
}

// wantsEventStream reports a request for server-sent events (graphql-sse):
// text/event-stream is the client's most preferred type, or the request
// carries graphql-sse's single-connection token. Clients that merely list
// it among JSON types (urql does) get JSON.
func wantsEventStream(r *http.Request) bool {
	if r.Method != http.MethodPost {
		return false
	}
	return preferred(r).typ == mediaEventStream || r.Header.Get("X-GraphQL-Event-Stream-Token") != ""
}

// wantsMultipartSubscription reports Apollo's multipart HTTP subscription
// protocol: Accept: multipart/mixed;subscriptionSpec="1.0".
func wantsMultipartSubscription(r *http.Request) bool {
	if r.Method != http.MethodPost {
		return false
	}
	return slices.ContainsFunc(accepted(r), func(m mediaRange) bool {
		return m.typ == mediaMultipartMixed && m.params["subscriptionspec"] != ""
	})
}

// wantsIncremental reports a client that prefers incremental delivery
// (@defer) over multipart/mixed to a single JSON response.
func wantsIncremental(r *http.Request) bool {
	if r.Method != http.MethodPost {
		return false
	}
	m := preferred(r)
	return m.typ == mediaMultipartMixed && m.params["subscriptionspec"] == ""
}

// isStream reports a request answered by a long-lived stream (server-sent
// events or a multipart subscription), which lives no longer than its
// token and is closed on shutdown, like a websocket.
func isStream(r *http.Request) bool {
	return wantsEventStream(r) || wantsMultipartSubscription(r)
}

// requestErrorBody is the body of a GraphQL request error: errors only,
// never a data entry, since the request did not run.
type requestErrorBody struct {
	Errors gqlerror.List `json:"errors"`
}

// WriteError answers a whole request with one GraphQL error, in the JSON
// type the client accepts (application/graphql-response+json or
// application/json), with extensions.code, so that clients which read
// error bodies (Apollo Client, graphql-sse's NetworkError response) can
// tell UNAUTHENTICATED from RATE_LIMITED. Every refusal made before
// GraphQL runs (authentication, methods, limits) is written here, and
// closes the connection of a request that has a body.
func WriteError(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	closeUnlessBodyless(w, r)
	writeRequestErrors(w, responseType(r), status, gqlerror.List{{
		Message: message, Extensions: map[string]any{"code": code},
	}})
}

// writeRequestErrors writes request errors with a status, in media type typ.
func writeRequestErrors(w http.ResponseWriter, typ string, status int, errs gqlerror.List) {
	w.Header().Set("Content-Type", typ)
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(requestErrorBody{Errors: errs})
}
