package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/narrate/narrate/auth"
	"github.com/narrate/narrate/graph"
	"github.com/narrate/narrate/realtime"
	"github.com/narrate/narrate/wsgorilla"
)

// Websocket close codes beyond RFC 6455's.
const (
	// CloseForbidden rejects a token, at connection_init or at its expiry.
	CloseForbidden = 4403
	// CloseGoingAway tells clients the server is shutting down, so they
	// reconnect (to another instance).
	CloseGoingAway = 1001
)

// Keepalive and handshake timing.
const (
	wsKeepAlive   = 15 * time.Second
	wsInitTimeout = 10 * time.Second
)

// Sockets is the websocket side of the API: gqlgen's websocket transport
// over gorilla/websocket, with the token taken from connection_init, and a
// registry of open sockets so each one can be closed with the right code:
// 4403 when its token expires, 1001 when the server shuts down.
type Sockets struct {
	// KeepAlive is how often idle sockets are pinged (graphql-transport-ws)
	// or sent "ka" (graphql-ws); set it before serving.
	KeepAlive time.Duration

	verifier *auth.Verifier
	metrics  *realtime.Metrics
	logger   *slog.Logger
	impl     *wsgorilla.Implementation

	mu       sync.Mutex
	open     map[*socket]struct{}
	shutdown bool
	// serving counts the goroutines serving sockets and event streams,
	// so Wait can join them.
	serving sync.WaitGroup
}

// socket is one websocket connection's state.
type socket struct {
	cancel context.CancelFunc
	opened time.Time

	// stopExpiry releases the timer of the token's expiry deadline.
	stopExpiry context.CancelFunc

	mu        sync.Mutex
	conn      transport.WebsocketConn
	ready     bool // connection_init accepted
	expiresAt time.Time
	goingAway bool
}

// NewSockets makes the websocket side of the API.
func NewSockets(verifier *auth.Verifier, origins []string, metrics *realtime.Metrics, logger *slog.Logger) *Sockets {
	return &Sockets{
		KeepAlive: wsKeepAlive,
		verifier:  verifier,
		metrics:   metrics,
		logger:    logger,
		// A small read buffer and pooled write buffers: an idle socket
		// holds 1 KiB of gorilla buffers instead of 8.
		impl: wsgorilla.New(wsgorilla.Options{AllowedOrigins: origins, ReadBufferSize: 1024, PoolWriteBuffers: true}),
		open: map[*socket]struct{}{},
	}
}

// Transport is gqlgen's websocket transport for these sockets.
func (s *Sockets) Transport() transport.Websocket {
	return transport.Websocket{
		Implementation:        s,
		InitFunc:              s.init,
		InitTimeout:           wsInitTimeout,
		KeepAlivePingInterval: s.KeepAlive,
		PingPongInterval:      s.KeepAlive,
	}
}

type socketKey struct{}

// track registers every websocket and event-stream request, with a
// context Shutdown can cancel, before gqlgen takes it over.
func (s *Sockets) track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws := isWebsocket(r)
		if !ws && !isEventStream(r) {
			next.ServeHTTP(w, r)
			return
		}
		parent := r.Context()
		if ws {
			// The socket outlives this call (see below), and net/http
			// cancels the request's context as the call returns.
			parent = context.WithoutCancel(parent)
		}
		ctx, cancel := context.WithCancel(parent)
		sock := &socket{cancel: cancel, opened: time.Now()}
		if !s.register(sock) {
			cancel()
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		r = r.WithContext(context.WithValue(ctx, socketKey{}, sock))
		serve := func(w http.ResponseWriter) {
			defer s.unregister(sock)
			next.ServeHTTP(w, r)
		}
		if !ws {
			serve(w)
			return
		}
		// A websocket is served on a goroutine of its own, and this call
		// returns once the connection is hijacked: net/http's connection
		// goroutine, whose stack has grown through the whole middleware
		// chain, and its 8 KiB of buffers are then released instead of
		// being held for the life of every idle socket (about 13 KiB per
		// socket, measured with cmd/loadtest).
		dw := &detachedWriter{ResponseWriter: w, hijacked: make(chan struct{})}
		done := make(chan struct{})
		go func() {
			defer close(done)
			serve(dw)
		}()
		select {
		case <-dw.hijacked:
		case <-done:
		}
	})
}

func (s *Sockets) register(sock *socket) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return false
	}
	s.open[sock] = struct{}{}
	// Under mu, and refused once shutdown is set: no Add can race with
	// Wait, which is called after Shutdown.
	s.serving.Add(1)
	return true
}

func (s *Sockets) unregister(sock *socket) {
	defer s.serving.Done()
	s.mu.Lock()
	delete(s.open, sock)
	s.mu.Unlock()
	sock.cancel()
	sock.mu.Lock()
	if sock.stopExpiry != nil {
		sock.stopExpiry()
	}
	sock.mu.Unlock()
}

// detachedWriter tells track when the websocket has taken the connection
// over; from then on net/http's writer must not be touched, since its
// ServeHTTP call has returned.
type detachedWriter struct {
	http.ResponseWriter
	hijacked chan struct{}
}

// Hijack hands the connection to gorilla/websocket.
func (d *detachedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := d.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("response writer cannot be hijacked")
	}
	conn, rw, err := h.Hijack()
	if err == nil {
		d.ResponseWriter = hijackedWriter{}
		close(d.hijacked)
	}
	return conn, rw, err
}

// hijackedWriter stands in for a writer whose connection was hijacked.
type hijackedWriter struct{}

func (hijackedWriter) Header() http.Header       { return http.Header{} }
func (hijackedWriter) Write([]byte) (int, error) { return 0, http.ErrHijacked }
func (hijackedWriter) WriteHeader(int)           {}

// Accept upgrades the connection (gqlgen's WebsocketImplementation).
func (s *Sockets) Accept(w http.ResponseWriter, r *http.Request, opts transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	conn, err := s.impl.Accept(w, r, opts)
	if err != nil {
		return nil, err
	}
	sock, _ := r.Context().Value(socketKey{}).(*socket)
	if sock == nil {
		sock = &socket{cancel: func() {}}
	}
	sock.mu.Lock()
	sock.conn = conn
	sock.mu.Unlock()
	s.metrics.SocketOpened()
	return &socketConn{WebsocketConn: conn, sock: sock, metrics: s.metrics, logger: s.logger, ctx: r.Context()}, nil
}

// init authenticates connection_init. No token: an anonymous socket, which
// may subscribe to nothing private. An invalid token: close with 4403. A
// valid one: the socket acts for that user until the token expires, when
// the context's deadline closes it (with 4403, see socketConn.WriteClose).
func (s *Sockets) init(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
	sock, _ := ctx.Value(socketKey{}).(*socket)
	if sock == nil {
		sock = &socket{cancel: func() {}}
	}
	header := authorization(payload)
	if header == "" {
		sock.markReady(time.Time{})
		return ctx, nil, nil
	}
	token, ok, err := auth.BearerToken(header)
	if err == nil && ok {
		var id *auth.Identity
		if id, err = s.verifier.Verify(ctx, token); err == nil {
			sock.markReady(id.ExpiresAt)
			ctx, cancel := context.WithDeadline(graph.WithViewer(ctx, ViewerOf(id)), id.ExpiresAt)
			sock.mu.Lock()
			sock.stopExpiry = cancel
			sock.mu.Unlock()
			return ctx, nil, nil
		}
	}
	if err == nil {
		err = auth.ErrInvalidToken
	}
	if !errors.Is(err, auth.ErrInvalidToken) {
		s.logger.ErrorContext(ctx, "verify websocket token", "err", err)
	}
	ctx = transport.WithWebsocketCloseCode(ctx, CloseForbidden)
	return transport.AppendCloseReason(ctx, "invalid token"), nil, err
}

// authorization finds the Authorization value in a connection_init
// payload: {"Authorization": "..."} with the key in any case, or
// {"headers": {"Authorization": "..."}}.
func authorization(payload transport.InitPayload) string {
	find := func(m map[string]any) string {
		for k, v := range m {
			if strings.EqualFold(k, "authorization") {
				s, _ := v.(string)
				return s
			}
		}
		return ""
	}
	if v := find(payload); v != "" {
		return v
	}
	if headers, ok := payload["headers"].(map[string]any); ok {
		return find(headers)
	}
	return ""
}

func (sock *socket) markReady(expiresAt time.Time) {
	sock.mu.Lock()
	sock.ready, sock.expiresAt = true, expiresAt
	sock.mu.Unlock()
}

// Shutdown closes every open socket with 1001, ends every event stream,
// and refuses new ones.
func (s *Sockets) Shutdown() {
	s.mu.Lock()
	s.shutdown = true
	socks := make([]*socket, 0, len(s.open))
	for sock := range s.open {
		socks = append(socks, sock)
	}
	s.mu.Unlock()
	for _, sock := range socks {
		sock.mu.Lock()
		sock.goingAway = true
		conn, ready := sock.conn, sock.ready
		sock.mu.Unlock()
		// Cancelling the context makes gqlgen close an established socket
		// itself (socketConn.WriteClose then sends 1001). One still waiting
		// for connection_init is blocked reading, so close it here.
		sock.cancel()
		if conn != nil && !ready {
			_ = conn.WriteClose(CloseGoingAway, "server shutting down")
			_ = conn.Close()
		}
	}
}

// Wait waits until every socket and event stream has been served to its
// end, or ctx ends. Call it after Shutdown.
func (s *Sockets) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.serving.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%d sockets or streams still open: %w", s.count(), ctx.Err())
	}
}

func (s *Sockets) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

// socketConn picks the close code gqlgen cannot know: gqlgen closes with
// 1000 whenever the socket's context ends.
type socketConn struct {
	transport.WebsocketConn
	sock    *socket
	metrics *realtime.Metrics
	logger  *slog.Logger
	ctx     context.Context // the upgrade request's, for its request id
	once    sync.Once
	code    int
}

// WriteClose sends 1001 during shutdown and 4403 once the token expired.
func (c *socketConn) WriteClose(code int, reason string) error {
	c.sock.mu.Lock()
	goingAway, expiresAt := c.sock.goingAway, c.sock.expiresAt
	c.sock.mu.Unlock()
	switch {
	case goingAway:
		code, reason = CloseGoingAway, "server shutting down"
	case code == transport.WebsocketCloseNormalClosure && !expiresAt.IsZero() && !time.Now().Before(expiresAt):
		code, reason = CloseForbidden, "token expired"
	}
	c.sock.mu.Lock()
	c.code = code
	c.sock.mu.Unlock()
	return c.WebsocketConn.WriteClose(code, reason)
}

// Close closes the connection once, and logs the socket's life: the
// access log has only its upgrade.
func (c *socketConn) Close() error {
	c.once.Do(func() {
		c.metrics.SocketClosed()
		c.sock.mu.Lock()
		code := c.code
		c.sock.mu.Unlock()
		c.logger.InfoContext(c.ctx, "websocket closed", "duration", time.Since(c.sock.opened), "close_code", code)
	})
	return c.WebsocketConn.Close()
}

// SetReadLimit passes gqlgen's read limit on.
func (c *socketConn) SetReadLimit(limit int64) {
	if l, ok := c.WebsocketConn.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(limit)
	}
}

// SetReadDeadline passes gqlgen's pong deadline on.
func (c *socketConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.WebsocketConn.(transport.WebsocketReadDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}
