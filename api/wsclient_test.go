package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/narrate/narrate/api"
	"github.com/narrate/narrate/auth"
	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/graph"
	"github.com/narrate/narrate/limit"
	"github.com/narrate/narrate/realtime"
	"github.com/narrate/narrate/storage"
	"github.com/narrate/narrate/voice/local"
	"github.com/narrate/narrate/worker"
)

// rtServer is a complete API process with its own hub and listener, so a
// test can run several on one database.
type rtServer struct {
	URL      string
	Sockets  *api.Sockets
	Listener *realtime.Listener
	Registry *prometheus.Registry
	// Signer signs audio links; set with narration.
	Signer *storage.Signer
	stop   func()
}

// rtOption adjusts what startRealtime assembles.
type rtOption func(*rtConfig)

type rtConfig struct {
	narration bool
	origins   []string
	keepAlive time.Duration
	limits    *limit.Settings
}

// withRTLimits replaces the default limits.
func withRTLimits(l limit.Settings) rtOption { return func(c *rtConfig) { c.limits = &l } }

// withOrigins restricts the browser origins allowed to open sockets.
func withOrigins(origins ...string) rtOption { return func(c *rtConfig) { c.origins = origins } }

// withKeepAlive sets the keepalive interval.
func withKeepAlive(d time.Duration) rtOption { return func(c *rtConfig) { c.keepAlive = d } }

// withNarration adds what `server serve` adds for narrations: the local
// voice provider (with a small chunk limit, so stories take several
// chunks), local audio storage served through signed links, and the
// embedded worker.
func withNarration() rtOption { return func(c *rtConfig) { c.narration = true } }

// startRealtime starts a server with subscriptions on database d and waits
// for its listener to be connected. Everything stops when the test ends.
func startRealtime(t testing.TB, d *dbtest.DB, minBackoff time.Duration, opts ...rtOption) *rtServer {
	t.Helper()
	var cfg rtConfig
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pool, err := db.Open(ctx, d.AppURL, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.NewVerifier(ctx, auth.Config{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	var logOut io.Writer = io.Discard
	if os.Getenv("TEST_LOG") != "" {
		logOut = os.Stderr
	}
	logger := slog.New(slog.NewTextHandler(logOut, nil))
	reg := prometheus.NewRegistry()
	metrics, err := realtime.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	hub := realtime.NewHub(realtime.WithHubMetrics(metrics))
	bridge := realtime.NewBridge(hub, pool.GenerationEvents, logger)
	listener := realtime.NewListener(realtime.ListenerConfig{
		ConnString: d.AppURL, OnEvent: bridge.OnEvent, OnReconnect: bridge.OnReconnect,
		Logger: logger, Metrics: metrics, MinBackoff: minBackoff, MaxBackoff: 4 * minBackoff,
	})
	var wg sync.WaitGroup
	wg.Go(func() { _ = listener.Run(ctx) })

	// The signer needs the server's URL, which exists only once the server
	// listens: the handler is installed right after.
	var handler http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	s := &rtServer{URL: srv.URL, Listener: listener, Registry: reg}
	s.Sockets = api.NewSockets(verifier, cfg.origins, metrics, logger)
	if cfg.keepAlive > 0 {
		s.Sockets.KeepAlive = cfg.keepAlive
	}
	resolver := &graph.Resolver{DB: pool, Logger: logger, Hub: hub, Metrics: metrics}
	options := api.Options{DB: pool, Verifier: verifier, Logger: logger, Registry: reg, Sockets: s.Sockets, Resolver: resolver, Limits: cfg.limits}
	closeStore := func() {}
	if cfg.narration {
		store, err := storage.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		closeStore = func() { _ = store.Close() }
		provider := local.New(local.Config{ChunkLimit: 60, EspeakPath: "-", Logger: logger})
		w, err := worker.New(worker.Config{
			Queue: pool, Provider: provider, Store: store, PollInterval: 20 * time.Millisecond, Logger: logger,
		})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { _ = w.Run(ctx) })
		s.Signer = storage.NewSigner([]byte("test-audio-secret"), srv.URL)
		resolver.Voice = provider
		resolver.SignAudio = func(key string) string { return s.Signer.URL(key, time.Hour) }
		options.Audio = storage.Handler(store, s.Signer)
	}
	handler = api.New(options)

	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			s.Sockets.Shutdown()
			srv.Close()
			cancel()
			wg.Wait()
			closeStore()
			pool.Close()
		})
	}
	t.Cleanup(s.stop)
	waitCtx, waitCancel := context.WithTimeout(ctx, 10*time.Second)
	defer waitCancel()
	if err := listener.WaitConnected(waitCtx); err != nil {
		t.Fatal(err)
	}
	return s
}

// Subprotocols.
const (
	protoTransportWS = "graphql-transport-ws"
	protoLegacyWS    = "graphql-ws"
)

// wsClient speaks either GraphQL websocket subprotocol.
type wsClient struct {
	t     testing.TB
	conn  *websocket.Conn
	proto string
	msgs  chan wsMessage
	// closeCode is set when the server closed the socket.
	closed    chan struct{}
	closeCode int
	// pending holds messages read while waiting for another operation's.
	pending map[string][]wsMessage
	// keepAlives counts the server's "ka" (graphql-ws) and "ping"
	// (graphql-transport-ws) messages.
	keepAlives atomic.Int32
	// writeMu serialises writes: the reader answers pings meanwhile.
	writeMu sync.Mutex
}

type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// wsURL is the GraphQL websocket URL of the server at baseURL.
func wsURL(baseURL string) string { return "ws" + strings.TrimPrefix(baseURL, "http") + "/graphql" }

// dialGraphQL opens a socket to the server at baseURL with proto, closed
// when the test ends.
func dialGraphQL(t testing.TB, baseURL, proto string) *websocket.Conn {
	t.Helper()
	dialer := websocket.Dialer{Subprotocols: []string{proto}, HandshakeTimeout: 5 * time.Second}
	conn, _, err := dialer.Dial(wsURL(baseURL), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// dialWS opens a socket with proto and sends connection_init with payload
// (nil: an empty one). It does not wait for the ack.
func dialWS(t testing.TB, baseURL, proto string, initPayload map[string]any) *wsClient {
	t.Helper()
	conn := dialGraphQL(t, baseURL, proto)
	c := &wsClient{t: t, conn: conn, proto: proto, msgs: make(chan wsMessage, 1024), closed: make(chan struct{})}
	go c.read()
	payload, _ := json.Marshal(initPayload)
	if initPayload == nil {
		payload = []byte("{}")
	}
	c.write(wsMessage{Type: "connection_init", Payload: payload})
	return c
}

func (c *wsClient) read() {
	defer close(c.closed)
	defer close(c.msgs)
	for {
		var m wsMessage
		if err := c.conn.ReadJSON(&m); err != nil {
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
			c.write(wsMessage{Type: "pong"})
			continue
		}
		c.msgs <- m
	}
}

func (c *wsClient) write(m wsMessage) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.conn.WriteJSON(m); err != nil {
		c.t.Logf("ws write: %v", err)
	}
}

// next waits for the next message.
func (c *wsClient) next(timeout time.Duration) (wsMessage, bool) {
	c.t.Helper()
	select {
	case m, ok := <-c.msgs:
		return m, ok
	case <-time.After(timeout):
		c.t.Fatalf("no websocket message within %v", timeout)
		return wsMessage{}, false
	}
}

// ack waits for connection_ack.
func (c *wsClient) ack() {
	c.t.Helper()
	m, ok := c.next(5 * time.Second)
	if !ok || m.Type != "connection_ack" {
		c.t.Fatalf("want connection_ack, got %+v (closed %v, code %d)", m, !ok, c.closeCode)
	}
}

// subscribe starts an operation with id.
func (c *wsClient) subscribe(id, query string, vars map[string]any) {
	payload, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	typ := "subscribe"
	if c.proto == protoLegacyWS {
		typ = "start"
	}
	c.write(wsMessage{ID: id, Type: typ, Payload: payload})
}

// stop ends operation id.
func (c *wsClient) stop(id string) {
	typ := "complete"
	if c.proto == protoLegacyWS {
		typ = "stop"
	}
	c.write(wsMessage{ID: id, Type: typ})
}

// waitClosed waits for the server to close the socket and returns the code.
func (c *wsClient) waitClosed(timeout time.Duration) int {
	c.t.Helper()
	select {
	case <-c.closed:
		return c.closeCode
	case <-time.After(timeout):
		c.t.Fatalf("socket not closed within %v", timeout)
		return 0
	}
}

// event is a decoded subscription message for one operation.
type event struct {
	Kind   string // "data", "error", "complete"
	Data   json.RawMessage
	Errors []gqlError
}

// nextEvent waits for the next message of operation id, mapping both
// subprotocols' message types onto data/error/complete.
func (c *wsClient) nextEvent(id string, timeout time.Duration) event {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		var m wsMessage
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
					c.pending = map[string][]wsMessage{}
				}
				c.pending[m.ID] = append(c.pending[m.ID], m)
				continue
			}
		}
		switch m.Type {
		case "next", "data":
			var body struct {
				Data   json.RawMessage `json:"data"`
				Errors []gqlError      `json:"errors"`
			}
			if err := json.Unmarshal(m.Payload, &body); err != nil {
				c.t.Fatal(err)
			}
			if len(body.Errors) > 0 && (len(body.Data) == 0 || string(body.Data) == "null") {
				return event{Kind: "error", Errors: body.Errors}
			}
			return event{Kind: "data", Data: body.Data, Errors: body.Errors}
		case "error":
			var errs []gqlError
			if err := json.Unmarshal(m.Payload, &errs); err != nil {
				var one gqlError
				_ = json.Unmarshal(m.Payload, &one)
				errs = []gqlError{one}
			}
			return event{Kind: "error", Errors: errs}
		case "complete":
			return event{Kind: "complete"}
		default:
			c.t.Fatalf("unexpected message %+v", m)
		}
	}
}

// authInit is a connection_init payload carrying token.
func authInit(token string) map[string]any {
	return map[string]any{"Authorization": "Bearer " + token}
}

// progressEvent is the data of a generationProgress event.
type progressEvent struct {
	ID       string
	Status   string
	Progress int
	Story    struct{ Title string }
}

func decodeProgress(t testing.TB, ev event, field string) progressEvent {
	t.Helper()
	if ev.Kind != "data" {
		t.Fatalf("want data, got %s %+v", ev.Kind, ev.Errors)
	}
	var body map[string]progressEvent
	if err := json.Unmarshal(ev.Data, &body); err != nil {
		t.Fatal(err)
	}
	p, ok := body[field]
	if !ok {
		t.Fatalf("no %s in %s", field, ev.Data)
	}
	return p
}

func (p progressEvent) String() string { return fmt.Sprintf("%s/%d", p.Status, p.Progress) }

// dialWSNoRead opens an authenticated graphql-transport-ws socket, reads
// the ack and then never reads again: a stalled browser tab.
func dialWSNoRead(t testing.TB, baseURL string, initPayload map[string]any) *wsClient {
	t.Helper()
	conn := dialGraphQL(t, baseURL, protoTransportWS)
	c := &wsClient{t: t, conn: conn, proto: protoTransportWS, closed: make(chan struct{})}
	payload, _ := json.Marshal(initPayload)
	c.write(wsMessage{Type: "connection_init", Payload: payload})
	var ack wsMessage
	if err := conn.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		t.Fatalf("want connection_ack, got %+v, %v", ack, err)
	}
	return c
}

// postTo sends a GraphQL request to another server than the env's.
func (e *env) postTo(baseURL, token, query string, vars map[string]any) response {
	e.t.Helper()
	other := *e
	other.URL = baseURL
	return other.post(token, query, vars)
}

// mintToken signs a token for u valid for ttl.
func mintToken(t testing.TB, u user, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.Mint(testSecret, u.ID, u.Email, false, "authenticated", ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// progressUntilComplete collects the generationProgress events of
// operation id until the server completes it, waiting up to timeout for
// each.
func (c *wsClient) progressUntilComplete(id string, timeout time.Duration) []progressEvent {
	c.t.Helper()
	var events []progressEvent
	for {
		ev := c.nextEvent(id, timeout)
		if ev.Kind == "complete" {
			return events
		}
		events = append(events, decodeProgress(c.t, ev, "generationProgress"))
	}
}

// followGeneration opens a socket on baseURL as token, subscribes operation
// "1" to gen with progressQuery, and returns the client with the snapshot
// every generationProgress subscription starts with.
func followGeneration(t testing.TB, baseURL, proto, token string, gen uuid.UUID) (*wsClient, progressEvent) {
	t.Helper()
	c := dialWS(t, baseURL, proto, authInit(token))
	c.ack()
	c.subscribe("1", progressQuery, map[string]any{"id": gen})
	return c, decodeProgress(t, c.nextEvent("1", 5*time.Second), "generationProgress")
}

// waitHubSubscriptions waits until the server's hub holds n subscriptions,
// so that a change made next reaches them.
func (s *rtServer) waitHubSubscriptions(t testing.TB, n float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		families, err := s.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := -1.0
		for _, f := range families {
			if f.GetName() == "narrate_realtime_active_subscriptions" && len(f.GetMetric()) == 1 {
				got = f.GetMetric()[0].GetGauge().GetValue()
			}
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub holds %v subscriptions, want %v", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lastProgress is the final event of events, failing the test when there
// is none.
func lastProgress(t testing.TB, events []progressEvent) progressEvent {
	t.Helper()
	if len(events) == 0 {
		t.Fatal("the subscription completed without an event")
	}
	return events[len(events)-1]
}
