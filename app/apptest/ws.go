package apptest

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/narrate/narrate/db/dbtest"
)

// The GraphQL websocket subprotocols.
const (
	ProtoTransportWS = "graphql-transport-ws"
	ProtoLegacyWS    = "graphql-ws"
)

// WS is a GraphQL websocket client speaking either subprotocol.
type WS struct {
	t     testing.TB
	Conn  *websocket.Conn
	proto string
	msgs  chan WSMessage
	// closed is closed when the server has closed the socket; closeCode
	// is its close code then.
	closed    chan struct{}
	closeCode int
	// pending holds messages read while waiting for another operation's.
	pending map[string][]WSMessage
	// keepAlives counts the server's "ka" (graphql-ws) and "ping"
	// (graphql-transport-ws) messages.
	keepAlives atomic.Int32
	// writeMu serialises writes: the reader answers pings meanwhile.
	writeMu sync.Mutex
}

// WSMessage is one protocol message.
type WSMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// WSURL is the GraphQL websocket URL of the server at baseURL.
func WSURL(baseURL string) string { return "ws" + strings.TrimPrefix(baseURL, "http") + "/graphql" }

// DialConn opens a raw socket to the server at baseURL with proto, closed
// when the test ends.
func DialConn(t testing.TB, baseURL, proto string) *websocket.Conn {
	t.Helper()
	dialer := websocket.Dialer{Subprotocols: []string{proto}, HandshakeTimeout: 5 * time.Second}
	conn, _, err := dialer.Dial(WSURL(baseURL), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// DialWS opens a socket with proto and sends connection_init with payload
// (nil: an empty object). It does not wait for the ack.
func DialWS(t testing.TB, baseURL, proto string, initPayload map[string]any) *WS {
	t.Helper()
	c := &WS{t: t, Conn: DialConn(t, baseURL, proto), proto: proto, msgs: make(chan WSMessage, 1024), closed: make(chan struct{})}
	go c.read()
	payload, _ := json.Marshal(initPayload)
	if initPayload == nil {
		payload = []byte("{}")
	}
	c.Write(WSMessage{Type: "connection_init", Payload: payload})
	return c
}

// DialWSNoRead opens an authenticated graphql-transport-ws socket, reads
// the ack and then never reads again: a stalled browser tab.
func DialWSNoRead(t testing.TB, baseURL string, initPayload map[string]any) *WS {
	t.Helper()
	conn := DialConn(t, baseURL, ProtoTransportWS)
	c := &WS{t: t, Conn: conn, proto: ProtoTransportWS, closed: make(chan struct{})}
	payload, _ := json.Marshal(initPayload)
	c.Write(WSMessage{Type: "connection_init", Payload: payload})
	var ack WSMessage
	if err := conn.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		t.Fatalf("want connection_ack, got %+v, %v", ack, err)
	}
	return c
}

// AuthInit is a connection_init payload carrying token.
func AuthInit(token string) map[string]any {
	return map[string]any{"Authorization": "Bearer " + token}
}

func (c *WS) read() {
	defer close(c.closed)
	defer close(c.msgs)
	for {
		var m WSMessage
		if err := c.Conn.ReadJSON(&m); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				c.closeCode = ce.Code
			}
			return
		}
		switch m.Type {
		case "ka":
			c.keepAlives.Add(1)
			continue
		case "ping":
			c.keepAlives.Add(1)
			c.Write(WSMessage{Type: "pong"})
			continue
		}
		c.msgs <- m
	}
}

// Write sends a protocol message.
func (c *WS) Write(m WSMessage) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.Conn.WriteJSON(m); err != nil {
		c.t.Logf("ws write: %v", err)
	}
}

// KeepAlives is how many keepalives ("ka" or "ping") the server sent.
func (c *WS) KeepAlives() int { return int(c.keepAlives.Load()) }

// Next waits for the next message; ok is false once the socket is closed.
func (c *WS) Next(timeout time.Duration) (m WSMessage, ok bool) {
	c.t.Helper()
	select {
	case m, ok := <-c.msgs:
		return m, ok
	case <-time.After(timeout):
		c.t.Fatalf("no websocket message within %v", timeout)
		return WSMessage{}, false
	}
}

// Ack waits for connection_ack.
func (c *WS) Ack() {
	c.t.Helper()
	m, ok := c.Next(5 * time.Second)
	if !ok || m.Type != "connection_ack" {
		c.t.Fatalf("want connection_ack, got %+v (closed %v, code %d)", m, !ok, c.closeCode)
	}
}

// Subscribe starts an operation with id.
func (c *WS) Subscribe(id, query string, vars map[string]any) {
	payload, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	typ := "subscribe"
	if c.proto == ProtoLegacyWS {
		typ = "start"
	}
	c.Write(WSMessage{ID: id, Type: typ, Payload: payload})
}

// Stop ends operation id.
func (c *WS) Stop(id string) {
	typ := "complete"
	if c.proto == ProtoLegacyWS {
		typ = "stop"
	}
	c.Write(WSMessage{ID: id, Type: typ})
}

// WaitClosed waits for the server to close the socket and returns the
// close code.
func (c *WS) WaitClosed(timeout time.Duration) int {
	c.t.Helper()
	select {
	case <-c.closed:
		return c.closeCode
	case <-time.After(timeout):
		c.t.Fatalf("socket not closed within %v", timeout)
		return 0
	}
}

// Event is a decoded subscription message for one operation.
type Event struct {
	Kind   string // "data", "error", "complete"
	Data   json.RawMessage
	Errors []GQLError
}

// NextEvent waits for the next message of operation id, mapping both
// subprotocols' message types onto data/error/complete.
func (c *WS) NextEvent(id string, timeout time.Duration) Event {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		var m WSMessage
		if q := c.pending[id]; len(q) > 0 {
			m, c.pending[id] = q[0], q[1:]
		} else {
			var ok bool
			select {
			case m, ok = <-c.msgs:
			case <-deadline:
				c.t.Fatalf("no event for %s within %v", id, timeout)
			}
			if !ok {
				c.t.Fatalf("socket closed (code %d) while waiting for %s", c.closeCode, id)
			}
			if m.ID != id {
				if c.pending == nil {
					c.pending = map[string][]WSMessage{}
				}
				c.pending[m.ID] = append(c.pending[m.ID], m)
				continue
			}
		}
		switch m.Type {
		case "next", "data":
			var body struct {
				Data   json.RawMessage `json:"data"`
				Errors []GQLError      `json:"errors"`
			}
			if err := json.Unmarshal(m.Payload, &body); err != nil {
				c.t.Fatal(err)
			}
			if len(body.Errors) > 0 && (len(body.Data) == 0 || string(body.Data) == "null") {
				return Event{Kind: "error", Errors: body.Errors}
			}
			return Event{Kind: "data", Data: body.Data, Errors: body.Errors}
		case "error":
			var errs []GQLError
			if err := json.Unmarshal(m.Payload, &errs); err != nil {
				var one GQLError
				_ = json.Unmarshal(m.Payload, &one)
				errs = []GQLError{one}
			}
			return Event{Kind: "error", Errors: errs}
		case "complete":
			return Event{Kind: "complete"}
		default:
			c.t.Fatalf("unexpected message %+v", m)
		}
	}
}

// Gauge reads a metric without labels from the server's registry; -1 when
// it has no sample.
func (s *Server) Gauge(name string) float64 {
	s.t.Helper()
	families, err := s.App.Registry.Gather()
	if err != nil {
		s.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			m := f.GetMetric()[0]
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// WaitHubSubscriptions waits until the server's hub holds n
// subscriptions, so that a change made next reaches them.
func (s *Server) WaitHubSubscriptions(n float64) {
	s.t.Helper()
	dbtest.WaitFor(s.t, 0, func() bool {
		return s.Gauge("narrate_realtime_active_subscriptions") == n
	}, "the hub's subscriptions never reached %v", n)
}

// Messages is the stream of the socket's messages other than keepalives,
// closed when the socket closes; for tests that watch it themselves.
func (c *WS) Messages() <-chan WSMessage { return c.msgs }
