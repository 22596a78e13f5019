package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/narrate/narrate/api"
	"github.com/narrate/narrate/app"
	"github.com/narrate/narrate/app/apptest"
	"github.com/narrate/narrate/auth"
	"github.com/narrate/narrate/auth/authtest"
	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/socket"
)

// Gauges every exit path must bring back down.
const (
	gaugeSockets       = "narrate_realtime_open_sockets"
	gaugeSubscriptions = "narrate_realtime_active_subscriptions"
)

// rawOutcome is what a hostile client saw: the message types the server
// sent, in order, and the close code it ended with.
type rawOutcome struct {
	types []string
	code  int
}

// sendRaw opens a socket with proto, sends msgs as they are and reads until
// the server closes the socket, within 5 s.
func sendRaw(t *testing.T, baseURL, proto string, msgs ...string) rawOutcome {
	t.Helper()
	conn := apptest.DialConn(t, baseURL, proto)
	for _, m := range msgs {
		if err := conn.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			// The server may already have closed: its close frame tells why.
			break
		}
	}
	return readUntilClosed(t, conn)
}

func readUntilClosed(t *testing.T, conn *websocket.Conn) rawOutcome {
	t.Helper()
	var out rawOutcome
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for {
		var m apptest.WSMessage
		err := conn.ReadJSON(&m)
		var ce *websocket.CloseError
		switch {
		case errors.As(err, &ce):
			out.code = ce.Code
			return out
		case err != nil:
			t.Fatalf("read: %v (after %v)", err, out.types)
		}
		out.types = append(out.types, m.Type)
	}
}

// neverReads opens a socket with proto, reads its ack, starts operation id
// and then never reads again: a stalled browser tab.
func neverReads(t *testing.T, baseURL, proto, token, id, query string, vars map[string]any) {
	t.Helper()
	conn := apptest.DialConn(t, baseURL, proto)
	if err := conn.WriteMessage(websocket.TextMessage, []byte(initMsg(`{"Authorization":"Bearer `+token+`"}`))); err != nil {
		t.Fatal(err)
	}
	var ack apptest.WSMessage
	if err := conn.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		t.Fatalf("want connection_ack, got %+v, %v", ack, err)
	}
	typ := "subscribe"
	if proto == protoLegacyWS {
		typ = "start"
	}
	b, _ := json.Marshal(map[string]any{"type": typ, "id": id, "payload": map[string]any{"query": query, "variables": vars}})
	if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
}

// gauges are a test server's gauges.
type gauges interface{ Gauge(name string) float64 }

// waitGauge waits until the server's gauge name reads n.
func waitGauge(t testing.TB, s gauges, name string, n float64) {
	t.Helper()
	dbtest.WaitFor(t, 0, func() bool { return s.Gauge(name) == n }, "%s never reached %v", name, n)
}

// waitSocketsGone waits until every socket and every subscription on the
// server has ended: what every exit path must leave.
func waitSocketsGone(t testing.TB, s gauges) {
	t.Helper()
	waitGauge(t, s, gaugeSockets, 0)
	waitGauge(t, s, gaugeSubscriptions, 0)
}

// withLeeway gives the server a verifier of testSecret with leeway.
func withLeeway(t testing.TB, leeway time.Duration) apptest.Option {
	t.Helper()
	v, err := auth.NewVerifier(context.Background(), auth.Config{Secret: testSecret, Leeway: leeway})
	if err != nil {
		t.Fatal(err)
	}
	return withVerifier(v)
}

// withSockets adjusts the server's websocket settings.
func withSockets(edit func(*api.Sockets)) apptest.Option {
	return apptest.WithApp(app.WithSockets(edit))
}

func initMsg(payload string) string {
	return `{"type":"connection_init","payload":` + payload + `}`
}

func opMsg(typ, id string, vars map[string]any) string {
	b, _ := json.Marshal(map[string]any{"type": typ, "id": id, "payload": map[string]any{"query": progressQuery, "variables": vars}})
	return string(b)
}

func TestHostileClientsAreClosedWithTheProtocolsCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, gen := e.aliceWithGeneration(generation.InProgress)
	auth := initMsg(`{"Authorization":"Bearer ` + alice.Token + `"}`)
	vars := map[string]any{"id": gen}
	sub, start := opMsg("subscribe", "1", vars), opMsg("start", "1", vars)

	tests := []struct {
		name  string
		proto string
		msgs  []string
		// acked: connection_ack must come before the close; otherwise it
		// must not come at all.
		acked bool
		code  int
	}{
		{"duplicate id", protoTransportWS, []string{auth, sub, sub}, true, 4409},
		{"duplicate id, legacy", protoLegacyWS, []string{auth, start, start}, true, 4409},
		{"subscribe before connection_init", protoTransportWS, []string{sub}, false, 4401},
		{"start before connection_init, legacy", protoLegacyWS, []string{start}, false, 4401},
		{"second connection_init", protoTransportWS, []string{auth, auth}, true, 4429},
		{"unknown message type", protoTransportWS, []string{auth, `{"type":"hello"}`}, true, 4400},
		{"other protocol's message, legacy", protoLegacyWS, []string{auth, sub}, true, 4400},
		{"not JSON", protoTransportWS, []string{`nope`}, false, 4400},
		{"id not a string", protoTransportWS, []string{auth, `{"type":"subscribe","id":1,"payload":{}}`}, true, 4400},
		{"subscribe without id", protoTransportWS, []string{auth, `{"type":"subscribe","payload":{"query":"{ __typename }"}}`}, true, 4400},
		{"payload a number", protoTransportWS, []string{initMsg(`42`)}, false, 4400},
		{"payload a string", protoTransportWS, []string{initMsg(`"Bearer ` + alice.Token + `"`)}, false, 4400},
		{"payload an array", protoTransportWS, []string{initMsg(`[{"Authorization":"x"}]`)}, false, 4400},
		{"payload a number, legacy", protoLegacyWS, []string{initMsg(`42`)}, false, 4400},
		{"Authorization a number", protoTransportWS, []string{initMsg(`{"Authorization":42}`)}, false, 4403},
		{"Authorization an object", protoTransportWS, []string{initMsg(`{"Authorization":{"token":"x"}}`)}, false, 4403},
		{"Authorization null", protoTransportWS, []string{initMsg(`{"Authorization":null}`)}, false, 4403},
		{"Authorization a number, legacy", protoLegacyWS, []string{initMsg(`{"Authorization":42}`)}, false, 4403},
		{"headers' Authorization a number", protoTransportWS, []string{initMsg(`{"headers":{"authorization":1}}`)}, false, 4403},
		{"invalid token", protoTransportWS, []string{initMsg(`{"Authorization":"Bearer x.y.z"}`)}, false, 4403},
	}
	t.Run("cases", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				got := sendRaw(t, e.URL, tt.proto, tt.msgs...)
				if got.code != tt.code {
					t.Errorf("close code %d, want %d (messages %v)", got.code, tt.code, got.types)
				}
				acked := len(got.types) > 0 && got.types[0] == "connection_ack"
				if acked != tt.acked {
					t.Errorf("messages %v: acked %v, want %v", got.types, acked, tt.acked)
				}
			})
		}
	})
	// Every socket and every subscription those clients opened is gone.
	waitSocketsGone(t, e)
}

func TestDuplicateIDEndsEverySubscription(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, gen := e.aliceWithGeneration(generation.InProgress)
	c := apptest.DialWS(t, e.URL, protoTransportWS, apptest.AuthInit(alice.Token))
	c.Ack()
	for i := range 10 {
		c.Subscribe(fmt.Sprint(i), progressQuery, map[string]any{"id": gen})
		decodeProgress(t, c.NextEvent(fmt.Sprint(i), 5*time.Second), "generationProgress")
	}
	e.WaitHubSubscriptions(10)
	c.Subscribe("3", progressQuery, map[string]any{"id": gen})
	if code := c.WaitClosed(5 * time.Second); code != 4409 {
		t.Fatalf("close code %d, want 4409", code)
	}
	waitSocketsGone(t, e)
}

func TestTokenIsJudgedWithHTTPsLeewayBeforeTheAck(t *testing.T) {
	t.Parallel()
	const leeway = 3 * time.Second
	e := newEnv(t, withLeeway(t, leeway))
	alice := e.NewUser("alice@example.com", false)

	// Expired a second ago, within the leeway: HTTP accepts it, so the
	// socket is acked, and closes with 4403 once the leeway is used up.
	within := mintExpiredToken(t, alice, time.Now().Add(-time.Second))
	if res := apptest.PostTo(t, e.URL, within, `{ viewer { id } }`, nil); res.Status != http.StatusOK {
		t.Fatalf("HTTP refused the token within the leeway: %d", res.Status)
	}
	c := apptest.DialWS(t, e.URL, protoTransportWS, apptest.AuthInit(within))
	c.Ack()
	opened := time.Now()
	if code := c.WaitClosed(10 * time.Second); code != 4403 {
		t.Fatalf("close code %d, want 4403", code)
	}
	if d := time.Since(opened); d < leeway-time.Second-500*time.Millisecond {
		t.Fatalf("closed after %v, before the leeway ran out", d)
	}

	// Beyond the leeway: refused before any ack, on both subprotocols.
	beyond := mintExpiredToken(t, alice, time.Now().Add(-2*leeway))
	for _, proto := range []string{protoTransportWS, protoLegacyWS} {
		got := sendRaw(t, e.URL, proto, initMsg(`{"Authorization":"Bearer `+beyond+`"}`))
		if got.code != 4403 || len(got.types) > 0 && got.types[0] == "connection_ack" {
			t.Fatalf("%s: %+v, want 4403 without an ack", proto, got)
		}
	}
	waitGauge(t, e, gaugeSockets, 0)
}

func TestNoConnectionInitIsClosedWith4408(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withSockets(func(s *api.Sockets) {
		s.InitTimeout = 200 * time.Millisecond
	}))
	for _, proto := range []string{protoTransportWS, protoLegacyWS} {
		if got := sendRaw(t, e.URL, proto); got.code != 4408 {
			t.Fatalf("%s: %+v, want 4408", proto, got)
		}
	}
	waitGauge(t, e, gaugeSockets, 0)
}

func TestSubscriptionsPerSocketAreCapped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withSockets(func(s *api.Sockets) {
		s.Limits.SubscriptionsPerSocket = 2
	}))
	alice, gen := e.aliceWithGeneration(generation.InProgress)
	vars := map[string]any{"id": gen}
	for _, proto := range []string{protoTransportWS, protoLegacyWS} {
		c := apptest.DialWS(t, e.URL, proto, apptest.AuthInit(alice.Token))
		c.Ack()
		for _, id := range []string{"a", "b"} {
			c.Subscribe(id, progressQuery, vars)
			decodeProgress(t, c.NextEvent(id, 5*time.Second), "generationProgress")
		}
		c.Subscribe("c", progressQuery, vars)
		if ev := c.NextEvent("c", 5*time.Second); ev.Kind != "error" || ev.Errors[0].Extensions["code"] != "RATE_LIMITED" {
			t.Fatalf("%s: third subscription got %+v, want RATE_LIMITED", proto, ev)
		}
		// The cap counts running operations: one ended makes room.
		c.Stop("a")
		e.WaitHubSubscriptions(1)
		c.Subscribe("c", progressQuery, vars)
		decodeProgress(t, c.NextEvent("c", 5*time.Second), "generationProgress")
		_ = c.Conn.Close()
		waitGauge(t, e, gaugeSubscriptions, 0)
	}
	waitGauge(t, e, gaugeSockets, 0)
}

func TestSocketsPerUserAreCapped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withSockets(func(s *api.Sockets) {
		s.Limits.SocketsPerUser = 2
	}))
	alice := e.NewUser("alice@example.com", false)
	bob := e.NewUser("bob@example.com", false)
	first := apptest.DialWS(t, e.URL, protoTransportWS, apptest.AuthInit(alice.Token))
	first.Ack()
	second := apptest.DialWS(t, e.URL, protoLegacyWS, apptest.AuthInit(alice.Token))
	second.Ack()
	// A third of Alice's is refused before any ack; Bob is not affected.
	got := sendRaw(t, e.URL, protoTransportWS, initMsg(`{"Authorization":"Bearer `+alice.Token+`"}`))
	if got.code != socket.ClosePolicyViolation || len(got.types) != 0 {
		t.Fatalf("third socket: %+v, want 1008 without an ack", got)
	}
	apptest.DialWS(t, e.URL, protoTransportWS, apptest.AuthInit(bob.Token)).Ack()
	// Closing one of hers makes room again.
	_ = first.Conn.Close()
	waitGauge(t, e, gaugeSockets, 2)
	apptest.DialWS(t, e.URL, protoTransportWS, apptest.AuthInit(alice.Token)).Ack()
}

func TestSocketsPerAddressAreCapped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withSockets(func(s *api.Sockets) {
		s.Limits.SocketsPerAddress = 2
	}))
	dial := func(forwardedFor string) (*websocket.Conn, int) {
		t.Helper()
		header := http.Header{}
		if forwardedFor != "" {
			header.Set("X-Forwarded-For", forwardedFor)
		}
		d := websocket.Dialer{Subprotocols: []string{protoTransportWS}, HandshakeTimeout: 5 * time.Second}
		conn, res, err := d.Dial(apptest.WSURL(e.URL), header)
		if conn != nil {
			t.Cleanup(func() { _ = conn.Close() })
		}
		if res == nil {
			t.Fatalf("dial: %v", err)
		}
		return conn, res.StatusCode
	}
	// Behind a proxy on the same host, clients count by the address the
	// proxy forwards.
	first, _ := dial("198.51.100.1, 203.0.113.7")
	dial("203.0.113.7")
	if _, status := dial("203.0.113.7"); status != http.StatusTooManyRequests {
		t.Fatalf("third socket from one address: HTTP %d, want 429", status)
	}
	if _, status := dial("203.0.113.8"); status != http.StatusSwitchingProtocols {
		t.Fatalf("another address: HTTP %d, want 101", status)
	}
	// A local client without a proxy's header is not capped.
	for range 3 {
		if _, status := dial(""); status != http.StatusSwitchingProtocols {
			t.Fatalf("local client: HTTP %d, want 101", status)
		}
	}
	_ = first.Close()
	waitGauge(t, e, gaugeSockets, 5)
	if _, status := dial("203.0.113.7"); status != http.StatusSwitchingProtocols {
		t.Fatalf("after one closed: HTTP %d, want 101", status)
	}
}

func TestClientThatNeverReadsIsDropped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withSockets(func(s *api.Sockets) {
		s.WriteTimeout = 300 * time.Millisecond
	}))
	alice, gen := e.aliceWithGeneration(generation.InProgress)
	// Large events fill a client's socket buffers within a few events.
	e.Exec(`UPDATE stories SET content = repeat('All work and no play. ', 20000)`)
	query := `subscription($id: ID!) { generationProgress(id: $id) { id status progress story { content } } }`
	for _, proto := range []string{protoLegacyWS, protoTransportWS} {
		t.Run(proto, func(t *testing.T) {
			neverReads(t, e.URL, proto, alice.Token, "s", query, map[string]any{"id": gen})
			fast, _ := followGeneration(t, e.URL, protoTransportWS, alice.Token, gen)
			waitGauge(t, e, gaugeSockets, 2)
			for i := 1; e.Gauge(gaugeSockets) == 2; i++ {
				if i > 500 {
					t.Fatal("the client that never reads was not dropped")
				}
				e.setProgress(gen, generation.InProgress, i%100)
				// The fast client keeps up all along.
				decodeProgress(t, fast.NextEvent("1", 5*time.Second), "generationProgress")
			}
			_ = fast.Conn.Close()
			waitSocketsGone(t, e)
		})
	}
}

func TestOneReadPerUserAndEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, gen := e.aliceWithGeneration(generation.InProgress)
	const sockets, perSocket = 20, 5
	query := `subscription($id: ID!) { generationProgress(id: $id) { id status progress } }`
	clients := make([]*wsClient, sockets)
	for i := range clients {
		clients[i] = apptest.DialWS(t, e.URL, protoTransportWS, apptest.AuthInit(alice.Token))
		clients[i].Ack()
		for j := range perSocket {
			clients[i].Subscribe(fmt.Sprint(j), query, map[string]any{"id": gen})
		}
	}
	for _, c := range clients {
		for j := range perSocket {
			decodeProgress(t, c.NextEvent(fmt.Sprint(j), 10*time.Second), "generationProgress")
		}
	}
	before := e.Statements.Load()
	const updates = 10
	for i := 1; i <= updates; i++ {
		e.setProgress(gen, generation.InProgress, i)
		for _, c := range clients {
			for j := range perSocket {
				if p := decodeProgress(t, c.NextEvent(fmt.Sprint(j), 10*time.Second), "generationProgress"); p.Progress != i {
					t.Fatalf("got %v, want progress %d", p, i)
				}
			}
		}
	}
	// 100 subscriptions of one user: one read per event for all of them,
	// where a read per subscription would make 1,000. A read is shared
	// for a quarter of a second after it finished; a machine so loaded
	// that a stream's notification waits longer reads again, hence the
	// slack.
	if reads := e.Statements.Load() - before; reads > 2*updates {
		t.Fatalf("%d statements for %d events to %d subscriptions of one user, want about %d", reads, updates, sockets*perSocket, updates)
	}
}

// mintExpiredToken signs a token for u that expired at exp.
func mintExpiredToken(t *testing.T, u user, exp time.Time) string {
	t.Helper()
	return authtest.Sign(t, jwt.SigningMethodHS256, testSecret, "", claimsOf(u, func(c jwt.MapClaims) {
		c["iat"], c["exp"] = exp.Add(-time.Hour).Unix(), exp.Unix()
	}))
}
