package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/narrate/narrate/app"
	"github.com/narrate/narrate/app/apptest"
	"github.com/narrate/narrate/config"
	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/migrations"
	"github.com/narrate/narrate/voice"
	"github.com/narrate/narrate/voice/local"
)

func TestMain(m *testing.M) { dbtest.Main(m, migrations.Up) }

// slowVoice narrates like the local provider, a little slower, so that a
// generation is still running when the test shuts the server down.
type slowVoice struct{ app.Voice }

func (s slowVoice) Synthesize(ctx context.Context, req voice.SynthesisRequest) (*voice.Audio, error) {
	select {
	case <-time.After(20 * time.Millisecond):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Voice.Synthesize(ctx, req)
}

const watchQuery = `subscription($id: ID!) { generationProgress(id: $id) { status progress } }`

// TestShutdownUnderLoad stops a server the way SIGTERM does while a
// websocket and an event stream are subscribed and the worker is in the
// middle of a generation: Run returns nil within the bound, the socket is
// closed with 1001, the stream ends, the generation is released for
// another worker, and no goroutine is left behind.
func TestShutdownUnderLoad(t *testing.T) {
	// Not parallel: the goroutine-leak check must see this test's
	// goroutines only.
	d := dbtest.New(t)
	ignore := goleak.IgnoreCurrent()

	srv := apptest.Start(t, d, apptest.WithWorker(), apptest.WithApp(
		app.WithVoice(slowVoice{local.New(local.Config{ChunkLimit: 60, EspeakPath: "-", Logger: apptest.Logger()})}),
	))
	alice := srv.NewUser("alice@example.com", false)
	srv.Exec(`INSERT INTO voice_samples (user_id, elevenlabs_voice_id, verification_phrase, verified)
		VALUES ($1, 'voice-alice', 'apple river candle', true)`, alice.ID)
	var story uuid.UUID
	srv.Scan(`INSERT INTO stories (title, slug, content) VALUES ('Long', 'long', repeat('The fox ran far away. ', 300)) RETURNING id`, nil, &story)

	var started struct{ StartGeneration struct{ ID string } }
	srv.Post(alice.Token, `mutation($s: ID!) { startGeneration(storyId: $s) { id } }`, map[string]any{"s": story}).Decode(t, &started)
	gen := started.StartGeneration.ID

	ws := apptest.DialWS(t, srv.URL, apptest.ProtoTransportWS, apptest.AuthInit(alice.Token))
	ws.Ack()
	ws.Subscribe("1", watchQuery, map[string]any{"id": gen})
	if ev := ws.NextEvent("1", 5*time.Second); ev.Kind != "data" {
		t.Fatalf("snapshot: %+v", ev)
	}
	stream := openEventStream(t, srv.URL, alice.Token, gen)

	// Wait until the worker is into the story.
	dbtest.WaitFor(t, 0, func() bool {
		return srv.Count(`SELECT count(*) FROM story_generations WHERE id = $1 AND status = 'in_progress' AND progress > 0`, gen) == 1
	}, "the worker did not start the generation")

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // as SIGTERM does
	done := make(chan error, 1)
	go func() { done <- srv.App.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(app.ShutdownTimeout + 5*time.Second):
		t.Fatal("shutdown did not finish in time")
	}

	if code := ws.WaitClosed(5 * time.Second); code != 1001 {
		t.Errorf("websocket closed with %d, want 1001", code)
	}
	select {
	case <-stream:
	case <-time.After(5 * time.Second):
		t.Error("the event stream did not end")
	}
	// The generation was released (or, had it been its last chunk,
	// completed), never left leased to a stopped worker.
	var status string
	var leased bool
	srv.Scan(`SELECT status::text, lease_owner IS NOT NULL FROM story_generations WHERE id = $1`, []any{gen}, &status, &leased)
	if leased || (status != "pending" && status != "completed") {
		t.Errorf("after shutdown the generation is %s (leased %v), want released", status, leased)
	}
	srv.Admin.Close()
	http.DefaultClient.CloseIdleConnections()
	goleak.VerifyNone(t, ignore)
}

// openEventStream subscribes to gen over server-sent events and returns a
// channel closed when the stream ends, after its first event.
func openEventStream(t *testing.T, baseURL, token, gen string) <-chan struct{} {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": watchQuery, "variables": map[string]any{"id": gen}})
	req, err := http.NewRequest(http.MethodPost, baseURL+"/graphql", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = res.Body.Close() })
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type %q, want an event stream", ct)
	}
	lines := bufio.NewScanner(res.Body)
	for lines.Scan() {
		if strings.HasPrefix(lines.Text(), "data:") {
			break
		}
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for lines.Scan() {
		}
	}()
	return ended
}

// TestWorkerWakesOnNotification proves the embedded worker is woken by
// the notification of a queued generation: it polls only once an hour
// here, so without the wake-up nothing would start.
func TestWorkerWakesOnNotification(t *testing.T) {
	t.Parallel()
	srv := apptest.New(t, apptest.WithWorker(), apptest.WithConfig(func(c *config.Config) {
		c.WorkerPollInterval = time.Hour
	}))
	alice := srv.NewUser("alice@example.com", false)
	srv.Exec(`INSERT INTO voice_samples (user_id, elevenlabs_voice_id, verification_phrase, verified)
		VALUES ($1, 'voice-alice', 'apple river candle', true)`, alice.ID)
	var story uuid.UUID
	srv.Scan(`INSERT INTO stories (title, slug, content) VALUES ('Short', 'short', 'The fox ran.') RETURNING id`, nil, &story)

	var started struct{ StartGeneration struct{ ID string } }
	srv.Post(alice.Token, `mutation($s: ID!) { startGeneration(storyId: $s) { id } }`, map[string]any{"s": story}).Decode(t, &started)
	dbtest.WaitFor(t, 0, func() bool {
		return srv.Count(`SELECT count(*) FROM story_generations WHERE id = $1 AND status = 'completed'`, started.StartGeneration.ID) == 1
	}, "the generation was not narrated: the worker was not woken")
}
