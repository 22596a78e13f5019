package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// GraphQL websocket subprotocols.
const (
	protoTransportWS = "graphql-transport-ws"
	protoLegacyWS    = "graphql-ws"
)

// errUnexpectedMessage is returned (wrapped) when the server answers the
// handshake or the subscription with something other than what the
// protocol promises.
var errUnexpectedMessage = errors.New("unexpected message")

// clientCounters counts what the subscribers saw that was not an ordinary
// event: the summary reports them, and a healthy run has none.
type clientCounters struct {
	// errors counts GraphQL errors and protocol error messages.
	errors atomic.Int64
	// completed counts subscriptions the server completed, which it only
	// does after a terminal status: none is expected here.
	completed atomic.Int64
	// dropped counts sockets that closed before the tool closed them.
	dropped atomic.Int64
	// badMessages counts messages that could not be decoded.
	badMessages atomic.Int64
	// pings counts graphql-transport-ws pings answered.
	pings atomic.Int64
}

// subscriber is one websocket carrying one or more generationProgress
// subscriptions.
type subscriber struct {
	conn *websocket.Conn

	// writeMu serialises writes: gorilla allows one writer at a time, and
	// both the reader (answering pings) and close write.
	writeMu sync.Mutex
	closing atomic.Bool
	done    chan struct{}
}

// wireMessage is a message of either subprotocol.
type wireMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// progressPayload is the payload of a data message of generationProgress.
type progressPayload struct {
	Data *struct {
		GenerationProgress *struct {
			Progress int `json:"progress"`
		} `json:"generationProgress"`
	} `json:"data"`
	Errors []json.RawMessage `json:"errors"`
}

// newDialer returns the websocket dialer the subscribers share. Small buffers
// keep the tool's own memory modest with many thousands of sockets; larger
// messages still work, in several reads.
func newDialer(proto string, timeout time.Duration) *websocket.Dialer {
	return &websocket.Dialer{
		NetDialContext:   (&net.Dialer{Timeout: timeout, KeepAlive: -1}).DialContext,
		HandshakeTimeout: timeout,
		Subprotocols:     []string{proto},
		ReadBufferSize:   2048,
		WriteBufferSize:  1024,
		WriteBufferPool:  &sync.Pool{},
	}
}

// websocketURL turns the server's base URL into its GraphQL websocket URL.
func websocketURL(baseURL string) (string, error) {
	switch {
	case strings.HasPrefix(baseURL, "http://"):
		return "ws://" + strings.TrimPrefix(baseURL, "http://") + "/graphql", nil
	case strings.HasPrefix(baseURL, "https://"):
		return "wss://" + strings.TrimPrefix(baseURL, "https://") + "/graphql", nil
	}
	return "", fmt.Errorf("server URL %q: want http:// or https://", baseURL)
}

// operation is one generationProgress subscription: the index of its
// generation, which is also its operation id, and the generation's id.
type operation struct {
	gen          int
	generationID string
}

// subscribe opens a socket as the holder of token, completes the
// connection_init handshake and starts generationProgress with the given
// selection for each of ops. It returns once the subscribe messages are
// sent; the snapshots and later events arrive on read.
func subscribe(ctx context.Context, d *websocket.Dialer, wsURL, proto, token, fields string, ops []operation, timeout time.Duration) (*subscriber, error) {
	conn, res, err := d.DialContext(ctx, wsURL, nil)
	if res != nil && res.Body != nil {
		res.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	s := &subscriber{conn: conn, done: make(chan struct{})}
	if conn.Subprotocol() != proto {
		conn.Close()
		return nil, fmt.Errorf("server chose subprotocol %q, want %q", conn.Subprotocol(), proto)
	}
	init, _ := json.Marshal(map[string]string{"Authorization": "Bearer " + token})
	if err := s.write(wireMessage{Type: "connection_init", Payload: init}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connection_init: %w", err)
	}
	if err := s.awaitAck(timeout); err != nil {
		conn.Close()
		return nil, err
	}
	start := "subscribe"
	if proto == protoLegacyWS {
		start = "start"
	}
	for _, op := range ops {
		query, _ := json.Marshal(map[string]any{
			"query":     "subscription($id: ID!) { generationProgress(id: $id) { " + fields + " } }",
			"variables": map[string]string{"id": op.generationID},
		})
		if err := s.write(wireMessage{ID: strconv.Itoa(op.gen), Type: start, Payload: query}); err != nil {
			conn.Close()
			return nil, fmt.Errorf("subscribe: %w", err)
		}
	}
	return s, nil
}

// awaitAck reads until connection_ack, skipping keepalives.
func (s *subscriber) awaitAck(timeout time.Duration) error {
	_ = s.conn.SetReadDeadline(time.Now().Add(timeout))
	defer s.conn.SetReadDeadline(time.Time{})
	for {
		var m wireMessage
		if err := s.conn.ReadJSON(&m); err != nil {
			return fmt.Errorf("await connection_ack: %w", err)
		}
		switch m.Type {
		case "connection_ack":
			return nil
		case "ka", "ping", "pong":
		default:
			return fmt.Errorf("await connection_ack: %w: %s %s", errUnexpectedMessage, m.Type, m.Payload)
		}
	}
}

func (s *subscriber) write(m wireMessage) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return s.conn.WriteJSON(m)
}

// read receives messages until the socket closes, recording every event's
// progress in tr with the time it arrived.
func (s *subscriber) read(tr *tracker, c *clientCounters) {
	defer close(s.done)
	for {
		_, data, err := s.conn.ReadMessage()
		at := time.Now()
		if err != nil {
			if !s.closing.Load() {
				c.dropped.Add(1)
			}
			return
		}
		var m wireMessage
		if err := json.Unmarshal(data, &m); err != nil {
			c.badMessages.Add(1)
			continue
		}
		switch m.Type {
		case "next", "data":
			gen, err := strconv.Atoi(m.ID)
			if err != nil || gen < 0 || gen >= len(tr.gens) {
				c.badMessages.Add(1)
				continue
			}
			var p progressPayload
			if err := json.Unmarshal(m.Payload, &p); err != nil {
				c.badMessages.Add(1)
				continue
			}
			if len(p.Errors) > 0 || p.Data == nil || p.Data.GenerationProgress == nil {
				c.errors.Add(1)
				continue
			}
			tr.received(gen, p.Data.GenerationProgress.Progress, at)
		case "ping":
			c.pings.Add(1)
			_ = s.write(wireMessage{Type: "pong"})
		case "ka", "pong":
		case "complete":
			c.completed.Add(1)
		case "error", "connection_error":
			c.errors.Add(1)
		default:
			c.badMessages.Add(1)
		}
	}
}

// close ends the subscription and the socket with a normal closure and
// waits, up to timeout, for the server's close frame.
func (s *subscriber) close(timeout time.Duration) {
	s.closing.Store(true)
	s.writeMu.Lock()
	_ = s.conn.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, "load test done"), time.Now().Add(timeout))
	s.writeMu.Unlock()
	select {
	case <-s.done:
	case <-time.After(timeout):
	}
	_ = s.conn.Close()
	<-s.done
}
