package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/narrate/narrate/api"
	"github.com/narrate/narrate/auth"
	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/graph"
	"github.com/narrate/narrate/limit"
	"github.com/narrate/narrate/migrations"
	"github.com/narrate/narrate/voice"
)

func TestMain(m *testing.M) { dbtest.Main(m, migrations.Up) }

// testSecret signs the tokens of these tests.
var testSecret = []byte("test-secret-test-secret-test-secret")

// audioBase prefixes the signed audio URLs the test server makes, so tests
// can tell a signed URL from a stored key.
const audioBase = "https://audio.test/signed/"

// env is one test's server on its own fresh database.
type env struct {
	t testing.TB
	// URL is the server's base URL.
	URL string
	// DB is the test's database.
	DB *dbtest.DB
	// Admin is a superuser pool on the test's database, for fixtures and
	// for checking what really happened, bypassing row-level security.
	Admin *pgxpool.Pool
	// App is the server's own pool (the non-superuser login).
	App *db.DB
	// Statements counts the SQL statements the server ran, not counting
	// the transaction control and session settings around them.
	Statements *atomic.Int64
}

// envConfig holds what an envOption may change about a test server.
type envConfig struct {
	verifier    *auth.Verifier
	corsOrigins []string
	registry    *prometheus.Registry
	voice       voice.Provider
	limits      *limit.Settings
	database    *dbtest.DB
}

// sharing starts the server on other's database instead of a fresh one:
// a second instance of the service, as in a deployment of several.
func sharing(other *env) envOption {
	return func(c *envConfig) { c.database = other.DB }
}

// envOption changes one aspect of a test server.
type envOption func(*envConfig)

// withVerifier replaces the default HS256 verifier of testSecret.
func withVerifier(v *auth.Verifier) envOption {
	return func(c *envConfig) { c.verifier = v }
}

// withCORSOrigins restricts the allowed browser origins.
func withCORSOrigins(origins ...string) envOption {
	return func(c *envConfig) { c.corsOrigins = origins }
}

// withVoice gives the voice-sample mutations a provider.
func withVoice(p voice.Provider) envOption {
	return func(c *envConfig) { c.voice = p }
}

// withRegistry makes the server register its metrics in reg.
func withRegistry(reg *prometheus.Registry) envOption {
	return func(c *envConfig) { c.registry = reg }
}

// on returns the env reporting to t, for use inside t's own goroutine: a
// subtest must not fail its parent with Fatal.
func (e *env) on(t testing.TB) *env {
	c := *e
	c.t = t
	return &c
}

// newEnv starts a server on a fresh database.
func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	var cfg envConfig
	for _, o := range opts {
		o(&cfg)
	}
	database := cfg.database
	if database == nil {
		database = dbtest.New(t)
	}

	counter := &statementCounter{}
	app, err := db.Open(ctx, database.AppURL, db.Options{Tracer: counter})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(app.Close)
	admin, err := pgxpool.New(ctx, database.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)

	if cfg.verifier == nil {
		cfg.verifier, err = auth.NewVerifier(ctx, auth.Config{Secret: testSecret})
		if err != nil {
			t.Fatal(err)
		}
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewUnstartedServer(api.New(api.Options{
		DB:       app,
		Verifier: cfg.verifier,
		Logger:   logger,
		Resolver: &graph.Resolver{DB: app, Logger: logger, Voice: cfg.voice, SignAudio: func(key string) string {
			return audioBase + key
		}},
		Ready:       app.Ping,
		CORSOrigins: cfg.corsOrigins,
		Registry:    cfg.registry,
		Limits:      cfg.limits,
	}))
	limits := limit.Defaults()
	if cfg.limits != nil {
		limits = *cfg.limits
	}
	api.ConfigureServer(srv.Config, limits)
	srv.Start()
	t.Cleanup(srv.Close)
	return &env{t: t, URL: srv.URL, DB: database, Admin: admin, App: app, Statements: &counter.n}
}

// statementCounter counts statements, leaving out BEGIN, COMMIT,
// ROLLBACK and the session settings, which every transaction has.
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.count(d.SQL)
	return ctx
}
func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *statementCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (c *statementCounter) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	c.count(d.SQL)
}
func (c *statementCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (c *statementCounter) count(sql string) {
	s := strings.ToUpper(strings.TrimSpace(sql))
	if s == "BEGIN" || s == "COMMIT" || s == "ROLLBACK" || strings.HasPrefix(s, "SELECT SET_CONFIG('ROLE'") {
		return
	}
	c.n.Add(1)
}

// user is a signed-in test user.
type user struct {
	ID    uuid.UUID
	Email string
	Token string
}

// newUser creates an auth user and a token for it.
func (e *env) newUser(email string, admin bool) user {
	e.t.Helper()
	var id uuid.UUID
	e.scan(`INSERT INTO auth.users (email) VALUES ($1) RETURNING id`, []any{email}, &id)
	tok, err := auth.Mint(testSecret, id, email, admin, "authenticated", time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return user{ID: id, Email: email, Token: tok}
}

// exec runs SQL as the superuser, for fixtures.
func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.Admin.Exec(context.Background(), sql, args...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

// scan runs a one-row query as the superuser and scans it into dst.
func (e *env) scan(sql string, args []any, dst ...any) {
	e.t.Helper()
	if err := e.Admin.QueryRow(context.Background(), sql, args...).Scan(dst...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

// count runs a SELECT count(*) ... as the superuser.
func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	e.scan(sql, args, &n)
	return n
}

// ids runs a query of one uuid column as the superuser, in its order.
func (e *env) ids(sql string, args ...any) []string {
	e.t.Helper()
	rows, err := e.Admin.Query(context.Background(), sql, args...)
	if err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

// story inserts a story and returns its id.
func (e *env) story(title, slug string) uuid.UUID {
	e.t.Helper()
	var id uuid.UUID
	e.scan(`INSERT INTO stories (title, slug, content) VALUES ($1, $2, 'Once upon a time.') RETURNING id`, []any{title, slug}, &id)
	return id
}

// verifiedVoice gives u a verified voice sample.
func (e *env) verifiedVoice(u user) {
	e.t.Helper()
	e.exec(`INSERT INTO voice_samples (user_id, elevenlabs_voice_id, verification_phrase, verified)
		VALUES ($1::uuid, 'voice-'||$1::uuid::text, 'apple river candle', true)`, u.ID)
}

// generation inserts a generation of story for u and returns its id.
func (e *env) generation(u user, story uuid.UUID, status db.Status) uuid.UUID {
	e.t.Helper()
	var id uuid.UUID
	e.scan(`INSERT INTO story_generations (user_id, story_id, status) VALUES ($1, $2, $3) RETURNING id`,
		[]any{u.ID, story, string(status)}, &id)
	return id
}

// generationAt inserts a generation created at a chosen time.
func (e *env) generationAt(u user, story uuid.UUID, status db.Status, createdAt time.Time) uuid.UUID {
	e.t.Helper()
	var id uuid.UUID
	e.scan(`INSERT INTO story_generations (user_id, story_id, status, created_at) VALUES ($1, $2, $3, $4) RETURNING id`,
		[]any{u.ID, story, string(status), createdAt}, &id)
	return id
}

// logAt inserts a log event of a generation at a chosen time.
func (e *env) logAt(generation uuid.UUID, event string, at time.Time) uuid.UUID {
	e.t.Helper()
	var id uuid.UUID
	e.scan(`INSERT INTO generation_logs (generation_id, event, occurred_at) VALUES ($1, $2, $3) RETURNING id`,
		[]any{generation, event, at}, &id)
	return id
}

// genState is what the database holds about a generation, for checking
// that a refused mutation changed nothing.
type genState struct {
	Status    string
	Progress  int
	UpdatedAt time.Time
	Logs      int
}

func (e *env) genState(id uuid.UUID) genState {
	e.t.Helper()
	var s genState
	e.scan(`SELECT status::text, progress, updated_at,
		(SELECT count(*) FROM generation_logs WHERE generation_id = g.id)
		FROM story_generations g WHERE id = $1`, []any{id}, &s.Status, &s.Progress, &s.UpdatedAt, &s.Logs)
	return s
}

// gqlError is one error of a GraphQL response.
type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// response is a GraphQL response with its HTTP status.
type response struct {
	Status int
	Header http.Header
	Raw    []byte
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
}

// codes lists the errors' extensions.code values.
func (r response) codes() []string {
	var out []string
	for _, e := range r.Errors {
		c, _ := e.Extensions["code"].(string)
		out = append(out, c)
	}
	return out
}

// decode unmarshals the data into v and fails the test on errors.
func (r response) decode(t testing.TB, v any) {
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

// wantCode fails the test unless the response has exactly one error, with
// the given code.
func (r response) wantCode(t testing.TB, code string) {
	t.Helper()
	if got := r.codes(); !slices.Equal(got, []string{code}) {
		t.Fatalf("error codes = %q, want [%s]; body %s", got, code, r.Raw)
	}
}

// wantError fails the test unless the response has exactly one error, with
// the given code and a message containing part.
func (r response) wantError(t testing.TB, code, part string) {
	t.Helper()
	r.wantCode(t, code)
	if msg := r.Errors[0].Message; !strings.Contains(msg, part) {
		t.Errorf("message %q does not say %q", msg, part)
	}
}

// wantNoData fails the test unless the response has no data at all, as
// for a request refused before it ran.
func (r response) wantNoData(t testing.TB) {
	t.Helper()
	if len(r.Data) != 0 && string(r.Data) != "null" {
		t.Errorf("data = %s, want none", r.Data)
	}
}

// wantNullData fails the test unless data is null or every field of it is.
func (r response) wantNullData(t testing.TB) {
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

// post sends a GraphQL request as token ("" for anonymous).
func (e *env) post(token, query string, vars map[string]any) response {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, e.URL+"/graphql", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.send(req)
}

// postAuth sends a GraphQL request with a raw Authorization header.
func (e *env) postAuth(authorization, query string) response {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query})
	req, err := http.NewRequest(http.MethodPost, e.URL+"/graphql", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", authorization)
	return e.send(req)
}

// get sends a GraphQL request as a GET with its parameters in the URL.
func (e *env) get(token string, params url.Values) response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.URL+"/graphql?"+params.Encode(), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.send(req)
}

func (e *env) send(req *http.Request) response {
	e.t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	if len(raw) > 0 && strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r); err != nil {
			e.t.Fatalf("decode response %q: %v", raw, err)
		}
	}
	return r
}

// do sends a plain HTTP request and returns the response with its body.
func (e *env) do(method, path string, header http.Header) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return res, string(raw)
}

// asUser runs one statement the way Supabase's REST API would on the
// user's behalf: in a transaction as the authenticated role with the
// user's claims, on the server's own (non-superuser) login.
func (e *env) asUser(u user, sql string, args ...any) error {
	e.t.Helper()
	return e.App.Tx(context.Background(), u.session(), func(q db.Querier) error {
		_, err := q.Exec(context.Background(), sql, args...)
		return err
	})
}
