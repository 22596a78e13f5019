package socket

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/narrate/narrate/db/dbtest"
)

// These tests drive the read side of sockets, parked with the poller while
// idle (on Linux; elsewhere the same messages go through a reader goroutine
// per socket), with clients whose bytes are written by hand: a message
// right behind another, a frame in two halves, a client that hangs up.
// None of them runs an operation, so the server has no executor.

// gauge counts open sockets, as the API's metrics do.
type gauge struct{ open atomic.Int64 }

func (g *gauge) SocketOpened() { g.open.Add(1) }
func (g *gauge) SocketClosed() { g.open.Add(-1) }

type testServer struct {
	*Server
	url   string
	gauge *gauge
}

// startServer serves sockets on a local port until the test ends; cleanup
// shuts the server down and waits for it, poller and ticker included.
func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	g := &gauge{}
	cfg.Metrics = g
	s := NewServer(cfg)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Do(w, r, nil)
	}))
	t.Cleanup(func() {
		s.Shutdown()
		ctx, cancel := context.WithTimeout(context.Background(), dbtest.WaitLimit)
		defer cancel()
		if err := s.Wait(ctx); err != nil {
			t.Errorf("Wait: %v", err)
		}
		hs.Close()
	})
	return &testServer{Server: s, url: "ws" + strings.TrimPrefix(hs.URL, "http"), gauge: g}
}

// dial opens a graphql-transport-ws socket; the client reads only when the
// test asks it to.
func (s *testServer) dial(t *testing.T) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{ProtocolTransportWS}, HandshakeTimeout: dbtest.WaitLimit}
	ws, resp, err := d.Dial(s.url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_ = resp.Body.Close()
	return ws
}

// parked counts the sockets parked with the poller.
func (s *testServer) parked() int {
	s.mu.Lock()
	conns := s.snapshot(nil)
	s.mu.Unlock()
	n := 0
	for _, c := range conns {
		c.pmu.Lock()
		if c.parked {
			n++
		}
		c.pmu.Unlock()
	}
	return n
}

// waitParked waits until n sockets are parked where sockets park.
func (s *testServer) waitParked(t *testing.T, n int) {
	t.Helper()
	if pollerSupported {
		dbtest.WaitFor(t, 0, func() bool { return s.parked() == n }, "%d sockets parked", n)
	}
}

// waitClosed waits until no socket is left and the gauge says so too.
func (s *testServer) waitClosed(t *testing.T) {
	t.Helper()
	dbtest.WaitFor(t, 0, func() bool { return s.Open() == 0 && s.gauge.open.Load() == 0 }, "sockets closed (%d open, gauge %d)", s.Open(), s.gauge.open.Load())
	if n := registrations(s.Server); n != 0 {
		t.Fatalf("%d sockets still registered with the poller", n)
	}
}

// frame is a client's text frame for a message shorter than 126 bytes,
// masked with the all-zero key (so the payload is written as it is).
func frame(msg string) []byte {
	return append([]byte{0x81, 0x80 | byte(len(msg)), 0, 0, 0, 0}, msg...)
}

const (
	initMsg = `{"type":"connection_init"}`
	pingMsg = `{"type":"ping"}`
)

// expect reads the next message and checks its type.
func expect(t *testing.T, ws *websocket.Conn, typ string) {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(dbtest.WaitLimit))
	_, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("waiting for %s: %v", typ, err)
	}
	var m inMessage
	if err := json.Unmarshal(data, &m); err != nil || m.Type != typ {
		t.Fatalf("got %s, want %s", data, typ)
	}
}

// writeRaw writes bytes on the client's connection in one write, so that
// they reach the server together.
func writeRaw(t *testing.T, ws *websocket.Conn, b []byte) {
	t.Helper()
	if _, err := ws.NetConn().Write(b); err != nil {
		t.Fatal(err)
	}
}

// quiet is a configuration without keepalives within a test's time, so that
// a message the server failed to handle shows as a missing answer rather
// than as a ping in its place.
var quiet = Config{KeepAlive: time.Hour}

func TestPipelinedMessagesAreAllHandled(t *testing.T) {
	t.Parallel()
	s := startServer(t, quiet)
	ws := s.dial(t)
	defer ws.Close()
	s.waitParked(t, 1)

	// connection_init and fifty pings in one write: the server reads them
	// in one go, and must handle every one before it parks the socket.
	burst := frame(initMsg)
	for range 50 {
		burst = append(burst, frame(pingMsg)...)
	}
	writeRaw(t, ws, burst)
	expect(t, ws, msgConnectionAck)
	for range 50 {
		expect(t, ws, msgPong)
	}
	s.waitParked(t, 1)

	// Two pings in one write to a parked socket: the poller wakes it for
	// the first, and the second is already in its buffer.
	writeRaw(t, ws, append(frame(pingMsg), frame(pingMsg)...))
	expect(t, ws, msgPong)
	expect(t, ws, msgPong)
	s.waitParked(t, 1)
}

func TestFrameInTwoHalves(t *testing.T) {
	t.Parallel()
	ping := frame(pingMsg)
	for _, cut := range []int{1, 4, len(ping) - 3} {
		s := startServer(t, quiet)
		ws := s.dial(t)
		writeRaw(t, ws, frame(initMsg))
		expect(t, ws, msgConnectionAck)
		s.waitParked(t, 1)

		// The first half wakes the socket, whose reader then waits for
		// the rest in the middle of the frame.
		writeRaw(t, ws, ping[:cut])
		s.waitParked(t, 0)
		writeRaw(t, ws, ping[cut:])
		expect(t, ws, msgPong)
		s.waitParked(t, 1)
		_ = ws.Close()
		s.waitClosed(t)
	}
}

func TestPeerHangsUpWhileParked(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{})
	hangUp := s.dial(t)
	writeRaw(t, hangUp, frame(initMsg))
	expect(t, hangUp, msgConnectionAck)
	closing := s.dial(t)
	writeRaw(t, closing, frame(initMsg))
	expect(t, closing, msgConnectionAck)
	s.waitParked(t, 2)

	// One client just closes its connection, the other says goodbye with
	// a close frame and waits for the server's.
	_ = hangUp.Close()
	if err := closing.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(CloseNormal, "bye"), time.Now().Add(dbtest.WaitLimit)); err != nil {
		t.Fatal(err)
	}
	_ = closing.SetReadDeadline(time.Now().Add(dbtest.WaitLimit))
	if _, _, err := closing.ReadMessage(); !websocket.IsCloseError(err, CloseNormal) {
		t.Fatalf("got %v, want the server's close frame", err)
	}
	_ = closing.Close()
	s.waitClosed(t)
}

func TestSilentPeerIsDroppedWhileParked(t *testing.T) {
	t.Parallel()
	// A graphql-transport-ws client that answers no ping is dropped after
	// two keepalive intervals, by the ticker, while its socket is parked.
	s := startServer(t, Config{KeepAlive: 50 * time.Millisecond, Tick: 10 * time.Millisecond})
	ws := s.dial(t)
	defer ws.Close()
	writeRaw(t, ws, frame(initMsg))
	expect(t, ws, msgConnectionAck)
	s.waitClosed(t)
}

func TestTenThousandSocketsLeaveNoGoroutines(t *testing.T) {
	// Not parallel: goroutines are counted for the whole process.
	ignore := goleak.IgnoreCurrent()
	s := startServer(t, Config{})
	// 10,000 sockets in rounds of 2,500, which keeps the descriptors of
	// both ends within the process's limit.
	const rounds, perRound = 4, 2500
	clients := make([]*websocket.Conn, perRound)
	for range rounds {
		before := runtime.NumGoroutine()
		for i := range clients {
			clients[i] = s.dial(t)
			writeRaw(t, clients[i], frame(initMsg))
		}
		for _, ws := range clients {
			expect(t, ws, msgConnectionAck)
		}
		s.waitParked(t, perRound)
		if pollerSupported {
			// Idle sockets hold no goroutine: what is left of the acks'
			// writers ends on its own.
			dbtest.WaitFor(t, 0, func() bool { return runtime.NumGoroutine() <= before+10 },
				"goroutines back to %d with %d idle sockets (%d now)", before, perRound, runtime.NumGoroutine())
		}
		// Half the clients close with a close frame, the others hang up.
		for i, ws := range clients {
			if i%2 == 0 {
				_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(CloseNormal, ""), time.Now().Add(dbtest.WaitLimit))
			}
			_ = ws.Close()
		}
		s.waitClosed(t)
	}
	s.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), dbtest.WaitLimit)
	defer cancel()
	if err := s.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// goleak retries for a while, so readers still ending are waited for;
	// the test server's listener goroutine is the only one left.
	if err := goleak.Find(ignore, goleak.IgnoreAnyFunction("net/http.(*Server).Serve"),
		goleak.IgnoreAnyFunction("net/http/httptest.(*Server).goServe.func1")); err != nil {
		t.Fatal(err)
	}
}

func TestHijackerLeavesEarlyBytesToGorilla(t *testing.T) {
	t.Parallel()
	// A client that sends a frame before the upgrade's response is refused
	// by gorilla, as it was before the socket had a reader of its own, and
	// counted nowhere.
	s := startServer(t, Config{})
	u := strings.TrimPrefix(s.url, "ws://")
	req := "GET / HTTP/1.1\r\nHost: " + u + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
	conn, err := net.Dial("tcp", u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(append([]byte(req), frame(initMsg)...)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(dbtest.WaitLimit))
	var got bytes.Buffer
	_, _ = got.ReadFrom(conn) // until gorilla closes the connection
	if strings.Contains(got.String(), "101 Switching Protocols") {
		t.Fatalf("upgraded a client that sent data before the handshake: %q", got.String())
	}
	s.waitClosed(t)
}
