package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/narrate/narrate/graph"
)

// errSubscriptionNeedsStream is the answer to a subscription sent as a
// plain request: a single JSON response would give one event and then a
// silent end, which no client can tell from a completed subscription.
const errSubscriptionNeedsStream = `subscriptions need a stream: a websocket (graphql-transport-ws or graphql-ws), ` +
	`Accept: text/event-stream (graphql-sse), or Accept: multipart/mixed;subscriptionSpec="1.0" (Apollo Client's HttpLink)`

// jsonTransport is GraphQL over HTTP as the GraphQL-over-HTTP spec has it,
// for POST with a JSON body and for GET:
//   - the response is application/graphql-response+json when the client
//     prefers it, application/json otherwise;
//   - a request error (a body that does not decode, a document that does
//     not parse or validate, bad variables) answers 200 to application/json
//     clients and 400 to application/graphql-response+json ones, with no
//     data entry either way, since nothing ran;
//   - GET carries queries only (405 with Allow: POST otherwise);
//   - a subscription is refused with 400, since one response cannot
//     carry a stream;
//   - @defer is delivered inline: the deferred parts are merged into the
//     one response.
//
// gqlgen's own POST and GET transports answer 422 to application/json
// clients and add "data": null to request errors, which the spec's
// audits (graphql-http) flag.
type jsonTransport struct{}

var _ graphql.Transport = jsonTransport{}

func (jsonTransport) Supports(r *http.Request) bool {
	if isWebsocket(r) {
		return false
	}
	switch r.Method {
	case http.MethodGet:
		return true
	case http.MethodPost:
		mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		return err == nil && mediaType == mediaJSON
	}
	return false
}

func (jsonTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if rc, ok := prepare(w, r, exec); ok {
		respond(w, r, exec, rc)
	}
}

// prepare reads the request's parameters and makes its operation
// context; on a request error it answers and returns false.
func prepare(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) (*graphql.OperationContext, bool) {
	ctx := r.Context()
	typ := responseType(r)
	start := graphql.Now()
	params, status, err := readParams(r)
	if err != nil {
		writeRequestErrors(w, typ, status, gqlerror.List{badRequest(err.Error())})
		return nil, false
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}

	rc, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil {
		status := http.StatusOK
		if typ == mediaGraphQLResponse && errcode.GetErrorKind(errs) == errcode.KindProtocol {
			status = http.StatusBadRequest
		}
		resp := exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs)
		writeRequestErrors(w, typ, status, resp.Errors)
		return nil, false
	}
	return rc, true
}

// respond runs a query or mutation and writes its one JSON response.
func respond(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, rc *graphql.OperationContext) {
	switch op := rc.Operation.Operation; {
	case r.Method == http.MethodGet && op != ast.Query:
		// GET must be safe: browsers, caches and prefetchers may send it
		// at will, so it never changes state.
		w.Header().Set("Allow", http.MethodPost)
		WriteError(w, r, http.StatusMethodNotAllowed, graph.CodeBadUserInput,
			"GET requests may only carry queries; send mutations with POST")
		return
	case op == ast.Subscription:
		WriteError(w, r, http.StatusBadRequest, graph.CodeBadUserInput, errSubscriptionNeedsStream)
		return
	}

	responses, ctx := exec.DispatchOperation(r.Context(), rc)
	b, err := encodeResponse(inline(ctx, responses))
	if err != nil {
		WriteError(w, r, http.StatusInternalServerError, graph.CodeInternal, "could not encode the response")
		return
	}
	w.Header().Set("Content-Type", responseType(r))
	// With its length known, net/http sends the body as it is, not in
	// chunks: a write to the socket fewer per response of more than 2 KB.
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

// badRequest is a request error made before GraphQL runs.
func badRequest(message string) *gqlerror.Error {
	return &gqlerror.Error{Message: message, Extensions: map[string]any{"code": graph.CodeBadUserInput}}
}

// readParams reads the request's GraphQL parameters from its JSON body
// (POST) or its URL (GET). Its errors come with the status to answer.
func readParams(r *http.Request) (*graphql.RawParams, int, error) {
	params := &graphql.RawParams{}
	if r.Method == http.MethodPost {
		if err := decodeJSON(r.Body, params); err != nil {
			if maxErr := (*http.MaxBytesError)(nil); errors.As(err, &maxErr) {
				return nil, http.StatusRequestEntityTooLarge, errors.New("the request body is too large")
			}
			return nil, http.StatusBadRequest, errors.New("the request body is not a JSON GraphQL request: " + err.Error())
		}
		return checkParams(params)
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, http.StatusBadRequest, errors.New("the query string does not parse")
	}
	params.Query = q.Get("query")
	params.OperationName = q.Get("operationName")
	for name, dst := range map[string]*map[string]any{"variables": &params.Variables, "extensions": &params.Extensions} {
		if v := q.Get(name); v != "" {
			if err := decodeJSON(strings.NewReader(v), dst); err != nil {
				return nil, http.StatusBadRequest, errors.New(name + " is not a JSON object")
			}
		}
	}
	return checkParams(params)
}

// checkParams refuses a request with no document: neither a query nor a
// persisted query's hash.
func checkParams(params *graphql.RawParams) (*graphql.RawParams, int, error) {
	if params.Query == "" && params.Extensions["persistedQuery"] == nil {
		return nil, http.StatusBadRequest, errors.New("the request has no query")
	}
	return params, 0, nil
}

// decodeJSON decodes one JSON value, keeping numbers exact as gqlgen does,
// and refuses trailing data.
func decodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// encodeResponse writes a response as JSON. The executor's data is
// already compact JSON: json.Marshal would scan it again to compact it (a
// RawMessage is a Marshaler), which cost 4 % of a listing's CPU, so it is
// copied as it is and only the rest goes through encoding/json.
func encodeResponse(r *graphql.Response) ([]byte, error) {
	if r == nil || r.Label != "" || r.Path != nil || r.HasNext != nil {
		return json.Marshal(r)
	}
	b := make([]byte, 0, len(r.Data)+32)
	b = append(b, '{')
	if len(r.Errors) > 0 {
		errs, err := json.Marshal(r.Errors)
		if err != nil {
			return nil, err
		}
		b = append(append(append(b, `"errors":`...), errs...), ',')
	}
	b = append(b, `"data":`...)
	if len(r.Data) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, r.Data...)
	}
	if len(r.Extensions) > 0 {
		ext, err := json.Marshal(r.Extensions)
		if err != nil {
			return nil, err
		}
		b = append(append(b, `,"extensions":`...), ext...)
	}
	return append(b, '}'), nil
}

// inline reads every response of an operation and, when @defer split it
// into an initial response and deferred parts, merges the parts into the
// initial data: the response a client that cannot read incremental
// delivery expects.
func inline(ctx context.Context, responses graphql.ResponseHandler) *graphql.Response {
	first := responses(ctx)
	if first == nil || first.HasNext == nil {
		return first
	}
	var data any
	if err := json.Unmarshal(first.Data, &data); err != nil {
		return first
	}
	for next := responses(ctx); next != nil; next = responses(ctx) {
		first.Errors = append(first.Errors, next.Errors...)
		var part map[string]any
		if json.Unmarshal(next.Data, &part) == nil {
			mergeAt(data, next.Path, part)
		}
	}
	merged, err := json.Marshal(data)
	if err != nil {
		return first
	}
	first.Data, first.HasNext = merged, nil
	return first
}

// mergeAt copies the fields of part into the object found at path in data.
func mergeAt(data any, path ast.Path, part map[string]any) {
	for _, el := range path {
		switch el := el.(type) {
		case ast.PathName:
			m, ok := data.(map[string]any)
			if !ok {
				return
			}
			data = m[string(el)]
		case ast.PathIndex:
			l, ok := data.([]any)
			if !ok || int(el) >= len(l) {
				return
			}
			data = l[el]
		}
	}
	if m, ok := data.(map[string]any); ok {
		for k, v := range part {
			m[k] = v
		}
	}
}

// sseTransport is gqlgen's graphql-sse transport (distinct connections
// mode), chosen only when the client asks for server-sent events first:
// gqlgen's own test (any mention of text/event-stream) would turn every
// urql query and mutation into a stream.
type sseTransport struct{ transport.SSE }

func (t sseTransport) Supports(r *http.Request) bool {
	return wantsEventStream(r) && t.SSE.Supports(r)
}

// incremental is gqlgen's multipart/mixed transport, which delivers
// @defer incrementally, chosen when the client prefers multipart/mixed
// (Apollo Client sends "multipart/mixed;deferSpec=20220824" first for an
// operation with @defer). urql lists multipart/mixed last and gets JSON.
type incremental struct{ transport.MultipartMixed }

func (t incremental) Supports(r *http.Request) bool {
	return wantsIncremental(r) && t.MultipartMixed.Supports(r)
}

var (
	_ graphql.Transport = sseTransport{}
	_ graphql.Transport = incremental{}
)

// unsupported answers what no other transport takes, last: a POST of
// another content type (415), or another method (405), as GraphQL errors
// in the accepted type rather than gqlgen's bare "transport not supported".
type unsupported struct{}

func (unsupported) Supports(*http.Request) bool { return true }

func (unsupported) Do(w http.ResponseWriter, r *http.Request, _ graphql.GraphExecutor) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		WriteError(w, r, http.StatusMethodNotAllowed, graph.CodeBadUserInput, "GraphQL requests are GET or POST")
		return
	}
	WriteError(w, r, http.StatusUnsupportedMediaType, graph.CodeBadUserInput,
		"send the request as application/json (or multipart/form-data with files)")
}
