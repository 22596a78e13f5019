package api_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/narrate/narrate/generation"
)

const progressQuery = `subscription($id: ID!) { generationProgress(id: $id) { id status progress story { title } } }`

// rtEnv is a database with fixtures and one realtime server on it.
type rtEnv struct {
	*env
	srv *rtServer
}

func newRTEnv(t *testing.T) *rtEnv {
	t.Helper()
	e := newEnv(t)
	return &rtEnv{env: e, srv: startRealtime(t, e.DB, 50*time.Millisecond)}
}

// setProgress moves a generation on, as the worker would.
func (e *env) setProgress(id uuid.UUID, status generation.Status, progress int) {
	e.t.Helper()
	e.exec(`UPDATE story_generations SET status = $2, progress = $3 WHERE id = $1`, id, string(status), progress)
}

func TestGenerationProgressBothSubprotocols(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{protoTransportWS, protoLegacyWS} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			e := newRTEnv(t)
			alice := e.newUser("alice@example.com", false)
			story := e.story("The Fox", "the-fox")
			gen := e.generation(alice, story, generation.Pending)

			c, first := followGeneration(t, e.srv.URL, proto, alice.Token, gen)
			if first.Status != "PENDING" || first.Progress != 0 || first.Story.Title != "The Fox" {
				t.Fatalf("snapshot = %+v, want PENDING/0 of The Fox", first)
			}

			e.setProgress(gen, generation.InProgress, 10)
			e.setProgress(gen, generation.InProgress, 50)
			e.exec(`UPDATE stories SET title = 'The Fox (revised)' WHERE id = $1`, story)
			e.setProgress(gen, generation.Completed, 100)

			got := c.progressUntilComplete("1", 5*time.Second)
			if len(got) == 0 || got[len(got)-1].Status != "COMPLETED" || got[len(got)-1].Progress != 100 {
				t.Fatalf("events = %v, want to end COMPLETED/100", got)
			}
			last := -1
			sawInProgress := false
			for _, p := range got {
				if p.Progress < last {
					t.Errorf("progress went backwards: %v", got)
				}
				last = p.Progress
				sawInProgress = sawInProgress || p.Status == "IN_PROGRESS"
			}
			if !sawInProgress {
				t.Errorf("events %v skipped IN_PROGRESS", got)
			}
			// Nested fields are read per event, never from a stale cache.
			if title := got[len(got)-1].Story.Title; title != "The Fox (revised)" {
				t.Errorf("last event's story title = %q, want the revised one", title)
			}
		})
	}
}

func TestViewerGenerationsSeesNewGeneration(t *testing.T) {
	t.Parallel()
	e := newRTEnv(t)
	alice := e.newUser("alice@example.com", false)
	bob := e.newUser("bob@example.com", false)
	e.verifiedVoice(alice)
	e.verifiedVoice(bob)
	story := e.story("The Fox", "the-fox")

	c := dialWS(t, e.srv.URL, protoTransportWS, authInit(alice.Token))
	c.ack()
	c.subscribe("v", `subscription { viewerGenerations { id status progress story { title } } }`, nil)
	// Bob's generation must not reach Alice; hers must. Both start once
	// her subscription listens, or the first check would prove nothing.
	e.srv.waitHubSubscriptions(t, 1)
	e.post(bob.Token, `mutation($s: ID!) { startGeneration(storyId: $s) { id } }`, map[string]any{"s": story})
	var started struct{ StartGeneration struct{ ID string } }
	e.post(alice.Token, `mutation($s: ID!) { startGeneration(storyId: $s) { id } }`, map[string]any{"s": story}).decode(t, &started)

	p := decodeProgress(t, c.nextEvent("v", 5*time.Second), "viewerGenerations")
	if p.ID != started.StartGeneration.ID || p.Status != "PENDING" || p.Story.Title != "The Fox" {
		t.Fatalf("event = %+v, want Alice's new generation %s", p, started.StartGeneration.ID)
	}
	e.setProgress(uuid.MustParse(p.ID), generation.InProgress, 20)
	if p := decodeProgress(t, c.nextEvent("v", 5*time.Second), "viewerGenerations"); p.Status != "IN_PROGRESS" || p.Progress != 20 {
		t.Fatalf("second event = %+v, want IN_PROGRESS/20", p)
	}
}

func TestSubscriptionIsolation(t *testing.T) {
	t.Parallel()
	e := newRTEnv(t)
	alice := e.newUser("alice@example.com", false)
	bob := e.newUser("bob@example.com", false)
	gen := e.generation(alice, e.story("The Fox", "the-fox"), generation.Pending)

	t.Run("other user's generation", func(t *testing.T) {
		c := dialWS(t, e.srv.URL, protoTransportWS, authInit(bob.Token))
		c.ack()
		c.subscribe("1", progressQuery, map[string]any{"id": gen})
		ev := c.nextEvent("1", 5*time.Second)
		if ev.Kind != "error" || len(ev.Errors) == 0 || ev.Errors[0].Extensions["code"] != "NOT_FOUND" {
			t.Fatalf("got %+v, want a NOT_FOUND error", ev)
		}
		// No data may follow, even when the generation changes (gqlgen
		// may still confirm the operation's end with complete).
		e.setProgress(gen, generation.InProgress, 30)
		quiet := time.After(300 * time.Millisecond)
		for done := false; !done; {
			select {
			case m, ok := <-c.msgs:
				if !ok {
					// The socket closed: nothing more can arrive.
					done = true
				} else if m.Type != "complete" {
					t.Fatalf("unexpected message after the error: %+v", m)
				}
			case <-quiet:
				done = true
			}
		}
	})
	t.Run("unknown generation", func(t *testing.T) {
		c := dialWS(t, e.srv.URL, protoLegacyWS, authInit(alice.Token))
		c.ack()
		c.subscribe("1", progressQuery, map[string]any{"id": uuid.New()})
		if ev := c.nextEvent("1", 5*time.Second); ev.Kind != "error" || ev.Errors[0].Extensions["code"] != "NOT_FOUND" {
			t.Fatalf("got %+v, want NOT_FOUND", ev)
		}
	})
	t.Run("anonymous socket", func(t *testing.T) {
		c := dialWS(t, e.srv.URL, protoTransportWS, nil)
		c.ack()
		c.subscribe("1", progressQuery, map[string]any{"id": gen})
		if ev := c.nextEvent("1", 5*time.Second); ev.Kind != "error" || ev.Errors[0].Extensions["code"] != "UNAUTHENTICATED" {
			t.Fatalf("got %+v, want UNAUTHENTICATED", ev)
		}
	})
	for name, init := range map[string]map[string]any{
		"bad token":       authInit("not-a-token"),
		"empty bearer":    {"Authorization": "Bearer "},
		"headers form":    {"headers": map[string]any{"authorization": "Bearer x.y.z"}},
		"wrong signature": authInit(alice.Token[:len(alice.Token)-4] + "AAAA"),
	} {
		t.Run(name, func(t *testing.T) {
			c := dialWS(t, e.srv.URL, protoTransportWS, init)
			if code := c.waitClosed(5 * time.Second); code != 4403 {
				t.Fatalf("close code = %d, want 4403", code)
			}
		})
	}
	t.Run("headers form accepted", func(t *testing.T) {
		c := dialWS(t, e.srv.URL, protoTransportWS, map[string]any{"headers": map[string]any{"Authorization": "Bearer " + alice.Token}})
		c.ack()
		c.subscribe("1", progressQuery, map[string]any{"id": gen})
		if p := decodeProgress(t, c.nextEvent("1", 5*time.Second), "generationProgress"); p.ID != gen.String() {
			t.Fatalf("got %+v", p)
		}
	})
}

func TestSocketClosedWhenTokenExpires(t *testing.T) {
	t.Parallel()
	e := newRTEnv(t)
	alice := e.newUser("alice@example.com", false)
	token := mintToken(t, alice, 2*time.Second)
	c := dialWS(t, e.srv.URL, protoTransportWS, authInit(token))
	c.ack()
	if code := c.waitClosed(10 * time.Second); code != 4403 {
		t.Fatalf("close code = %d, want 4403 at expiry", code)
	}
}

func TestShutdownClosesSocketsWith1001(t *testing.T) {
	t.Parallel()
	e := newRTEnv(t)
	alice := e.newUser("alice@example.com", false)
	c := dialWS(t, e.srv.URL, protoTransportWS, authInit(alice.Token))
	c.ack()
	pending := dialWS(t, e.srv.URL, protoLegacyWS, authInit(alice.Token))
	pending.ack()
	e.srv.Sockets.Shutdown()
	for _, c := range []*wsClient{c, pending} {
		if code := c.waitClosed(5 * time.Second); code != 1001 {
			t.Fatalf("close code = %d, want 1001", code)
		}
	}
}

func TestSecondProcessDeliversChanges(t *testing.T) {
	t.Parallel()
	e := newRTEnv(t)
	other := startRealtime(t, e.DB, 50*time.Millisecond)
	alice := e.newUser("alice@example.com", false)
	gen := e.generation(alice, e.story("The Fox", "the-fox"), generation.InProgress)

	// Subscribed on the second process; cancelled through the first.
	c, p := followGeneration(t, other.URL, protoTransportWS, alice.Token, gen)
	if p.Status != "IN_PROGRESS" {
		t.Fatalf("snapshot %+v", p)
	}
	res := e.postTo(e.srv.URL, alice.Token, `mutation($id: ID!) { cancelGeneration(id: $id) { status } }`, map[string]any{"id": gen})
	if len(res.Errors) > 0 {
		t.Fatal(res.Errors)
	}
	if p := decodeProgress(t, c.nextEvent("1", 5*time.Second), "generationProgress"); p.Status != "FAILED" {
		t.Fatalf("got %+v, want FAILED", p)
	}
	if ev := c.nextEvent("1", 5*time.Second); ev.Kind != "complete" {
		t.Fatalf("got %+v, want complete", ev)
	}
}

func TestTerminalEventSurvivesListenerReconnect(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// A slow reconnect, so the change certainly happens while the
	// listener is down and only the resync can deliver it.
	srv := startRealtime(t, e.DB, 700*time.Millisecond)
	alice := e.newUser("alice@example.com", false)
	gen := e.generation(alice, e.story("The Fox", "the-fox"), generation.InProgress)

	c, _ := followGeneration(t, srv.URL, protoTransportWS, alice.Token, gen)

	e.exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query ILIKE 'listen%'`)
	deadline := time.Now().Add(5 * time.Second)
	for srv.Listener.Connected() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if srv.Listener.Connected() {
		t.Fatal("listener did not notice its backend was terminated")
	}
	e.setProgress(gen, generation.Completed, 100)

	if last := lastProgress(t, c.progressUntilComplete("1", 10*time.Second)); last.Status != "COMPLETED" {
		t.Fatalf("last event %+v, want COMPLETED", last)
	}
}

func TestSlowClientDoesNotSlowOthers(t *testing.T) {
	t.Parallel()
	e := newRTEnv(t)
	alice := e.newUser("alice@example.com", false)
	gen := e.generation(alice, e.story("The Fox", "the-fox"), generation.InProgress)

	// Large events fill the slow client's socket buffers within a few
	// events, so the server's writes to it block.
	e.exec(`UPDATE stories SET content = repeat('All work and no play. ', 20000)`)
	// The slow client subscribes and then never reads again.
	slow := dialWSNoRead(t, e.srv.URL, authInit(alice.Token))
	slow.subscribe("s", `subscription($id: ID!) { generationProgress(id: $id) { id status progress story { content } } }`, map[string]any{"id": gen})
	fast, _ := followGeneration(t, e.srv.URL, protoTransportWS, alice.Token, gen)

	for i := 1; i < 100; i++ {
		e.setProgress(gen, generation.InProgress, i)
	}
	e.setProgress(gen, generation.Completed, 100)
	if last := lastProgress(t, fast.progressUntilComplete("1", 10*time.Second)); last.Status != "COMPLETED" {
		t.Fatalf("fast client's last event %+v, want COMPLETED", last)
	}
}

func TestThousandSubscriptionsLeaveNoGoroutines(t *testing.T) {
	// Not parallel: goroutines are counted for the whole process.
	e := newEnv(t)
	srv := startRealtime(t, e.DB, 50*time.Millisecond)
	alice := e.newUser("alice@example.com", false)
	gen := e.generation(alice, e.story("The Fox", "the-fox"), generation.InProgress)
	ignore := goleak.IgnoreCurrent()

	const sockets, perSocket = 20, 50
	clients := make([]*wsClient, sockets)
	for i := range clients {
		c := dialWS(t, srv.URL, protoTransportWS, authInit(alice.Token))
		c.ack()
		for j := 0; j < perSocket; j++ {
			c.subscribe(fmt.Sprint(j), progressQuery, map[string]any{"id": gen})
		}
		clients[i] = c
	}
	for _, c := range clients {
		for j := 0; j < perSocket; j++ {
			decodeProgress(t, c.nextEvent(fmt.Sprint(j), 10*time.Second), "generationProgress")
		}
	}
	e.setProgress(gen, generation.InProgress, 50)
	for _, c := range clients {
		for j := 0; j < perSocket; j++ {
			if p := decodeProgress(t, c.nextEvent(fmt.Sprint(j), 10*time.Second), "generationProgress"); p.Progress != 50 {
				t.Fatalf("got %+v", p)
			}
		}
	}
	// Half the clients stop their operations, the others just hang up.
	for i, c := range clients {
		if i%2 == 0 {
			for j := 0; j < perSocket; j++ {
				c.stop(fmt.Sprint(j))
			}
		}
		_ = c.conn.Close()
	}
	// goleak retries for a while, so sockets still closing are waited for.
	if err := goleak.Find(ignore); err != nil {
		t.Fatal(err)
	}
}

func TestKeepAlives(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := startRealtime(t, e.DB, 50*time.Millisecond, withKeepAlive(50*time.Millisecond))
	alice := e.newUser("alice@example.com", false)
	for _, proto := range []string{protoTransportWS, protoLegacyWS} {
		c := dialWS(t, srv.URL, proto, authInit(alice.Token))
		c.ack()
		deadline := time.Now().Add(5 * time.Second)
		for c.keepAlives.Load() < 3 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := c.keepAlives.Load(); n < 3 {
			t.Errorf("%s: %d keepalives in 5 s at a 50 ms interval", proto, n)
		}
	}
}

func TestWebsocketOriginsFollowCORSOrigins(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := startRealtime(t, e.DB, 50*time.Millisecond, withOrigins("https://app.example.com"))
	url := wsURL(srv.URL)
	for origin, want := range map[string]int{
		"https://app.example.com":  http.StatusSwitchingProtocols,
		"https://evil.example.com": http.StatusForbidden,
	} {
		dialer := websocket.Dialer{Subprotocols: []string{protoTransportWS}}
		conn, res, err := dialer.Dial(url, http.Header{"Origin": {origin}})
		if conn != nil {
			conn.Close()
		}
		if res == nil {
			t.Fatalf("%s: no response: %v", origin, err)
		}
		if res.StatusCode != want {
			t.Errorf("origin %s: HTTP %d, want %d", origin, res.StatusCode, want)
		}
	}
}
