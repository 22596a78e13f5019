package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"iter"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/narrate/narrate/auth"
	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/graph"
)

// The Accept headers stock clients send by default.
const (
	acceptURQL           = "application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed"
	acceptApollo         = "application/graphql-response+json,application/json;q=0.9"
	acceptApolloSub      = "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/graphql-response+json,application/json;q=0.9"
	acceptGraphQLSSE     = "text/event-stream"
	mediaGraphQLResponse = "application/graphql-response+json"
)

// rawPost sends a JSON GraphQL request with the given headers and returns
// the response with its body unread.
func rawPost(t testing.TB, url string, header map[string]string, query string, vars map[string]any) *http.Response {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, url+"/graphql", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

// TestResponseTypeFollowsAccept: queries, mutations and refusals come back
// as one JSON document in the type the client prefers; only a client that
// asks for server-sent events first gets a stream.
func TestResponseTypeFollowsAccept(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.story("The Fox", "the-fox")
	alice := e.NewUser("alice@example.com", false)
	tests := []struct {
		name, accept, query, token string
		status                     int
		contentType                string
		code                       string
	}{
		{"urql query", acceptURQL, `{ stories { nodes { title } } }`, "", 200, mediaGraphQLResponse, ""},
		{"urql mutation", acceptURQL, `mutation { updateProfile(input: {displayName: "A"}) { displayName } }`, alice.Token, 200, mediaGraphQLResponse, ""},
		{"urql validation error", acceptURQL, `{ nope }`, "", 400, mediaGraphQLResponse, "GRAPHQL_VALIDATION_FAILED"},
		{"no Accept", "", `{ stories { nodes { title } } }`, "", 200, "application/json", ""},
		{"any", "*/*", `{ stories { nodes { title } } }`, "", 200, "application/json", ""},
		{"json first", "application/json, text/event-stream", `{ stories { nodes { title } } }`, "", 200, "application/json", ""},
		{"apollo bad token", acceptApollo, `{ stories { nodes { title } } }`, "garbage", 401, mediaGraphQLResponse, graph.CodeUnauthenticated},
		{"json bad token", "application/json", `{ stories { nodes { title } } }`, "garbage", 401, "application/json", graph.CodeUnauthenticated},
		{"graphql-sse bad token", acceptGraphQLSSE, `{ stories { nodes { title } } }`, "garbage", 401, "application/json", graph.CodeUnauthenticated},
		{"subscription as JSON", acceptURQL, `subscription { viewerGenerations { id } }`, alice.Token, 400, mediaGraphQLResponse, graph.CodeBadUserInput},
		{"no query", "application/json", ``, "", 400, "application/json", graph.CodeBadUserInput},
		{"subscription as legacy JSON", "", `subscription { viewerGenerations { id } }`, alice.Token, 400, "application/json", graph.CodeBadUserInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := map[string]string{"Accept": tt.accept}
			if tt.token != "" {
				h["Authorization"] = "Bearer " + tt.token
			}
			res := rawPost(t, e.URL, h, tt.query, nil)
			raw, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.status {
				t.Errorf("HTTP %d, want %d: %s", res.StatusCode, tt.status, raw)
			}
			if ct := res.Header.Get("Content-Type"); ct != tt.contentType {
				t.Errorf("Content-Type %q, want %q", ct, tt.contentType)
			}
			var body struct {
				Data   json.RawMessage
				Errors []gqlError
			}
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatalf("body %q is not one JSON document: %v", raw, err)
			}
			r := response{Data: body.Data, Errors: body.Errors, Raw: raw}
			if tt.code == "" {
				if len(body.Errors) > 0 || len(body.Data) == 0 {
					t.Errorf("body %s, want data and no errors", raw)
				}
				return
			}
			r.WantCode(t, tt.code)
			if body.Data != nil {
				t.Errorf("refused request has a data entry: %s", raw)
			}
		})
	}
}

// TestResponseLength: a JSON response declares its length, so net/http
// sends a large one as it is rather than in chunks.
func TestResponseLength(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Exec(`INSERT INTO stories (title, slug, content) VALUES ('Long', 'long', repeat('x', 10000))`)
	res := rawPost(t, e.URL, nil, `{ story(slug: "long") { content } }`, nil)
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || len(raw) < 10000 {
		t.Fatalf("HTTP %d, %d bytes", res.StatusCode, len(raw))
	}
	if res.ContentLength != int64(len(raw)) || len(res.TransferEncoding) > 0 {
		t.Errorf("Content-Length %d, Transfer-Encoding %v for a body of %d bytes", res.ContentLength, res.TransferEncoding, len(raw))
	}
}

// TestUnsupportedRequests: what no transport takes is a GraphQL error in
// the accepted type, with the status that says why.
func TestUnsupportedRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		method, contentType string
		status              int
	}{
		{http.MethodPost, "text/plain", http.StatusUnsupportedMediaType},
		{http.MethodPost, "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{http.MethodPut, "application/json", http.StatusMethodNotAllowed},
		{http.MethodDelete, "", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.contentType, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest(tt.method, e.URL+"/graphql", strings.NewReader(`{"query":"{ __typename }"}`))
			req.Header.Set("Content-Type", tt.contentType)
			req.Header.Set("Accept", acceptApollo)
			r := e.on(t).Send(req)
			if r.Status != tt.status || r.Header.Get("Content-Type") != mediaGraphQLResponse {
				t.Errorf("HTTP %d %s, want %d %s", r.Status, r.Header.Get("Content-Type"), tt.status, mediaGraphQLResponse)
			}
			r.WantCode(t, graph.CodeBadUserInput)
		})
	}
}

// TestSubscriptionOverPlainJSONSaysHow: the 400 to a subscription sent as
// a plain request names the ways that work.
func TestSubscriptionOverPlainJSONSaysHow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.NewUser("alice@example.com", false)
	res := rawPost(t, e.URL, map[string]string{"Authorization": "Bearer " + alice.Token},
		`subscription { viewerGenerations { id } }`, nil)
	raw, _ := io.ReadAll(res.Body)
	for _, want := range []string{"websocket", "text/event-stream", `multipart/mixed;subscriptionSpec=\"1.0\"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("error %s does not mention %s", raw, want)
		}
	}
}

// TestMultipartSubscription follows a generation over Apollo's multipart
// HTTP subscription protocol, as Apollo Client's HttpLink sends it.
func TestMultipartSubscription(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, gen := e.aliceWithGeneration(generation.Pending)

	res := rawPost(t, e.URL, map[string]string{"Accept": acceptApolloSub, "Authorization": "Bearer " + alice.Token},
		progressQuery, map[string]any{"id": gen})
	if res.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(res.Body)
		t.Fatalf("HTTP %d: %s", res.StatusCode, raw)
	}
	mediaType, params, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/mixed" || params["boundary"] != "graphql" || params["subscriptionspec"] != "1.0" {
		t.Fatalf("Content-Type %q", res.Header.Get("Content-Type"))
	}

	parts := make(chan string, 16)
	go func() {
		defer close(parts)
		for raw := range multipartParts(res.Body, params["boundary"]) {
			var msg struct {
				Payload *struct {
					Data struct{ GenerationProgress progressEvent }
				}
			}
			if err := json.Unmarshal([]byte(raw), &msg); err != nil {
				parts <- "bad part " + raw
				return
			}
			if msg.Payload == nil {
				continue // a heartbeat
			}
			parts <- msg.Payload.Data.GenerationProgress.String()
		}
		parts <- "end"
	}()
	e.streamToCompletion(t, gen, parts, "part", "end")
}

// multipartParts yields the JSON bodies of a multipart/mixed stream as
// soon as each part's closing delimiter arrives, the way Apollo Client
// reads them (mime/multipart waits for the bytes after a delimiter, which
// for a live stream come only with the next part). It ends at the closing
// delimiter; a body that ends before it yields "premature end".
func multipartParts(body io.Reader, boundary string) iter.Seq[string] {
	return func(yield func(string) bool) {
		delim := "\r\n--" + boundary
		var buf []byte
		chunk := make([]byte, 4096)
		seen := false
		for {
			for {
				i := bytes.Index(buf, []byte(delim))
				if i < 0 || (seen && bytes.HasPrefix(buf, []byte("--"))) {
					break
				}
				part := buf[:i]
				buf = buf[i+len(delim):]
				if seen {
					_, content, ok := bytes.Cut(part, []byte("\r\n\r\n"))
					if !ok || !yield(string(content)) {
						return
					}
				}
				seen = true
			}
			if seen && bytes.HasPrefix(buf, []byte("--")) {
				return
			}
			n, err := body.Read(chunk)
			buf = append(buf, chunk[:n]...)
			if err != nil && n == 0 {
				yield("premature end")
				return
			}
		}
	}
}

// TestMultipartSubscriptionErrors: a subscription to someone else's
// generation ends with its NOT_FOUND error in a payload, readable by the
// client, and a query sent with the subscription Accept header gets JSON.
func TestMultipartSubscriptionErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, gen := e.aliceWithGeneration(generation.Pending)
	bob := e.NewUser("bob@example.com", false)

	res := rawPost(t, e.URL, map[string]string{"Accept": acceptApolloSub, "Authorization": "Bearer " + bob.Token},
		progressQuery, map[string]any{"id": gen})
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !strings.Contains(string(raw), `"payload":{"errors":[`) ||
		!strings.Contains(string(raw), graph.CodeNotFound) || !strings.HasSuffix(string(raw), "--graphql--\r\n") {
		t.Errorf("HTTP %d, body %q: want a payload with NOT_FOUND and the closing boundary", res.StatusCode, raw)
	}

	res = rawPost(t, e.URL, map[string]string{"Accept": acceptApolloSub}, `{ stories { nodes { title } } }`, nil)
	raw, _ = io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != mediaGraphQLResponse || !strings.Contains(string(raw), `"stories"`) {
		t.Errorf("query: HTTP %d, %s, %s", res.StatusCode, res.Header.Get("Content-Type"), raw)
	}
}

// TestDeferIsIncrementalOrInline: a client preferring multipart/mixed gets
// @defer incrementally; a JSON client gets the deferred fields inline.
func TestDeferIsIncrementalOrInline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.story("The Fox", "the-fox")
	// Only fields with resolvers are deferred; myGenerations has one.
	const query = `{ stories { nodes { title ... @defer(label: "more") { myGenerations(first: 1) { nodes { id } } } } } }`

	res := rawPost(t, e.URL, map[string]string{"Accept": "multipart/mixed;deferSpec=20220824, application/json"}, query, nil)
	raw, _ := io.ReadAll(res.Body)
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/mixed") {
		t.Fatalf("Content-Type %q, want multipart/mixed: %s", ct, raw)
	}
	if !strings.Contains(string(raw), `"hasNext":true`) || !strings.Contains(string(raw), `"incremental":[{"data":{"myGenerations":{"nodes":[]}}`) {
		t.Errorf("body %q: want an initial part and an incremental one", raw)
	}

	r := e.postAccept("application/json", "", query, nil)
	var data struct {
		Stories struct {
			Nodes []struct {
				Title         string
				MyGenerations *struct{ Nodes []any }
			}
		}
	}
	r.Decode(t, &data)
	if len(data.Stories.Nodes) != 1 || data.Stories.Nodes[0].MyGenerations == nil {
		t.Errorf("inline @defer: %s", r.Raw)
	}
	if strings.Contains(string(r.Raw), "hasNext") {
		t.Errorf("inline response %s has hasNext", r.Raw)
	}
}

// TestUploadErrorsFollowAccept: multipart (upload) requests answer in the
// type the client accepts, and with 400, not 422, when they cannot run.
func TestUploadErrorsFollowAccept(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.NewUser("alice@example.com", false)
	tests := []struct {
		name, operations, accept, contentType string
		status                                int
	}{
		{"invalid document", `{"query":"{ nope }"}`, acceptApollo, mediaGraphQLResponse, http.StatusBadRequest},
		{"invalid document, JSON client", `{"query":"{ nope }"}`, "application/json", "application/json", http.StatusBadRequest},
		{"operations not JSON", `{`, acceptApollo, mediaGraphQLResponse, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var body bytes.Buffer
			w := multipart.NewWriter(&body)
			_ = w.WriteField("operations", tt.operations)
			_ = w.WriteField("map", `{}`)
			_ = w.Close()
			req, _ := http.NewRequest(http.MethodPost, e.URL+"/graphql", &body)
			req.Header.Set("Content-Type", w.FormDataContentType())
			req.Header.Set("Accept", tt.accept)
			req.Header.Set("Authorization", "Bearer "+alice.Token)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.status || res.Header.Get("Content-Type") != tt.contentType {
				t.Errorf("HTTP %d %s, want %d %s: %s", res.StatusCode, res.Header.Get("Content-Type"), tt.status, tt.contentType, raw)
			}
		})
	}
}

// TestMultipartSubscriptionEndsAtTokenExpiry: like a websocket, a
// multipart subscription lives no longer than its token, and says why.
func TestMultipartSubscriptionEndsAtTokenExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, gen := e.aliceWithGeneration(generation.Pending)
	short, err := auth.Mint(testSecret, alice.ID, alice.Email, false, "authenticated", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	res := rawPost(t, e.URL, map[string]string{"Accept": acceptApolloSub, "Authorization": "Bearer " + short},
		progressQuery, map[string]any{"id": gen})
	parts := make(chan string, 16)
	go func() {
		defer close(parts)
		for p := range multipartParts(res.Body, "graphql") {
			if p != "{}" { // heartbeats
				parts <- p
			}
		}
		parts <- "end"
	}()
	if p := receive(t, parts, "part"); !strings.Contains(p, "PENDING") {
		t.Fatalf("first part %s, want the snapshot", p)
	}
	if p := receive(t, parts, "part"); !strings.HasPrefix(p, `{"payload":null,"errors":[`) || !strings.Contains(p, graph.CodeUnauthenticated) {
		t.Fatalf("part %s, want a transport error saying UNAUTHENTICATED", p)
	}
	if p := receive(t, parts, "part"); p != "end" {
		t.Fatalf("got %s, want the closing boundary", p)
	}
}

// TestRefusalsDoNotWaitForTheBody: a request refused before its body is
// read is answered at once, its body unfinished, and its connection
// closed; net/http would otherwise read the body first.
func TestRefusalsDoNotWaitForTheBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		name, token, contentType string
		status                   int
	}{
		{"bad token", "not-a-token", "application/json", http.StatusUnauthorized},
		{"unsupported type", "", "text/plain", http.StatusUnsupportedMediaType},
		{"anonymous upload", "", "multipart/form-data; boundary=b", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hold(t, e.URL, tc.token, tc.contentType, "{").wantAnswered(t, tc.status)
		})
	}
}
