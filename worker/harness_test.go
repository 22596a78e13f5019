package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/narrate/narrate/backoff"
	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/limit"
	"github.com/narrate/narrate/storage"
	"github.com/narrate/narrate/voice"
	"github.com/narrate/narrate/voice/elevenlabs"
)

const (
	testAPIKey     = "test-api-key"
	testVoiceID    = "voice-alice"
	testChunkLimit = 60
	testLease      = time.Second
	// waitLimit only keeps a broken test from hanging; nothing is timed.
	waitLimit = 30 * time.Second
)

// ttsCall is one text-to-speech request the fake ElevenLabs received.
type ttsCall struct {
	N        int
	VoiceID  string
	Text     string
	ModelID  string
	Previous []string
	Format   string
	APIKey   string
}

// reply is what the fake answers a call with: status 0 means success.
type reply struct {
	status int
	body   string
}

// fakeElevenLabs serves POST /v1/text-to-speech/{voice_id} as ElevenLabs
// documents it: JSON {"text", "model_id", "previous_request_ids"} in,
// audio/mpeg out with a request-id header, and errors as
// {"detail": {"status", "message"}}. Its audio is "MP3[<text>]", so the
// joined result shows which chunks were narrated, in which order.
type fakeElevenLabs struct {
	srv *httptest.Server

	mu     sync.Mutex
	calls  []ttsCall
	handle func(r *http.Request, c ttsCall) reply
}

func newFakeElevenLabs(t *testing.T) *fakeElevenLabs {
	t.Helper()
	f := &fakeElevenLabs{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/text-to-speech/{voice}", f.tts)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeElevenLabs) tts(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Text     string   `json:"text"`
		ModelID  string   `json:"model_id"`
		Previous []string `json:"previous_request_ids"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, `{"detail":{"status":"invalid_json","message":"bad body"}}`, http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	c := ttsCall{
		N: len(f.calls) + 1, VoiceID: r.PathValue("voice"), Text: body.Text, ModelID: body.ModelID,
		Previous: body.Previous, Format: r.URL.Query().Get("output_format"), APIKey: r.Header.Get("xi-api-key"),
	}
	f.calls = append(f.calls, c)
	handle := f.handle
	f.mu.Unlock()

	// As documented: at most three previous_request_ids, and none for
	// eleven_v3, which has no request stitching.
	if len(body.Previous) > 3 || (body.ModelID == "eleven_v3" && len(body.Previous) > 0) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, errorBody("invalid_previous_request_ids", "request stitching refused"))
		return
	}

	var rep reply
	if handle != nil {
		rep = handle(r, c)
	}
	if rep.status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.status)
		_, _ = io.WriteString(w, rep.body)
		return
	}
	w.Header().Set("Content-Type", "audio/mpeg")
	w.Header().Set("request-id", fmt.Sprintf("req-%d", c.N))
	_, _ = io.WriteString(w, "MP3["+body.Text+"]")
}

func (f *fakeElevenLabs) setHandler(h func(r *http.Request, c ttsCall) reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handle = h
}

func (f *fakeElevenLabs) Calls() []ttsCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ttsCall(nil), f.calls...)
}

func (f *fakeElevenLabs) client(t *testing.T) *elevenlabs.Client {
	t.Helper()
	c, err := elevenlabs.New(elevenlabs.Config{
		APIKey: testAPIKey, BaseURL: f.srv.URL, ChunkLimit: testChunkLimit, MaxConcurrent: 8, Timeout: 20 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// errorBody is an ElevenLabs error response.
func errorBody(status, message string) string {
	b, _ := json.Marshal(map[string]any{"detail": map[string]string{"status": status, "message": message}})
	return string(b)
}

// blockCall makes synthesis call n (counted from 1) wait until release
// is closed, or until the client gives up on it; reached is closed when
// the call arrives. The other calls succeed.
func (f *fakeElevenLabs) blockCall(n int) (reached, release chan struct{}) {
	reached, release = make(chan struct{}), make(chan struct{})
	f.setHandler(func(r *http.Request, c ttsCall) reply {
		if c.N == n {
			close(reached)
			blockUntil(r, release)
		}
		return reply{}
	})
	return reached, release
}

// blockUntil makes a handler wait for release, or for the client to give
// up on the request.
func blockUntil(r *http.Request, release <-chan struct{}) {
	select {
	case <-release:
	case <-r.Context().Done():
	}
}

// env is one test's database, user, fake provider and audio store.
type env struct {
	t     *testing.T
	tdb   *dbtest.DB
	admin *pgxpool.Pool
	d     *db.DB
	user  uuid.UUID
	el    *fakeElevenLabs
	store *storage.Local
	dir   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, tdb: dbtest.New(t), user: uuid.New(), el: newFakeElevenLabs(t)}
	var err error
	if e.admin, err = pgxpool.New(context.Background(), e.tdb.AdminURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.admin.Close)
	e.d = e.openDB()
	e.dir = t.TempDir()
	if e.store, err = storage.NewLocal(e.dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.store.Close() })
	e.exec(`INSERT INTO auth.users (id, email) VALUES ($1, $2)`, e.user, e.user.String()+"@example.com")
	e.exec(`INSERT INTO voice_samples (user_id, elevenlabs_voice_id, verification_phrase, verified) VALUES ($1, $2, 'x', true)`, e.user, testVoiceID)
	// The worker's tests queue more generations for one user than the
	// default quotas allow.
	e.exec(`UPDATE generation_limits SET max_active = 1000, daily_characters = 1000000000`)
	return e
}

// openDB opens a pool on the application's login, as the server does.
func (e *env) openDB() *db.DB {
	e.t.Helper()
	d, err := db.Open(context.Background(), e.tdb.AppURL, db.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(d.Close)
	return d
}

func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.admin.Exec(context.Background(), sql, args...); err != nil {
		e.t.Fatalf("%s: %v", strings.TrimSpace(sql), err)
	}
}

// scanRow reads one row as the superuser.
func (e *env) scanRow(sql string, args []any, dest ...any) {
	e.t.Helper()
	if err := e.admin.QueryRow(context.Background(), sql, args...).Scan(dest...); err != nil {
		e.t.Fatalf("%s: %v", strings.TrimSpace(sql), err)
	}
}

func (e *env) session() db.Session {
	claims, _ := json.Marshal(map[string]any{"sub": e.user, "role": "authenticated"})
	return db.UserSession(e.user, claims)
}

// story adds a story and returns its id.
func (e *env) story(title, content string) uuid.UUID {
	e.t.Helper()
	id := uuid.New()
	e.exec(`INSERT INTO stories (id, title, slug, content) VALUES ($1, $2, $3, $4)`, id, title, "s-"+id.String(), content)
	return id
}

// start queues a generation the way the API does.
func (e *env) start(story uuid.UUID) uuid.UUID {
	e.t.Helper()
	g, _, err := e.d.StartGeneration(context.Background(), e.session(), story, nil, limit.Rate{})
	if err != nil {
		e.t.Fatalf("start generation: %v", err)
	}
	return g.ID
}

// startBlocked starts a narration of longStory whose second chunk's
// synthesis blocks (see blockCall): the worker is in the middle of it.
func (e *env) startBlocked() (id uuid.UUID, reached, release chan struct{}) {
	e.t.Helper()
	reached, release = e.el.blockCall(2)
	return e.start(e.story("The Fox", longStory)), reached, release
}

func (e *env) cancel(id uuid.UUID) {
	e.t.Helper()
	if _, err := e.d.CancelGeneration(context.Background(), e.session(), id); err != nil {
		e.t.Fatalf("cancel generation: %v", err)
	}
}

type genState struct {
	Status    generation.Status
	Progress  int
	ResultKey *string
	Metadata  map[string]any
	Attempts  int
	Logs      []string
}

func (e *env) state(id uuid.UUID) genState {
	e.t.Helper()
	var s genState
	err := e.admin.QueryRow(context.Background(), `
		SELECT status::text, progress, result_url, metadata, attempts,
		  coalesce((SELECT array_agg(event ORDER BY occurred_at, id) FROM generation_logs WHERE generation_id = g.id), '{}')
		FROM story_generations g WHERE id = $1`, id).Scan(&s.Status, &s.Progress, &s.ResultKey, &s.Metadata, &s.Attempts, &s.Logs)
	if err != nil {
		e.t.Fatalf("read generation: %v", err)
	}
	return s
}

// waitFor polls cond until it holds.
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	e.waitWithin(waitLimit, what, cond)
}

// waitWithin polls cond until it holds, giving up after limit.
func (e *env) waitWithin(limit time.Duration, what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitStatus waits until the generation reaches status and returns it.
func (e *env) waitStatus(id uuid.UUID, status generation.Status) genState {
	e.t.Helper()
	var s genState
	e.waitFor("generation "+string(status), func() bool {
		s = e.state(id)
		return s.Status == status
	})
	return s
}

// audio reads the stored result of a completed generation.
func (e *env) audio(s genState) string {
	e.t.Helper()
	if s.ResultKey == nil {
		e.t.Fatal("no result key")
	}
	r, _, err := e.store.Open(context.Background(), *s.ResultKey)
	if err != nil {
		e.t.Fatalf("open result: %v", err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(data)
}

// testWorker is a running worker with its metrics.
type testWorker struct {
	*Worker
	metrics *Metrics
	stop    func()
}

// newWorker builds a worker on the fake ElevenLabs with fast retries, a
// short lease and quick polls; mutate adjusts the config.
func (e *env) newWorker(mutate func(*Config)) *testWorker {
	e.t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := Config{
		Queue:        e.d,
		Provider:     e.el.client(e.t),
		Store:        e.store,
		Lease:        testLease,
		PollInterval: 20 * time.Millisecond,
		Retry:        RetryPolicy{MaxRetries: 3, Backoff: backoff.Policy{Min: time.Millisecond, Max: 5 * time.Millisecond}},
		DBBackoff:    backoff.Policy{Min: 10 * time.Millisecond, Max: 200 * time.Millisecond},
		Logger:       testLogger(e.t),
		Metrics:      m,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	w, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return &testWorker{Worker: w, metrics: m}
}

// run starts w and stops it when the test ends (or when stop is called).
func (e *env) run(w *testWorker) *testWorker {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	w.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("worker Run: %v", err)
			}
		})
	}
	e.t.Cleanup(w.stop)
	return w
}

func (w *testWorker) outcomes(o Outcome) int {
	return int(counterValue(w.metrics.generations.WithLabelValues(string(o))))
}

// waitOutcome waits until w has counted n generations ending in o: the
// worker updates its metrics just after the database, so a test that saw
// the row change may be a moment early.
func (e *env) waitOutcome(w *testWorker, o Outcome, n int) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("%d %s outcomes", n, o), func() bool { return w.outcomes(o) == n })
}

// counterValue reads a counter without the testutil package's extra
// dependencies.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// gaugeValue reads a gauge.
func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		panic(err)
	}
	return m.GetGauge().GetValue()
}

// histogramCount is how many observations a histogram holds.
func histogramCount(h prometheus.Observer) uint64 {
	var m dto.Metric
	if err := h.(prometheus.Metric).Write(&m); err != nil {
		panic(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// chunksOf is how the worker splits text for the tests' chunk limit.
func chunksOf(text string) []string {
	var out []string
	for _, c := range splitText(text, testChunkLimit) {
		out = append(out, c.Text)
	}
	return out
}

// wantAudio is the fake's joined audio for chunks.
func wantAudio(chunks []string) string {
	var b strings.Builder
	for _, c := range chunks {
		b.WriteString("MP3[" + c + "]")
	}
	return b.String()
}

// chunkLogs is the worker's log of n successful chunks.
func chunkLogs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("chunk %d/%d", i+1, n)
	}
	return out
}

// story text long enough for several chunks at testChunkLimit.
const longStory = "The fox woke before dawn. It was cold, and the river steamed. " +
	"She crept along the bank, past the sleeping herons. A bell rang in the village! " +
	"Was it morning already? The fox did not wait to find out. She ran home through the wet grass. " +
	"Her cubs were waiting."

func voiceRequest(text string) voice.SynthesisRequest {
	return voice.SynthesisRequest{VoiceID: testVoiceID, Text: text}
}
