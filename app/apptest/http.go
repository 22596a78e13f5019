package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/narrate/narrate/auth"
	"github.com/narrate/narrate/config"
)

// User is a signed-in test user.
type User struct {
	ID    uuid.UUID
	Email string
	Token string
}

// NewUser creates an auth user and an hour's token for it; admin tokens
// carry app_metadata.role = admin.
func (s *Server) NewUser(email string, admin bool) User {
	s.t.Helper()
	var id uuid.UUID
	s.Scan(`INSERT INTO auth.users (email) VALUES ($1) RETURNING id`, []any{email}, &id)
	u := User{ID: id, Email: email}
	u.Token = MintToken(s.t, u, admin, time.Hour)
	return u
}

// MintToken signs a token for u valid for ttl.
func MintToken(t testing.TB, u User, admin bool, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.Mint(Secret, u.ID, u.Email, admin, config.DefaultAudience, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Exec runs SQL as the superuser, for fixtures.
func (s *Server) Exec(sql string, args ...any) {
	s.t.Helper()
	if _, err := s.Admin.Exec(context.Background(), sql, args...); err != nil {
		s.t.Fatalf("%s: %v", sql, err)
	}
}

// Scan runs a one-row query as the superuser and scans it into dst.
func (s *Server) Scan(sql string, args []any, dst ...any) {
	s.t.Helper()
	if err := s.Admin.QueryRow(context.Background(), sql, args...).Scan(dst...); err != nil {
		s.t.Fatalf("%s: %v", sql, err)
	}
}

// Count runs a SELECT count(*) ... as the superuser.
func (s *Server) Count(sql string, args ...any) int {
	s.t.Helper()
	var n int
	s.Scan(sql, args, &n)
	return n
}

// WantCount fails the test unless the count query sql counts want rows.
func (s *Server) WantCount(want int, sql string, args ...any) {
	s.t.Helper()
	if n := s.Count(sql, args...); n != want {
		s.t.Errorf("%s counts %d, want %d", sql, n, want)
	}
}

// IDs runs a query of one uuid column as the superuser, in its order.
func (s *Server) IDs(sql string, args ...any) []string {
	s.t.Helper()
	rows, err := s.Admin.Query(context.Background(), sql, args...)
	if err != nil {
		s.t.Fatalf("%s: %v", sql, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		s.t.Fatalf("%s: %v", sql, err)
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

// GQLError is one error of a GraphQL response.
type GQLError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// Response is a GraphQL response with its HTTP status.
type Response struct {
	Status int
	Header http.Header
	Raw    []byte
	Data   json.RawMessage `json:"data"`
	Errors []GQLError      `json:"errors"`
}

// Codes lists the errors' extensions.code values.
func (r Response) Codes() []string {
	var out []string
	for _, e := range r.Errors {
		c, _ := e.Extensions["code"].(string)
		out = append(out, c)
	}
	return out
}

// Decode unmarshals the data into v and fails the test on errors.
func (r Response) Decode(t testing.TB, v any) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("HTTP status %d, want 200: %s", r.Status, r.Raw)
	}
	if len(r.Errors) > 0 {
		t.Fatalf("unexpected errors: %+v", r.Errors)
	}
	if err := json.Unmarshal(r.Data, v); err != nil {
		t.Fatalf("decode %s: %v", r.Data, err)
	}
}

// WantCode fails the test unless the response has exactly one error, with
// the given code.
func (r Response) WantCode(t testing.TB, code string) {
	t.Helper()
	if got := r.Codes(); !slices.Equal(got, []string{code}) {
		t.Fatalf("error codes = %q, want [%s]; body %s", got, code, r.Raw)
	}
}

// WantError fails the test unless the response has exactly one error, with
// the given code and a message containing part.
func (r Response) WantError(t testing.TB, code, part string) {
	t.Helper()
	r.WantCode(t, code)
	if msg := r.Errors[0].Message; !strings.Contains(msg, part) {
		t.Errorf("message %q does not say %q", msg, part)
	}
}

// WantNoData fails the test unless the response has no data at all, as
// for a request refused before it ran.
func (r Response) WantNoData(t testing.TB) {
	t.Helper()
	if len(r.Data) != 0 && string(r.Data) != "null" {
		t.Errorf("data = %s, want none", r.Data)
	}
}

// WantNullData fails the test unless data is null or every field of it is.
func (r Response) WantNullData(t testing.TB) {
	t.Helper()
	if len(r.Data) == 0 || string(r.Data) == "null" {
		return
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(r.Data, &fields); err != nil {
		t.Fatalf("decode %s: %v", r.Data, err)
	}
	for name, v := range fields {
		if string(v) != "null" {
			t.Fatalf("data.%s = %s, want null", name, v)
		}
	}
}

// Post sends a GraphQL request as token ("" for anonymous).
func (s *Server) Post(token, query string, vars map[string]any) Response {
	s.t.Helper()
	return PostTo(s.t, s.URL, token, query, vars)
}

// PostTo sends a GraphQL request as token to the server at baseURL.
func PostTo(t testing.TB, baseURL, token, query string, vars map[string]any) Response {
	t.Helper()
	auth := ""
	if token != "" {
		auth = "Bearer " + token
	}
	return postAuth(t, baseURL, auth, query, vars)
}

// PostAuth sends a GraphQL request with a raw Authorization header.
func (s *Server) PostAuth(authorization, query string) Response {
	s.t.Helper()
	return postAuth(s.t, s.URL, authorization, query, nil)
}

func postAuth(t testing.TB, baseURL, authorization, query string, vars map[string]any) Response {
	t.Helper()
	return Send(t, graphQLRequest(t, baseURL, authorization, query, vars))
}

// graphQLRequest is a JSON POST of query to the server at baseURL, with a
// raw Authorization header ("" for none).
func graphQLRequest(t testing.TB, baseURL, authorization, query string, vars map[string]any) *http.Request {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, baseURL+"/graphql", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	return req
}

// Get sends a GraphQL request as a GET with its parameters in the URL.
func (s *Server) Get(token string, params url.Values) Response {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL+"/graphql?"+params.Encode(), nil)
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return Send(s.t, req)
}

// Send sends req and decodes a JSON response as GraphQL's.
func Send(t testing.TB, req *http.Request) Response {
	t.Helper()
	res, raw := roundTrip(t, req)
	r := Response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	if ct := res.Header.Get("Content-Type"); len(raw) > 0 &&
		(strings.HasPrefix(ct, "application/json") || strings.HasPrefix(ct, "application/graphql-response+json")) {
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("decode response %q: %v", raw, err)
		}
	}
	return r
}

// Send sends req (to this server or any) and decodes the response.
func (s *Server) Send(req *http.Request) Response {
	s.t.Helper()
	return Send(s.t, req)
}

// Do sends a plain HTTP request to the server and returns the response
// with its body.
func (s *Server) Do(method, path string, header http.Header) (*http.Response, string) {
	s.t.Helper()
	return Fetch(s.t, method, s.URL+path, header)
}

// Fetch sends a plain HTTP request to url, which may be any server's, and
// returns the response with its body.
func Fetch(t testing.TB, method, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, raw := roundTrip(t, req)
	return res, string(raw)
}

// roundTrip sends req and reads the whole response, which it closes.
func roundTrip(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, raw
}

// OpenEventStream sends a subscription as a server-sent event stream
// (graphql-sse's distinct connections mode) and returns the response,
// whose body is the stream; the caller closes it.
func OpenEventStream(t testing.TB, baseURL, token, query string, vars map[string]any) *http.Response {
	t.Helper()
	authorization := ""
	if token != "" {
		authorization = "Bearer " + token
	}
	req := graphQLRequest(t, baseURL, authorization, query, vars)
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
