package wsgorilla_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/testserver"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/gorilla/websocket"

	"github.com/narrate/narrate/wsgorilla"
)

// testTimeout bounds every blocking read so a broken server fails the test
// instead of hanging it.
const testTimeout = 5 * time.Second

type wsMessage struct {
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// newServer serves a gqlgen test schema over websockets through wsgorilla.
func newServer(t *testing.T, opts wsgorilla.Options, ws transport.Websocket) (*testserver.TestServer, string) {
	t.Helper()
	h := testserver.New()
	ws.Implementation = wsgorilla.New(opts)
	h.AddTransport(ws)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, "ws" + strings.TrimPrefix(srv.URL, "http")
}

func dial(t *testing.T, url string, header http.Header, subprotocols ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: subprotocols, HandshakeTimeout: testTimeout}
	conn, resp, err := d.Dial(url, header)
	if conn != nil {
		t.Cleanup(func() { _ = conn.Close() })
	}
	if resp != nil && resp.Body != nil {
		t.Cleanup(func() { _ = resp.Body.Close() })
	}
	return conn, resp, err
}

func send(t *testing.T, conn *websocket.Conn, msg wsMessage) {
	t.Helper()
	if err := conn.WriteJSON(msg); err != nil {
		t.Fatalf("write %s: %v", msg.Type, err)
	}
}

// read returns the next message that is not a keep-alive.
func read(t *testing.T, conn *websocket.Conn) wsMessage {
	t.Helper()
	for {
		if err := conn.SetReadDeadline(time.Now().Add(testTimeout)); err != nil {
			t.Fatal(err)
		}
		var msg wsMessage
		if err := conn.ReadJSON(&msg); err != nil {
			t.Fatalf("read: %v", err)
		}
		if msg.Type == "ka" || msg.Type == "ping" || msg.Type == "pong" {
			continue
		}
		return msg
	}
}

// readClose reads until the server's close frame arrives and returns it.
func readClose(t *testing.T, conn *websocket.Conn) *websocket.CloseError {
	t.Helper()
	for {
		if err := conn.SetReadDeadline(time.Now().Add(testTimeout)); err != nil {
			t.Fatal(err)
		}
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("read: got %v, want a close frame", err)
		}
		return ce
	}
}

func TestSubprotocols(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		offered       []string
		negotiated    string
		subscribeType string
		dataType      string
	}{
		{"graphql-transport-ws", []string{"graphql-transport-ws"}, "graphql-transport-ws", "subscribe", "next"},
		{"legacy graphql-ws", []string{"graphql-ws"}, "graphql-ws", "start", "data"},
		{"both offered prefers graphql-transport-ws", []string{"graphql-ws", "graphql-transport-ws"}, "graphql-transport-ws", "subscribe", "next"},
		{"none falls back to legacy", nil, "", "start", "data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, url := newServer(t, wsgorilla.Options{}, transport.Websocket{})
			conn, _, err := dial(t, url, nil, tt.offered...)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			if got := conn.Subprotocol(); got != tt.negotiated {
				t.Fatalf("negotiated %q, want %q", got, tt.negotiated)
			}

			send(t, conn, wsMessage{Type: "connection_init"})
			if msg := read(t, conn); msg.Type != "connection_ack" {
				t.Fatalf("got %q, want connection_ack", msg.Type)
			}

			send(t, conn, wsMessage{Type: tt.subscribeType, ID: "1", Payload: json.RawMessage(`{"query":"subscription { name }"}`)})
			h.SendNextSubscriptionMessage()
			msg := read(t, conn)
			if msg.Type != tt.dataType || msg.ID != "1" {
				t.Fatalf("got %+v, want %s for id 1", msg, tt.dataType)
			}
			if !strings.Contains(string(msg.Payload), `"name":"test"`) {
				t.Fatalf("payload %s lacks the subscription data", msg.Payload)
			}
		})
	}
}

func TestOriginCheck(t *testing.T) {
	t.Parallel()
	_, url := newServer(t, wsgorilla.Options{AllowedOrigins: []string{"https://app.example.com"}}, transport.Websocket{})

	tests := []struct {
		name   string
		origin string
		ok     bool
	}{
		{"allowed origin", "https://app.example.com", true},
		{"allowed origin, other case", "HTTPS://App.Example.com", true},
		{"no origin header", "", true},
		{"other origin", "https://evil.example.com", false},
		{"other scheme", "http://app.example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			header := http.Header{}
			if tt.origin != "" {
				header.Set("Origin", tt.origin)
			}
			_, resp, err := dial(t, url, header, "graphql-transport-ws")
			if tt.ok {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				return
			}
			if !errors.Is(err, websocket.ErrBadHandshake) {
				t.Fatalf("dial: got %v, want a rejected handshake", err)
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("response %v, want 403", resp)
			}
		})
	}
}

func TestOriginChecker(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		allowed []string
		origin  string
		want    bool
	}{
		{"empty list allows any", nil, "https://evil.example.com", true},
		{"blank entries allow any", []string{" ", ""}, "https://evil.example.com", true},
		{"wildcard allows any", []string{"https://a.example.com", "*"}, "https://evil.example.com", true},
		{"exact match", []string{"https://a.example.com"}, "https://a.example.com", true},
		{"trailing slash in config", []string{"https://a.example.com/"}, "https://a.example.com", true},
		{"port must match", []string{"http://localhost:3000"}, "http://localhost:5173", false},
		{"port matches", []string{"http://localhost:3000"}, "http://localhost:3000", true},
		{"missing origin allowed", []string{"https://a.example.com"}, "", true},
		{"null origin rejected", []string{"https://a.example.com"}, "null", false},
		{"subdomain is not the origin", []string{"https://example.com"}, "https://a.example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/graphql", nil)
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if got := wsgorilla.OriginChecker(tt.allowed)(r); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestInitRejectionCloseCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		subprotocol string
		code        int
		reason      string
	}{
		{"graphql-transport-ws", 4403, "forbidden"},
		{"graphql-ws", 4403, "forbidden"},
		// A reason longer than a close frame allows must be cut, not make
		// the close frame fail.
		{"graphql-transport-ws", 4400, strings.Repeat("é", 100)},
	}
	for _, tt := range tests {
		t.Run(tt.subprotocol, func(t *testing.T) {
			t.Parallel()
			_, url := newServer(t, wsgorilla.Options{}, transport.Websocket{
				InitFunc: func(ctx context.Context, _ transport.InitPayload) (context.Context, *transport.InitPayload, error) {
					ctx = transport.WithWebsocketCloseCode(ctx, tt.code)
					ctx = transport.AppendCloseReason(ctx, tt.reason)
					return ctx, nil, errors.New("invalid token")
				},
			})
			conn, _, err := dial(t, url, nil, tt.subprotocol)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			send(t, conn, wsMessage{Type: "connection_init", Payload: json.RawMessage(`{"Authorization":"Bearer nope"}`)})
			ce := readClose(t, conn)
			if ce.Code != tt.code {
				t.Fatalf("close code %d, want %d", ce.Code, tt.code)
			}
			if !strings.HasPrefix(tt.reason, ce.Text) || len(ce.Text) > 123 || ce.Text == "" {
				t.Fatalf("close reason %q is not a prefix of %q within 123 bytes", ce.Text, tt.reason)
			}
		})
	}
}

func TestReadLimit(t *testing.T) {
	t.Parallel()
	_, url := newServer(t, wsgorilla.Options{ReadLimit: 1024}, transport.Websocket{})
	conn, _, err := dial(t, url, nil, "graphql-transport-ws")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	send(t, conn, wsMessage{Type: "connection_init"})
	if msg := read(t, conn); msg.Type != "connection_ack" {
		t.Fatalf("got %q, want connection_ack", msg.Type)
	}
	query := `subscription { name }` + strings.Repeat(" ", 2048)
	payload, err := json.Marshal(map[string]string{"query": query})
	if err != nil {
		t.Fatal(err)
	}
	send(t, conn, wsMessage{Type: "subscribe", ID: "1", Payload: payload})
	if ce := readClose(t, conn); ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("close code %d, want %d", ce.Code, websocket.CloseMessageTooBig)
	}
}

// TestPeerNormalClose checks that a client's orderly close reaches gqlgen as
// transport.ErrWebsocketClosed (not reported through ErrorFunc), while an
// abnormal one is reported.
func TestPeerNormalClose(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		code      int
		wantError bool
	}{
		{"normal closure", websocket.CloseNormalClosure, false},
		{"going away", websocket.CloseGoingAway, false},
		{"application code", 4000, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			errs := make(chan error, 4)
			closed := make(chan struct{})
			_, url := newServer(t, wsgorilla.Options{}, transport.Websocket{
				ErrorFunc: func(_ context.Context, err error) { errs <- err },
				CloseFunc: func(context.Context, int) { close(closed) },
			})
			conn, _, err := dial(t, url, nil, "graphql-transport-ws")
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			send(t, conn, wsMessage{Type: "connection_init"})
			if msg := read(t, conn); msg.Type != "connection_ack" {
				t.Fatalf("got %q, want connection_ack", msg.Type)
			}
			msg := websocket.FormatCloseMessage(tt.code, "bye")
			if err := conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(testTimeout)); err != nil {
				t.Fatal(err)
			}
			select {
			case <-closed:
			case <-time.After(testTimeout):
				t.Fatal("server did not close the connection")
			}
			var got error
			select {
			case got = <-errs:
			default:
			}
			if (got != nil) != tt.wantError {
				t.Fatalf("ErrorFunc got %v, want error reported: %v", got, tt.wantError)
			}
		})
	}
}

// readUntilEOF reads the raw TCP stream, never answering, until the server
// closes the connection.
func readUntilEOF(t *testing.T, conn *websocket.Conn) {
	t.Helper()
	netConn := conn.NetConn()
	if err := netConn.SetReadDeadline(time.Now().Add(testTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, netConn); err != nil {
		t.Fatalf("server did not close the TCP connection cleanly: %v", err)
	}
}

func rejectAll(ctx context.Context, _ transport.InitPayload) (context.Context, *transport.InitPayload, error) {
	return transport.WithWebsocketCloseCode(ctx, 4403), nil, errors.New("invalid token")
}

// TestCloseCodeSurvivesPipelinedMessages sends messages right behind a
// connection_init that is rejected: they are still unread when the server
// closes, and the client must see 4403 all the same.
func TestCloseCodeSurvivesPipelinedMessages(t *testing.T) {
	t.Parallel()
	_, url := newServer(t, wsgorilla.Options{}, transport.Websocket{InitFunc: rejectAll})
	for range 20 {
		conn, _, err := dial(t, url, nil, "graphql-transport-ws")
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		send(t, conn, wsMessage{Type: "connection_init"})
		query := json.RawMessage(`{"query":"subscription { name }` + strings.Repeat(" ", 8000) + `"}`)
		for i := range 16 {
			// Writes may fail once the server has closed; only the close
			// code matters.
			_ = conn.WriteJSON(wsMessage{Type: "subscribe", ID: strconv.Itoa(i), Payload: query})
		}
		if ce := readClose(t, conn); ce.Code != 4403 {
			t.Fatalf("close code %d, want 4403", ce.Code)
		}
	}
}

// TestClosingHandshake checks that the server closes the TCP connection as
// soon as the client answers its close frame (the grace period is far longer
// than the test's timeout), and after the grace period when it never does.
func TestClosingHandshake(t *testing.T) {
	t.Parallel()
	expireAfterAck := func(ctx context.Context, _ transport.InitPayload) (context.Context, *transport.InitPayload, error) {
		// Like an access token reaching exp: the socket closes while
		// gqlgen's read loop is waiting for the next message.
		ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		context.AfterFunc(ctx, cancel)
		return ctx, nil, nil
	}
	rejectLate := func(ctx context.Context, p transport.InitPayload) (context.Context, *transport.InitPayload, error) {
		// Give the pipelined message time to reach the server, so that it
		// is unread when the server closes.
		time.Sleep(50 * time.Millisecond)
		return rejectAll(ctx, p)
	}
	tests := []struct {
		name    string
		init    transport.WebsocketInitFunc
		grace   time.Duration
		answer  bool
		code    int
		initAck bool
	}{
		{"rejected init, client answers", rejectLate, time.Hour, true, 4403, false},
		{"rejected init, client silent", rejectLate, 50 * time.Millisecond, false, 4403, false},
		{"context ends, client answers", expireAfterAck, time.Hour, true, websocket.CloseNormalClosure, true},
		{"context ends, client silent", expireAfterAck, 50 * time.Millisecond, false, websocket.CloseNormalClosure, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			readErrs := make(chan error, 4)
			_, url := newServer(t, wsgorilla.Options{CloseGracePeriod: tt.grace}, transport.Websocket{
				InitFunc: tt.init,
				ErrorFunc: func(_ context.Context, err error) {
					readErrs <- err
				},
			})
			conn, _, err := dial(t, url, nil, "graphql-transport-ws")
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			send(t, conn, wsMessage{Type: "connection_init"})
			if tt.initAck {
				if msg := read(t, conn); msg.Type != "connection_ack" {
					t.Fatalf("got %q, want connection_ack", msg.Type)
				}
			} else {
				// Unread data at close time would turn the server's close
				// into a reset, which the client's read below reports.
				_ = conn.WriteJSON(wsMessage{Type: "subscribe", ID: "1", Payload: json.RawMessage(`{"query":"subscription { name }"}`)})
			}
			if tt.answer {
				// gorilla's default close handler answers the close frame.
				if ce := readClose(t, conn); ce.Code != tt.code {
					t.Fatalf("close code %d, want %d", ce.Code, tt.code)
				}
			}
			readUntilEOF(t, conn)
			select {
			case err := <-readErrs:
				t.Fatalf("ErrorFunc reported %v for a close the server started", err)
			default:
			}
		})
	}
}
