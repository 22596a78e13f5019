package api_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/narrate/narrate/app"
	"github.com/narrate/narrate/app/apptest"
	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/generation"
)

const progressQuery = `subscription($id: ID!) { generationProgress(id: $id) { id status progress story { title } } }`

// setProgress moves a generation on, as the worker would.
func (e *env) setProgress(id uuid.UUID, status generation.Status, progress int) {
	e.t.Helper()
	e.Exec(`UPDATE story_generations SET status = $2, progress = $3 WHERE id = $1`, id, string(status), progress)
}

func TestGenerationProgressBothSubprotocols(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{protoTransportWS, protoLegacyWS} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			alice := e.NewUser("alice@example.com", false)
			story := e.story("The Fox", "the-fox")
			gen := e.generation(alice, story, generation.Pending)

			c, first := followGeneration(t, e.URL, proto, alice.Token, gen)
			if first.Status != "PENDING" || first.Progress != 0 || first.Story.Title != "The Fox" {
				t.Fatalf("snapshot = %+v, want PENDING/0 of The Fox", first)
			}

			e.setProgress(gen, generation.InProgress, 10)
			e.setProgress(gen, generation.InProgress, 50)
			e.Exec(`UPDATE stories SET title = 'The Fox (revised)' WHERE id = $1`, story)
			e.setProgress(gen, generation.Completed, 100)

			got := progressUntilComplete(t, c, "1", 5*time.Second)
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
	e := newEnv(t)
	alice := e.narrator("alice@example.com")
	bob := e.narrator("bob@example.com")
	story := e.story("The Fox", "the-fox")

	c := apptest.DialWS(t, e.URL, protoTransportWS, apptest.AuthInit(alice.Token))
	c.Ack()
	c.Subscribe("v", `subscription { viewerGenerations { id status progress story { title } } }`, nil)
	// Bob's generation must not reach Alice; hers must. Both start once
	// her subscription listens, or the first check would prove nothing.
	e.WaitHubSubscriptions(1)
	e.Post(bob.Token, `mutation($s: ID!) { startGeneration(storyId: $s) { id } }`, map[string]any{"s": story})
	var started struct{ StartGeneration struct{ ID string } }
	e.Post(alice.Token, `mutation($s: ID!) { startGeneration(storyId: $s) { id } }`, map[string]any{"s": story}).Decode(t, &started)

	p := decodeProgress(t, c.NextEvent("v", 5*time.Second), "viewerGenerations")
	if p.ID != started.StartGeneration.ID || p.Status != "PENDING" || p.Story.Title != "The Fox" {
		t.Fatalf("event = %+v, want Alice's new generation %s", p, started.StartGeneration.ID)
	}
	e.setProgress(uuid.MustParse(p.ID), generation.InProgress, 20)
	if p := decodeProgress(t, c.NextEvent("v", 5*time.Second), "viewerGenerations"); p.Status != "IN_PROGRESS" || p.Progress != 20 {
		t.Fatalf("second event = %+v, want IN_PROGRESS/20", p)
	}
}

func TestSubscriptionIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, gen := e.aliceWithGeneration(generation.Pending)
	bob := e.NewUser("bob@example.com", false)

	t.Run("other user's generation", func(t *testing.T) {
		c := apptest.DialWS(t, e.URL, protoTransportWS, apptest.AuthInit(bob.Token))
		c.Ack()
		c.Subscribe("1", progressQuery, map[string]any{"id": gen})
		ev := c.NextEvent("1", 5*time.Second)
		if ev.Kind != "error" || len(ev.Errors) == 0 || ev.Errors[0].Extensions["code"] != "NOT_FOUND" {
			t.Fatalf("got %+v, want a NOT_FOUND error", ev)
		}
		// No data may follow, even when the generation changes (gqlgen
		// may still confirm the operation's end with complete).
		e.setProgress(gen, generation.InProgress, 30)
		quiet := time.After(300 * time.Millisecond)
		for done := false; !done; {
			select {
			case m, ok := <-c.Messages():
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
		c := apptest.DialWS(t, e.URL, protoLegacyWS, apptest.AuthInit(alice.Token))
		c.Ack()
		c.Subscribe("1", progressQuery, map[string]any{"id": uuid.New()})
		if ev := c.NextEvent("1", 5*time.Second); ev.Kind != "error" || ev.Errors[0].Extensions["code"] != "NOT_FOUND" {
			t.Fatalf("got %+v, want NOT_FOUND", ev)
		}
	})
	t.Run("anonymous socket", func(t *testing.T) {
		c := apptest.DialWS(t, e.URL, protoTransportWS, nil)
		c.Ack()
		c.Subscribe("1", progressQuery, map[string]any{"id": gen})
		if ev := c.NextEvent("1", 5*time.Second); ev.Kind != "error" || ev.Errors[0].Extensions["code"] != "UNAUTHENTICATED" {
			t.Fatalf("got %+v, want UNAUTHENTICATED", ev)
		}
	})
	for name, init := range map[string]map[string]any{
		"bad token":       apptest.AuthInit("not-a-token"),
		"empty bearer":    {"Authorization": "Bearer "},
		"headers form":    {"headers": map[string]any{"authorization": "Bearer x.y.z"}},
		"wrong signature": apptest.AuthInit(alice.Token[:len(alice.Token)-4] + "AAAA"),
	} {
		t.Run(name, func(t *testing.T) {
			c := apptest.DialWS(t, e.URL, protoTransportWS, init)
			if code := c.WaitClosed(5 * time.Second); code != 4403 {
				t.Fatalf("close code = %d, want 4403", code)
			}
		})
	}
	t.Run("headers form accepted", func(t *testing.T) {
		c := apptest.DialWS(t, e.URL, protoTransportWS, map[string]any{"headers": map[string]any{"Authorization": "Bearer " + alice.Token}})
		c.Ack()
		c.Subscribe("1", progressQuery, map[string]any{"id": gen})
		if p := decodeProgress(t, c.NextEvent("1", 5*time.Second), "generationProgress"); p.ID != gen.String() {
			t.Fatalf("got %+v", p)
		}
	})
}

func TestSocketClosedWhenTokenExpires(t *testing.T) {
	t.Parallel()
	// A short leeway: the socket lives as long as HTTP would accept the
	// token, expiry plus the leeway.
	e := newEnv(t, withLeeway(t, time.Second))
	alice := e.NewUser("alice@example.com", false)
	token := mintToken(t, alice, 2*time.Second)
	c := apptest.DialWS(t, e.URL, protoTransportWS, apptest.AuthInit(token))
	c.Ack()
	if code := c.WaitClosed(10 * time.Second); code != 4403 {
		t.Fatalf("close code = %d, want 4403 at expiry", code)
	}
}

func TestShutdownClosesSocketsWith1001(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.NewUser("alice@example.com", false)
	c := apptest.DialWS(t, e.URL, protoTransportWS, apptest.AuthInit(alice.Token))
	c.Ack()
	pending := apptest.DialWS(t, e.URL, protoLegacyWS, apptest.AuthInit(alice.Token))
	pending.Ack()
	e.App.Sockets.Shutdown()
	for _, c := range []*wsClient{c, pending} {
		if code := c.WaitClosed(5 * time.Second); code != 1001 {
			t.Fatalf("close code = %d, want 1001", code)
		}
	}
}

func TestSecondProcessDeliversChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	other := apptest.Start(t, e.DB)
	alice, gen := e.aliceWithGeneration(generation.InProgress)

	// Subscribed on the second process; cancelled through the first.
	c, p := followGeneration(t, other.URL, protoTransportWS, alice.Token, gen)
	if p.Status != "IN_PROGRESS" {
		t.Fatalf("snapshot %+v", p)
	}
	res := apptest.PostTo(t, e.URL, alice.Token, `mutation($id: ID!) { cancelGeneration(id: $id) { status } }`, map[string]any{"id": gen})
	if len(res.Errors) > 0 {
		t.Fatal(res.Errors)
	}
	if p := decodeProgress(t, c.NextEvent("1", 5*time.Second), "generationProgress"); p.Status != "FAILED" {
		t.Fatalf("got %+v, want FAILED", p)
	}
	if ev := c.NextEvent("1", 5*time.Second); ev.Kind != "complete" {
		t.Fatalf("got %+v, want complete", ev)
	}
}

func TestTerminalEventSurvivesListenerReconnect(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// A slow reconnect, so the change certainly happens while the
	// listener is down and only the resync can deliver it.
	srv := apptest.Start(t, e.DB, apptest.WithApp(app.WithListenBackoff(700*time.Millisecond)))
	alice, gen := e.aliceWithGeneration(generation.InProgress)

	c, _ := followGeneration(t, srv.URL, protoTransportWS, alice.Token, gen)

	e.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query ILIKE 'listen%'`)
	dbtest.WaitFor(t, 0, func() bool { return !srv.App.Listener.Connected() }, "the listener did not notice its backend was terminated")
	e.setProgress(gen, generation.Completed, 100)

	if last := lastProgress(t, progressUntilComplete(t, c, "1", 10*time.Second)); last.Status != "COMPLETED" {
		t.Fatalf("last event %+v, want COMPLETED", last)
	}
}

func TestSlowClientDoesNotSlowOthers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, gen := e.aliceWithGeneration(generation.InProgress)

	// Large events fill the slow client's socket buffers within a few
	// events, so the server's writes to it block.
	e.Exec(`UPDATE stories SET content = repeat('All work and no play. ', 20000)`)
	// The slow client subscribes and then never reads again.
	slow := apptest.DialWSNoRead(t, e.URL, apptest.AuthInit(alice.Token))
	slow.Subscribe("s", `subscription($id: ID!) { generationProgress(id: $id) { id status progress story { content } } }`, map[string]any{"id": gen})
	fast, _ := followGeneration(t, e.URL, protoTransportWS, alice.Token, gen)

	for i := 1; i < 100; i++ {
		e.setProgress(gen, generation.InProgress, i)
	}
	e.setProgress(gen, generation.Completed, 100)
	if last := lastProgress(t, progressUntilComplete(t, fast, "1", 10*time.Second)); last.Status != "COMPLETED" {
		t.Fatalf("fast client's last event %+v, want COMPLETED", last)
	}
}

func TestTenThousandSubscriptionsLeaveNoGoroutines(t *testing.T) {
	// Not parallel: goroutines are counted for the whole process.
	e := newEnv(t)
	story := e.story("The Fox", "the-fox")
	users := []user{e.NewUser("alice@example.com", false), e.NewUser("bob@example.com", false)}
	gens := []uuid.UUID{e.generation(users[0], story, generation.InProgress), e.generation(users[1], story, generation.InProgress)}
	// The pool may open connections meanwhile; they are not the sockets'.
	ignore := []goleak.Option{goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("github.com/jackc/pgx/v5/pgconn/internal/bgreader.(*BGReader).bgRead")}

	// 10,000 subscriptions: 50 sockets of each user (within the per-user
	// cap), 100 subscriptions each (the per-socket cap).
	const sockets, perSocket = 100, 100
	query := `subscription($id: ID!) { generationProgress(id: $id) { id status progress } }`
	clients := make([]*wsClient, sockets)
	for i := range clients {
		c := apptest.DialWS(t, e.URL, protoTransportWS, apptest.AuthInit(users[i%2].Token))
		c.Ack()
		for j := range perSocket {
			c.Subscribe(fmt.Sprint(j), query, map[string]any{"id": gens[i%2]})
		}
		clients[i] = c
	}
	for _, c := range clients {
		for j := range perSocket {
			decodeProgress(t, c.NextEvent(fmt.Sprint(j), dbtest.WaitLimit), "generationProgress")
		}
	}
	e.WaitHubSubscriptions(sockets * perSocket)
	e.setProgress(gens[0], generation.InProgress, 50)
	e.setProgress(gens[1], generation.InProgress, 50)
	for _, c := range clients {
		for j := range perSocket {
			if p := decodeProgress(t, c.NextEvent(fmt.Sprint(j), dbtest.WaitLimit), "generationProgress"); p.Progress != 50 {
				t.Fatalf("got %+v", p)
			}
		}
	}
	// Half the clients stop their operations, the others just hang up.
	for i, c := range clients {
		if i%2 == 0 {
			for j := range perSocket {
				c.Stop(fmt.Sprint(j))
			}
		}
		_ = c.Conn.Close()
	}
	waitSocketsGone(t, e)
	// goleak retries for a while, so sockets still closing are waited for.
	if err := goleak.Find(ignore...); err != nil {
		t.Fatal(err)
	}
}

func TestKeepAlives(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := apptest.Start(t, e.DB, apptest.WithApp(app.WithKeepAlive(50*time.Millisecond)))
	alice := e.NewUser("alice@example.com", false)
	for _, proto := range []string{protoTransportWS, protoLegacyWS} {
		c := apptest.DialWS(t, srv.URL, proto, apptest.AuthInit(alice.Token))
		c.Ack()
		dbtest.WaitFor(t, 0, func() bool { return c.KeepAlives() >= 3 }, "%s: fewer than 3 keepalives at a 50 ms interval", proto)
	}
}

func TestWebsocketOriginsFollowCORSOrigins(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := apptest.Start(t, e.DB, apptest.WithCORSOrigins("https://app.example.com"))
	url := apptest.WSURL(srv.URL)
	for origin, want := range map[string]int{
		"https://app.example.com":  http.StatusSwitchingProtocols,
		"https://evil.example.com": http.StatusForbidden,
		// The server's own pages may always open sockets.
		srv.URL: http.StatusSwitchingProtocols,
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
