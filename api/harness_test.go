package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/app"
	"github.com/narrate/narrate/app/apptest"
	"github.com/narrate/narrate/auth"
	"github.com/narrate/narrate/config"
	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/migrations"
)

func TestMain(m *testing.M) { dbtest.Main(m, migrations.Up) }

// testSecret signs the tokens of these tests.
var testSecret = apptest.Secret

// The kit's types, under the names these tests use.
type (
	response = apptest.Response
	user     = apptest.User
	gqlError = apptest.GQLError
	wsClient = apptest.WS
	event    = apptest.Event
)

// Subprotocols.
const (
	protoTransportWS = apptest.ProtoTransportWS
	protoLegacyWS    = apptest.ProtoLegacyWS
)

// env is one test's server on its own fresh database, with the fixtures
// these tests share.
type env struct {
	t testing.TB
	*apptest.Server
}

// newEnv starts a server on a fresh database.
func newEnv(t testing.TB, opts ...apptest.Option) *env {
	t.Helper()
	return &env{t: t, Server: apptest.New(t, opts...)}
}

// withVerifier replaces the default HS256 verifier of testSecret.
func withVerifier(v *auth.Verifier) apptest.Option { return apptest.WithApp(app.WithVerifier(v)) }

// withVoice gives the voice-sample mutations a provider of the test's.
func withVoice(p app.Voice) apptest.Option { return apptest.WithApp(app.WithVoice(p)) }

// on returns the env reporting to t, for use inside t's own goroutine: a
// subtest must not fail its parent with Fatal.
func (e *env) on(t testing.TB) *env { return &env{t: t, Server: e.Server.On(t)} }

// mintToken signs a token for u valid for ttl.
func mintToken(t testing.TB, u user, ttl time.Duration) string {
	t.Helper()
	return apptest.MintToken(t, u, false, ttl)
}

// story inserts a story and returns its id.
func (e *env) story(title, slug string) uuid.UUID {
	e.t.Helper()
	var id uuid.UUID
	e.Scan(`INSERT INTO stories (title, slug, content) VALUES ($1, $2, 'Once upon a time.') RETURNING id`, []any{title, slug}, &id)
	return id
}

// verifiedVoice gives u a verified voice sample.
func (e *env) verifiedVoice(u user) {
	e.t.Helper()
	e.Exec(`INSERT INTO voice_samples (user_id, elevenlabs_voice_id, verification_phrase, verified)
		VALUES ($1::uuid, 'voice-'||$1::uuid::text, 'apple river candle', true)`, u.ID)
}

// narrator signs up a user with a verified voice: one who may start
// narrations.
func (e *env) narrator(email string) user {
	e.t.Helper()
	u := e.NewUser(email, false)
	e.verifiedVoice(u)
	return u
}

// aliceWithGeneration signs up Alice with a generation of a story in
// status: what a subscription follows.
func (e *env) aliceWithGeneration(status generation.Status) (user, uuid.UUID) {
	e.t.Helper()
	alice := e.NewUser("alice@example.com", false)
	return alice, e.generation(alice, e.story("The Fox", "the-fox"), status)
}

// generation inserts a generation of story for u and returns its id.
func (e *env) generation(u user, story uuid.UUID, status generation.Status) uuid.UUID {
	e.t.Helper()
	var id uuid.UUID
	e.Scan(`INSERT INTO story_generations (user_id, story_id, status) VALUES ($1, $2, $3) RETURNING id`,
		[]any{u.ID, story, string(status)}, &id)
	return id
}

// generationAt inserts a generation created at a chosen time.
func (e *env) generationAt(u user, story uuid.UUID, status generation.Status, createdAt time.Time) uuid.UUID {
	e.t.Helper()
	var id uuid.UUID
	e.Scan(`INSERT INTO story_generations (user_id, story_id, status, created_at) VALUES ($1, $2, $3, $4) RETURNING id`,
		[]any{u.ID, story, string(status), createdAt}, &id)
	return id
}

// logAt inserts a log event of a generation at a chosen time.
func (e *env) logAt(generation uuid.UUID, event string, at time.Time) uuid.UUID {
	e.t.Helper()
	var id uuid.UUID
	e.Scan(`INSERT INTO generation_logs (generation_id, event, occurred_at) VALUES ($1, $2, $3) RETURNING id`,
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
	e.Scan(`SELECT status::text, progress, updated_at,
		(SELECT count(*) FROM generation_logs WHERE generation_id = g.id)
		FROM story_generations g WHERE id = $1`, []any{id}, &s.Status, &s.Progress, &s.UpdatedAt, &s.Logs)
	return s
}

// wantRefusal posts query as token in a parallel subtest called name and
// checks that the API refuses it with code, and without data as absent
// checks: response.WantNullData when execution refused it,
// response.WantNoData when it was refused before.
func (e *env) wantRefusal(t *testing.T, name, token, query string, vars map[string]any, code string, absent func(response, testing.TB)) {
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		r := e.on(t).Post(token, query, vars)
		r.WantCode(t, code)
		absent(r, t)
	})
}

// wantLimit posts query as token and checks it against the limits: with
// code "" it runs, reading the database; otherwise it is refused with code
// before anything runs, without data. Not for parallel subtests: it counts
// the statements run meanwhile.
func (e *env) wantLimit(t *testing.T, token, query string, vars map[string]any, code string) {
	t.Helper()
	before := e.Statements.Load()
	r := e.Post(token, query, vars)
	ran := e.Statements.Load() - before
	if code == "" {
		r.Decode(t, &struct{}{})
		if ran == 0 {
			t.Error("no statements: the query did not run")
		}
		return
	}
	r.WantCode(t, code)
	r.WantNoData(t)
	if ran != 0 {
		t.Errorf("%d statements ran for a refused operation", ran)
	}
}

// listing is what the tests of lists start from: Alice and Bob, stories
// "a" and "b", and a time to date their generations from.
type listing struct {
	alice, bob user
	a, b       uuid.UUID
	base       time.Time
}

// newListing starts a server with a listing on it.
func newListing(t *testing.T) (*env, listing) {
	t.Helper()
	e := newEnv(t)
	return e, listing{
		alice: e.NewUser("alice@example.com", false),
		bob:   e.NewUser("bob@example.com", false),
		a:     e.story("A", "a"),
		b:     e.story("B", "b"),
		base:  time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

// withCORSHeaders lists the request headers allowed cross-origin.
func withCORSHeaders(headers ...string) apptest.Option {
	return apptest.WithConfig(func(c *config.Config) { c.CORSHeaders = headers })
}

// withPersistedLimit bounds the automatic persisted queries.
func withPersistedLimit(n int) apptest.Option {
	return apptest.WithConfig(func(c *config.Config) { c.PersistedOperationsMax = n })
}

// withTrustedDocuments runs only the operations of the manifest at path.
func withTrustedDocuments(path string) apptest.Option {
	return apptest.WithConfig(func(c *config.Config) { c.TrustedDocuments = path })
}

// postAccept sends a GraphQL request with an Accept header ("" for none).
func (e *env) postAccept(accept, token, query string, vars map[string]any) response {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, e.URL+"/graphql", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.Send(req)
}

// another starts a second server on the same database, as a second
// process of a deployment would be, and returns its base URL.
func (e *env) another(opts ...apptest.Option) string {
	e.t.Helper()
	return apptest.Start(e.t, e.DB, opts...).URL
}
