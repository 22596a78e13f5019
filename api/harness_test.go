package api_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/app"
	"github.com/narrate/narrate/app/apptest"
	"github.com/narrate/narrate/auth"
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
