package worker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/localdb"
	"github.com/narrate/narrate/voice/local"
)

func TestMultiChunkStory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.start(e.story("The Fox", longStory))
	w := e.run(e.newWorker(nil))

	s := e.waitStatus(id, generation.Completed)
	want := chunksOf(longStory)
	if len(want) < 4 {
		t.Fatalf("test story makes only %d chunks", len(want))
	}
	calls := e.el.Calls()
	if len(calls) != len(want) {
		t.Fatalf("%d synthesis calls, want %d", len(calls), len(want))
	}
	var text strings.Builder
	for i, c := range calls {
		if n := utf8.RuneCountInString(c.Text); n > testChunkLimit {
			t.Errorf("call %d sent %d characters, over the limit %d", i+1, n, testChunkLimit)
		}
		if c.Text != want[i] {
			t.Errorf("call %d text = %q, want chunk %q", i+1, c.Text, want[i])
		}
		text.WriteString(c.Text)
		// Stitching: the request ids of up to three previous chunks, oldest first.
		var prev []string
		for j := max(0, i-3); j < i; j++ {
			prev = append(prev, fmt.Sprintf("req-%d", calls[j].N))
		}
		if !slices.Equal(c.Previous, prev) {
			t.Errorf("call %d previous_request_ids = %q, want %q", i+1, c.Previous, prev)
		}
		if c.VoiceID != testVoiceID || c.APIKey != testAPIKey || c.ModelID != "eleven_multilingual_v2" || c.Format != "mp3_44100_128" {
			t.Errorf("call %d = %+v", i+1, c)
		}
	}
	if strings.TrimSpace(text.String()) != strings.TrimSpace(longStory) {
		t.Errorf("narrated text %q, want the story %q", text.String(), longStory)
	}

	if got := e.audio(s); got != wantAudio(want) {
		t.Errorf("stored audio = %q, want the chunks joined in order", got)
	}
	if !strings.HasPrefix(*s.ResultKey, "generations/"+id.String()) || !strings.HasSuffix(*s.ResultKey, ".mp3") {
		t.Errorf("result key = %q", *s.ResultKey)
	}
	wantLogs := append(append([]string{"claimed"}, chunkLogs(len(want))...), "completed")
	if !slices.Equal(s.Logs, wantLogs) {
		t.Errorf("logs = %q, want %q", s.Logs, wantLogs)
	}
	if s.Progress != 100 || s.Metadata["story_version"] != float64(1) || s.Metadata["story_title"] != "The Fox" ||
		s.Metadata["chunks"] != float64(len(want)) || s.Metadata["provider"] != "elevenlabs" {
		t.Errorf("completed generation = %+v", s)
	}
	e.waitOutcome(w, OutcomeCompleted, 1)
	if got := histogramCount(w.metrics.chunkSeconds.WithLabelValues("elevenlabs")); got != uint64(len(want)) {
		t.Errorf("chunk latencies observed: %d, want %d", got, len(want))
	}
}

func TestRetryableErrorsAreRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.el.setHandler(func(r *http.Request, c ttsCall) reply {
		switch c.N {
		case 1:
			return reply{http.StatusTooManyRequests, errorBody("too_many_concurrent_requests", "slow down")}
		case 2:
			return reply{http.StatusServiceUnavailable, errorBody("system_busy", "busy")}
		}
		return reply{}
	})
	id := e.start(e.story("Short", "One sentence."))
	w := e.run(e.newWorker(nil))

	s := e.waitStatus(id, generation.Completed)
	if n := len(e.el.Calls()); n != 3 {
		t.Fatalf("%d calls, want 3 (429, 503, success)", n)
	}
	if len(s.Logs) != 5 || !strings.HasPrefix(s.Logs[1], "retry 1/3 of chunk 1/1 in ") || !strings.Contains(s.Logs[1], "HTTP 429 too_many_concurrent_requests") ||
		!strings.HasPrefix(s.Logs[2], "retry 2/3 of chunk 1/1 in ") || !strings.Contains(s.Logs[2], "HTTP 503 system_busy") ||
		s.Logs[3] != "chunk 1/1" || s.Logs[4] != "completed" {
		t.Fatalf("logs = %q", s.Logs)
	}
	if got := counterValue(w.metrics.providerErrors.WithLabelValues("elevenlabs", "rate_limited")); got != 1 {
		t.Errorf("rate_limited errors = %v, want 1", got)
	}
	if got := counterValue(w.metrics.providerErrors.WithLabelValues("elevenlabs", "server_error")); got != 1 {
		t.Errorf("server_error errors = %v, want 1", got)
	}
}

func TestRetriesAreBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.el.setHandler(func(*http.Request, ttsCall) reply {
		return reply{http.StatusInternalServerError, errorBody("internal", "down")}
	})
	id := e.start(e.story("Short", "One sentence."))
	w := e.run(e.newWorker(nil))

	s := e.waitStatus(id, generation.Failed)
	if n := len(e.el.Calls()); n != 4 {
		t.Fatalf("%d calls, want 4 (the first and 3 retries)", n)
	}
	last := s.Logs[len(s.Logs)-1]
	if len(s.Logs) != 5 || !strings.HasPrefix(last, "failed: chunk 1/1: gave up after 3 retries: ") || !strings.Contains(last, "HTTP 500") {
		t.Fatalf("logs = %q", s.Logs)
	}
	e.waitOutcome(w, OutcomeFailed, 1)
}

func TestClientErrorsFailAtOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		code   string
		want   string
	}{
		{"voice not found", http.StatusNotFound, "voice_not_found", "voice not found (HTTP 404 voice_not_found)"},
		{"quota exceeded", http.StatusUnauthorized, "quota_exceeded", "quota exceeded (HTTP 401 quota_exceeded)"},
		{"bad request", http.StatusBadRequest, "invalid_text", "bad request (HTTP 400 invalid_text)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.el.setHandler(func(*http.Request, ttsCall) reply { return reply{tc.status, errorBody(tc.code, "nope")} })
			id := e.start(e.story("The Fox", longStory))
			w := e.run(e.newWorker(nil))

			s := e.waitStatus(id, generation.Failed)
			if n := len(e.el.Calls()); n != 1 {
				t.Fatalf("%d calls, want 1: %s is not retryable", n, tc.code)
			}
			n := len(chunksOf(longStory))
			if len(s.Logs) != 2 || s.Logs[0] != "claimed" ||
				!strings.HasPrefix(s.Logs[1], fmt.Sprintf("failed: chunk 1/%d: ", n)) || !strings.Contains(s.Logs[1], tc.want) {
				t.Fatalf("logs = %q, want a failure naming %q", s.Logs, tc.want)
			}
			if s.Metadata["error"] == nil || s.ResultKey != nil {
				t.Errorf("failed generation = %+v", s)
			}
			e.waitOutcome(w, OutcomeFailed, 1)
		})
	}
}

func TestCancelMidway(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// lease: a long one leaves the cancel to the progress write after
		// the chunk in flight; a short one lets the renewal notice it and
		// abort that chunk.
		lease time.Duration
		// finish: whether the blocked chunk is let through after the cancel.
		finish bool
	}{
		{name: "noticed between chunks", lease: time.Minute, finish: true},
		{name: "noticed by lease renewal", lease: 300 * time.Millisecond, finish: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id, reached, release := e.startBlocked()
			w := e.run(e.newWorker(func(c *Config) { c.Lease = tc.lease }))

			<-reached
			e.cancel(id)
			if tc.finish {
				close(release)
			}
			e.waitFor("the worker to stop", func() bool { return w.outcomes(OutcomeCanceled) == 1 })

			if n := len(e.el.Calls()); n != 2 {
				t.Errorf("%d calls, want 2: the worker must stop before chunk 3", n)
			}
			s := e.state(id)
			if s.Status != generation.Failed || !slices.Equal(s.Logs, []string{"claimed", "chunk 1/" + fmt.Sprint(len(chunksOf(longStory))), "canceled"}) {
				t.Errorf("after cancel: status %s, logs %q", s.Status, s.Logs)
			}
			if s.Metadata["error"] != nil || s.ResultKey != nil {
				t.Errorf("cancelled generation = %+v", s)
			}
			if !tc.finish {
				close(release)
			}
		})
	}
}

func TestTwoWorkersShareTheQueue(t *testing.T) {
	t.Parallel()
	const n = 20
	e := newEnv(t)
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = e.start(e.story(fmt.Sprint("Story ", i), fmt.Sprintf("Story number %d.", i)))
	}
	// Each worker has a pool of its own, as separate processes would.
	a := e.newWorker(func(c *Config) { c.Owner, c.Concurrency = "worker-a", 2 })
	b := e.newWorker(func(c *Config) { c.Owner, c.Concurrency, c.Queue = "worker-b", 2, e.openDB() })
	e.run(a)
	e.run(b)

	for _, id := range ids {
		s := e.waitStatus(id, generation.Completed)
		if s.Attempts != 1 || len(s.Logs) != 3 || s.Logs[0] != "claimed" {
			t.Errorf("generation %s: attempts %d, logs %q", id, s.Attempts, s.Logs)
		}
	}
	count := map[string]int{}
	for _, c := range e.el.Calls() {
		count[c.Text]++
	}
	for i := range n {
		if text := fmt.Sprintf("Story number %d.", i); count[text] != 1 {
			t.Errorf("%q synthesised %d times, want once", text, count[text])
		}
	}
	e.waitFor("both workers to count 20 completions", func() bool {
		return a.outcomes(OutcomeCompleted)+b.outcomes(OutcomeCompleted) == n
	})
	a.stop()
	b.stop()
	if total := a.outcomes(OutcomeCompleted) + b.outcomes(OutcomeCompleted); total != n {
		t.Errorf("completed %d + %d, want %d in all", a.outcomes(OutcomeCompleted), b.outcomes(OutcomeCompleted), n)
	}
}

// TestKilledWorkerIsReclaimed kills a worker process with SIGKILL in the
// middle of a generation; another worker finishes it once the lease lapses.
func TestKilledWorkerIsReclaimed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reached := make(chan struct{})
	var once sync.Once
	e.el.setHandler(func(r *http.Request, c ttsCall) reply {
		if c.N == 2 {
			once.Do(func() { close(reached) })
			<-r.Context().Done() // until the process dies
		}
		return reply{}
	})
	id := e.start(e.story("The Fox", longStory))

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperDBEnv+"="+e.tdb.AppURL, helperELEnv+"="+e.el.srv.URL, helperDirEnv+"="+t.TempDir())
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reached:
	case <-time.After(waitLimit):
		_ = cmd.Process.Kill()
		t.Fatal("the doomed worker never reached chunk 2")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if s := e.state(id); s.Status != generation.InProgress || s.Progress == 0 {
		t.Fatalf("after the kill: %+v", s)
	}

	e.el.setHandler(nil)
	w := e.run(e.newWorker(nil))
	s := e.waitStatus(id, generation.Completed)

	chunks := chunksOf(longStory)
	want := append([]string{"claimed", "chunk 1/" + fmt.Sprint(len(chunks)),
		"claimed: attempt 2, the previous worker stopped renewing its lease"}, chunkLogs(len(chunks))...)
	want = append(want, "completed")
	if !slices.Equal(s.Logs, want) {
		t.Errorf("logs = %q, want %q", s.Logs, want)
	}
	if got := e.audio(s); got != wantAudio(chunks) {
		t.Errorf("stored audio = %q, want every chunk once, in order", got)
	}
	if s.Attempts != 2 {
		t.Errorf("attempts %d, want 2", s.Attempts)
	}
	// The dead worker's part was dropped with its attempt: the parts are
	// the second attempt's, one per chunk, stored next to its result.
	var parts, foreign int
	e.scanRow(`SELECT count(*), count(*) FILTER (WHERE NOT starts_with(storage_key, $2))
		FROM generation_parts WHERE generation_id = $1`, []any{id, strings.TrimSuffix(*s.ResultKey, ".mp3") + "/"}, &parts, &foreign)
	if parts != len(chunks) || foreign != 0 {
		t.Errorf("%d parts, %d of them not the last attempt's; want %d of the last attempt", parts, foreign, len(chunks))
	}
	e.waitOutcome(w, OutcomeCompleted, 1)
}

func TestStoryVersionIsRecordedAgainstLaterEdits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reached, release := e.el.blockCall(1)
	story := e.story("The Fox", longStory)
	id := e.start(story)
	e.run(e.newWorker(func(c *Config) { c.Lease = time.Minute }))

	<-reached
	e.exec(`UPDATE stories SET title = 'The Wolf', content = 'All new.', version = version + 1 WHERE id = $1`, story)
	close(release)
	s := e.waitStatus(id, generation.Completed)
	if s.Metadata["story_version"] != float64(1) || s.Metadata["story_title"] != "The Fox" {
		t.Errorf("metadata = %v, want the version narrated (1)", s.Metadata)
	}
	if got := e.audio(s); got != wantAudio(chunksOf(longStory)) {
		t.Errorf("narrated %q, want the story as claimed", got)
	}
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	n := len(chunksOf(longStory))
	tests := []struct {
		name  string
		grace time.Duration
		// finish lets the chunk in flight complete after shutdown begins.
		finish bool
		logs   []string
	}{
		{name: "finishes the chunk, then releases", grace: time.Minute, finish: true,
			logs: []string{"claimed", fmt.Sprintf("chunk 1/%d", n), fmt.Sprintf("chunk 2/%d", n), "released: worker shutting down"}},
		{name: "grace runs out, releases", grace: 50 * time.Millisecond,
			logs: []string{"claimed", fmt.Sprintf("chunk 1/%d", n), "released: worker shutting down"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id, reached, release := e.startBlocked()
			w := e.run(e.newWorker(func(c *Config) { c.ShutdownGrace = tc.grace; c.Lease = time.Minute }))

			<-reached
			stopped := make(chan struct{})
			go func() { w.stop(); close(stopped) }()
			if tc.finish {
				close(release)
			}
			<-stopped
			if !tc.finish {
				close(release)
			}

			s := e.state(id)
			if s.Status != generation.Pending || s.Progress == 0 || s.Attempts != 0 || !slices.Equal(s.Logs, tc.logs) {
				t.Errorf("after shutdown: %+v, want pending keeping its progress, with logs %q", s, tc.logs)
			}
			if w.outcomes(OutcomeReleased) != 1 {
				t.Errorf("released outcomes = %d", w.outcomes(OutcomeReleased))
			}
			if calls := len(e.el.Calls()); calls != 2 {
				t.Errorf("%d calls, want 2", calls)
			}
		})
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.start(e.story("Short", "One sentence."))
	// Three workers died on it already.
	e.exec(`UPDATE story_generations SET status = 'in_progress', attempts = 3, lease_owner = 'dead',
		lease_expires_at = now() - interval '1 second' WHERE id = $1`, id)
	e.run(e.newWorker(nil))

	s := e.waitStatus(id, generation.Failed)
	if len(e.el.Calls()) != 0 || s.Logs[len(s.Logs)-1] != "failed: gave up after 3 attempts: each worker stopped before finishing" {
		t.Errorf("calls %d, logs %q", len(e.el.Calls()), s.Logs)
	}
}

func TestUnverifiedVoiceFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.start(e.story("Short", "One sentence."))
	e.exec(`UPDATE voice_samples SET verified = false WHERE user_id = $1`, e.user)
	e.run(e.newWorker(nil))

	s := e.waitStatus(id, generation.Failed)
	if len(e.el.Calls()) != 0 || !slices.Equal(s.Logs, []string{"claimed", "failed: the owner has no verified voice sample"}) {
		t.Errorf("calls %d, logs %q", len(e.el.Calls()), s.Logs)
	}
}

// TestDatabaseOutage takes the database away in the middle of a
// generation: the worker retries until it is back and finishes, and then
// goes on claiming. NARRATE_TEST_OUTAGE sets the outage's length (default
// 2s; the contract asks for 30s, which is too slow for every run).
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	outage := 2 * time.Second
	if v := os.Getenv("NARRATE_TEST_OUTAGE"); v != "" {
		var err error
		if outage, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t)
	ctx := context.Background()
	// The outage is run from a connection to another database, which
	// survives it.
	otherURL, err := localdb.WithDatabase(e.tdb.AdminURL, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	ctl := dbtest.Connect(t, otherURL)
	dbIdent := pgx.Identifier{e.tdb.Name}.Sanitize()
	setAllow := func(allow bool) {
		if _, err := ctl.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS %t", dbIdent, allow)); err != nil {
			t.Errorf("allow connections %t: %v", allow, err)
		}
	}
	t.Cleanup(func() { setAllow(true) })

	var outageStarted time.Time
	ended := make(chan struct{})
	e.el.setHandler(func(r *http.Request, c ttsCall) reply {
		if c.N == 1 {
			// Down before the worker records chunk 1: every connection
			// ends and none may start.
			setAllow(false)
			if _, err := ctl.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, e.tdb.Name); err != nil {
				t.Errorf("terminate: %v", err)
			}
			outageStarted = time.Now()
			go func() {
				time.Sleep(outage)
				setAllow(true)
				close(ended)
			}()
		}
		return reply{}
	})
	story := e.story("The Fox", longStory)
	id := e.start(story)
	w := e.run(e.newWorker(nil))

	<-ended
	s := e.waitStatus(id, generation.Completed)
	t.Logf("outage %v; generation completed %v after the outage began", outage, time.Since(outageStarted).Round(time.Millisecond))
	chunks := chunksOf(longStory)
	wantLogs := append(append([]string{"claimed"}, chunkLogs(len(chunks))...), "completed")
	if !slices.Equal(s.Logs, wantLogs) {
		t.Errorf("logs = %q, want %q", s.Logs, wantLogs)
	}
	if got := e.audio(s); got != wantAudio(chunks) {
		t.Errorf("stored audio = %q", got)
	}

	// The claim loop survived too.
	next := e.start(story)
	e.waitStatus(next, generation.Completed)
	e.waitOutcome(w, OutcomeCompleted, 2)
}

// TestLocalProviderMakesOneWAV runs the development provider end to end:
// the stored result is one valid WAV holding every chunk.
func TestLocalProviderMakesOneWAV(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.start(e.story("The Fox", longStory))
	provider := local.New(local.Config{ChunkLimit: testChunkLimit, EspeakPath: "-"})
	e.run(e.newWorker(func(c *Config) { c.Provider = provider }))

	s := e.waitStatus(id, generation.Completed)
	data := []byte(e.audio(s))
	if !strings.HasSuffix(*s.ResultKey, ".wav") || len(data) < 44 || string(data[0:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		t.Fatalf("result %q is not a WAV file", *s.ResultKey)
	}
	if riff := binary.LittleEndian.Uint32(data[4:8]); int(riff) != len(data)-8 {
		t.Errorf("RIFF size %d, file %d bytes", riff, len(data))
	}
	if string(data[36:40]) != "data" || int(binary.LittleEndian.Uint32(data[40:44])) != len(data)-44 {
		t.Errorf("data chunk size does not match the file")
	}
	// Each chunk is a few seconds of speech-like audio; the whole story
	// must be longer than any one chunk.
	one, err := provider.Synthesize(context.Background(), voiceRequest(chunksOf(longStory)[0]))
	if err != nil {
		t.Fatal(err)
	}
	if len(data) <= len(one.Data) {
		t.Errorf("joined WAV has %d bytes, no more than one chunk's %d", len(data), len(one.Data))
	}
}

// flakyStore fails the first failures Puts (every Put when failures < 0).
type flakyStore struct {
	Store
	mu       sync.Mutex
	failures int
	puts     int
}

func (s *flakyStore) Put(ctx context.Context, key string, r io.Reader, contentType string) error {
	s.mu.Lock()
	s.puts++
	fail := s.failures < 0 || s.puts <= s.failures
	s.mu.Unlock()
	if fail {
		return errors.New("disk full")
	}
	return s.Store.Put(ctx, key, r, contentType)
}

func (s *flakyStore) Puts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.puts
}

func TestStoreFailuresAreRetried(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		failures int
		puts     int
		status   generation.Status
		lastLog  string
		outcome  Outcome
	}{
		// Three Puts for the one part (two failing), one for the final file.
		{name: "passing hiccup", failures: 2, puts: 4, status: generation.Completed, lastLog: "completed", outcome: OutcomeCompleted},
		// The test worker retries 3 times: 4 attempts in all.
		{name: "lasting failure", failures: -1, puts: 4, status: generation.Failed, lastLog: "failed: the audio could not be stored", outcome: OutcomeFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			store := &flakyStore{Store: e.store, failures: tc.failures}
			id := e.start(e.story("Short", "One sentence."))
			w := e.run(e.newWorker(func(c *Config) { c.Store = store }))

			s := e.waitStatus(id, tc.status)
			e.waitOutcome(w, tc.outcome, 1)
			if got := store.Puts(); got != tc.puts {
				t.Errorf("%d Puts, want %d", got, tc.puts)
			}
			if last := s.Logs[len(s.Logs)-1]; last != tc.lastLog {
				t.Errorf("logs = %q, want the last %q", s.Logs, tc.lastLog)
			}
		})
	}
}

// completeHook is the database queue with Complete replaced.
type completeHook struct {
	*db.DB
	complete func(ctx context.Context, id uuid.UUID, owner, key string, meta map[string]any) error
}

func (q completeHook) Complete(ctx context.Context, id uuid.UUID, owner, key string, meta map[string]any) error {
	return q.complete(ctx, id, owner, key, meta)
}

// TestCompletionOutcomes checks what becomes of the stored audio when
// recording the completion does not simply succeed: a cancel just before it
// leaves the audio unused, so it is deleted; an answer lost after the commit
// is retried, and the audio stays with the completed generation.
func TestCompletionOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// complete wraps the real Complete of generation id; calls counts
		// the calls so far, this one included.
		complete  func(e *env, id uuid.UUID, calls int, real func() error) error
		status    generation.Status
		logs      []string
		outcome   Outcome
		keepAudio bool
	}{
		{
			name: "cancelled before the completion",
			complete: func(e *env, id uuid.UUID, _ int, real func() error) error {
				e.cancel(id)
				return real()
			},
			status: generation.Failed, logs: []string{"claimed", "chunk 1/1", "canceled"}, outcome: OutcomeCanceled, keepAudio: false,
		},
		{
			name: "answer lost after the commit",
			complete: func(_ *env, _ uuid.UUID, calls int, real func() error) error {
				err := real()
				if calls == 1 && err == nil {
					return errors.New("connection reset by peer")
				}
				return err
			},
			status: generation.Completed, logs: []string{"claimed", "chunk 1/1", "completed"}, outcome: OutcomeCompleted, keepAudio: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.start(e.story("Short", "One sentence."))
			var calls atomic.Int32
			queue := completeHook{DB: e.d, complete: func(ctx context.Context, id uuid.UUID, owner, key string, meta map[string]any) error {
				return tc.complete(e, id, int(calls.Add(1)), func() error { return e.d.Complete(ctx, id, owner, key, meta) })
			}}
			w := e.run(e.newWorker(func(c *Config) { c.Queue = queue }))

			e.waitOutcome(w, tc.outcome, 1)
			s := e.state(id)
			if s.Status != tc.status || !slices.Equal(s.Logs, tc.logs) {
				t.Errorf("status %s, logs %q; want %s, %q", s.Status, s.Logs, tc.status, tc.logs)
			}
			entries, err := os.ReadDir(filepath.Join(e.dir, "generations"))
			if err != nil {
				t.Fatal(err)
			}
			// The part's directory stays with the generation either way;
			// the final file is what a lost completion must not leave.
			var files []os.DirEntry
			for _, f := range entries {
				if !f.IsDir() {
					files = append(files, f)
				}
			}
			if kept := len(files) == 1; kept != tc.keepAudio || len(files) > 1 {
				t.Errorf("%d audio files stored, want the audio kept: %v", len(files), tc.keepAudio)
			}
			if tc.keepAudio && e.audio(s) != wantAudio(chunksOf("One sentence.")) {
				t.Errorf("stored audio = %q", e.audio(s))
			}
		})
	}
}

func TestBusyAndQueueDepthGauges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, release := e.el.blockCall(1)
	ids := []uuid.UUID{e.start(e.story("One", "First.")), e.start(e.story("Two", "Second.")), e.start(e.story("Three", "Third."))}
	w := e.run(e.newWorker(func(c *Config) { c.Concurrency = 1; c.Lease = time.Minute }))

	gauges := func() (busy, depth float64) {
		return gaugeValue(w.metrics.busy), gaugeValue(w.metrics.queueDepth)
	}
	e.waitFor("one busy slot and two queued", func() bool { b, d := gauges(); return b == 1 && d == 2 })
	close(release)
	for _, id := range ids {
		e.waitStatus(id, generation.Completed)
	}
	e.waitFor("no busy slot and none queued", func() bool { b, d := gauges(); return b == 0 && d == 0 })
}
