// Package socket serves GraphQL over websockets, in both subprotocols that
// clients use (graphql-transport-ws and the legacy graphql-ws of
// subscriptions-transport-ws), on gorilla/websocket. Every operation runs
// through gqlgen's executor, as gqlgen's own websocket transport runs it
// (CreateOperationContext, then DispatchOperation); what this package owns
// is the protocol around it:
//
//   - the protocol's rules, each broken one closed with its close code: a
//     duplicate operation id (4409), a message before connection_ack (4401),
//     a second connection_init (4429), an unknown or malformed message or a
//     connection_init payload that is not an object (4400), no
//     connection_init in time (4408);
//   - caps: operations per socket, sockets per user and per client address;
//   - authentication of connection_init before connection_ack, and the
//     socket's end when the token's validity ends (4403);
//   - memory: an idle socket costs no goroutine on Linux (one elsewhere,
//     its reader) and small buffers. A socket with nothing left to read is
//     handed to one epoll poller per Server, which gives it a reader again
//     when the client sends something; messages are written by a goroutine
//     that exists only while the socket has something to send, keepalives
//     and deadlines are run by one ticker for all sockets, and
//     subscriptions whose resolver accepts a [Driver] run without a
//     goroutine of their own;
//   - slow clients: every write has a deadline, and a client that does not
//     read is dropped once a write times out, without holding up anyone
//     else.
package socket

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/gorilla/websocket"

	"github.com/narrate/narrate/recovery"
)

// Subprotocols.
const (
	// ProtocolTransportWS is graphql-ws's graphql-transport-ws protocol.
	ProtocolTransportWS = "graphql-transport-ws"
	// ProtocolLegacyWS is subscriptions-transport-ws's graphql-ws protocol;
	// a client that names no subprotocol gets it too, as with gqlgen.
	ProtocolLegacyWS = "graphql-ws"
)

// Close codes. The 44xx codes are graphql-transport-ws's; the legacy
// protocol defines none, so it gets the same ones.
const (
	CloseNormal           = 1000
	CloseGoingAway        = 1001
	ClosePolicyViolation  = 1008
	CloseBadRequest       = 4400
	CloseUnauthorized     = 4401
	CloseForbidden        = 4403
	CloseInitTimeout      = 4408
	CloseSubscriberExists = 4409
	CloseTooManyInits     = 4429
	CloseInternalError    = 4500
)

// Defaults for zero Config fields.
const (
	DefaultKeepAlive      = 15 * time.Second
	DefaultInitTimeout    = 10 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultCloseGrace     = 2 * time.Second
	DefaultTick           = time.Second
	DefaultReadLimit      = 64 << 10
	DefaultReadBufferSize = 512
	// DefaultSubscriptionsPerSocket is generous for a client multiplexing
	// its subscriptions over one socket, as graphql-ws clients do.
	DefaultSubscriptionsPerSocket = 100
	// DefaultSocketsPerUser allows a user many tabs and devices.
	DefaultSocketsPerUser = 100
	// DefaultSocketsPerAddress allows many users behind one NAT.
	DefaultSocketsPerAddress = 1000
)

// Limits caps what clients may hold open. Zero fields take the defaults; a
// negative field lifts that cap.
type Limits struct {
	SubscriptionsPerSocket int
	SocketsPerUser         int
	// SocketsPerAddress caps the sockets of one client address. Requests
	// from a loopback address come from a proxy on the same host or a
	// local tool: they count under the last address of X-Forwarded-For,
	// and are not capped when there is none.
	SocketsPerAddress int
}

func (l Limits) withDefaults() Limits {
	def := func(v, d int) int {
		switch {
		case v == 0:
			return d
		case v < 0:
			return 0
		}
		return v
	}
	l.SubscriptionsPerSocket = def(l.SubscriptionsPerSocket, DefaultSubscriptionsPerSocket)
	l.SocketsPerUser = def(l.SocketsPerUser, DefaultSocketsPerUser)
	l.SocketsPerAddress = def(l.SocketsPerAddress, DefaultSocketsPerAddress)
	return l
}

// Session is what Authenticate makes of a connection_init.
type Session struct {
	// Context carries the caller's identity to the resolvers; it must
	// derive from the context Authenticate was given.
	Context context.Context
	// User is counted against Limits.SocketsPerUser; empty for anonymous
	// sockets, which are not.
	User string
	// Until is when the socket must close with 4403 (the token is no
	// longer valid); zero for never.
	Until time.Time
}

// CloseError closes a socket with Code and Reason.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string { return e.Reason }

// Metrics counts open sockets.
type Metrics interface {
	SocketOpened()
	SocketClosed()
}

// Config configures a Server.
type Config struct {
	// Authenticate judges connection_init's payload (nil when the client
	// sent none) before connection_ack. A *CloseError closes the socket
	// with its code; any other error with 4500.
	Authenticate func(ctx context.Context, payload map[string]any) (Session, error)
	// CheckOrigin reports whether a browser's upgrade may proceed; nil
	// allows requests without an Origin and same-origin ones.
	CheckOrigin func(*http.Request) bool
	// KeepAlive is how often a socket is pinged (graphql-transport-ws
	// "ping", which the client answers, and legacy "ka"). A
	// graphql-transport-ws socket from which nothing was read for two
	// intervals is dropped.
	KeepAlive time.Duration
	// InitTimeout bounds the wait for connection_init (then 4408).
	InitTimeout time.Duration
	// WriteTimeout bounds every write: a client that leaves its buffers
	// full that long is dropped.
	WriteTimeout time.Duration
	// CloseGrace bounds the closing handshake after the server's close
	// frame.
	CloseGrace time.Duration
	// Tick is the resolution of keepalives, deadlines and token expiry.
	Tick time.Duration
	// ReadLimit caps one incoming message.
	ReadLimit int64
	// ReadBufferSize sizes a socket's read buffer, 257 bytes at the least
	// (gorilla reads through the buffer this package hands it only when it
	// is larger than 256).
	ReadBufferSize int
	Limits         Limits
	Logger         *slog.Logger
	Metrics        Metrics
	// Panics logs, with its stack, and counts every panic recovered in a
	// socket's goroutines (narrate_panics_total{where="websocket"}); nil
	// logs them without counting.
	Panics *recovery.Metrics
	// BaseContext makes a socket's context from its upgrade request: it
	// should carry what logs need (a request id) and no more, since every
	// socket keeps it for its whole life. Nil keeps the request's
	// context's values.
	BaseContext func(*http.Request) context.Context
}

// Server serves GraphQL websockets. It is a gqlgen transport: add it to a
// handler.Server, which hands it the executor.
type Server struct {
	cfg      Config
	upgrader websocket.Upgrader
	// poller watches idle sockets; nil where there is none (see
	// pollerSupported) or it could not be made, and every socket then
	// keeps its reader goroutine.
	poller *poller
	// pollWarned is set once a socket could not be handed to the poller,
	// so that the warning is logged once, not once per socket.
	pollWarned atomic.Bool

	mu       sync.Mutex
	conns    map[*conn]struct{}
	perUser  map[string]int
	perAddr  map[string]int
	shutdown bool
	empty    chan struct{} // made by Shutdown, closed once no conn is left

	stop     chan struct{}
	stopOnce sync.Once
	tickDone chan struct{}
}

var _ graphql.Transport = (*Server)(nil)

// NewServer returns a Server and starts its ticker and poller; Shutdown and
// Wait stop them.
func NewServer(cfg Config) *Server {
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.InitTimeout <= 0 {
		cfg.InitTimeout = DefaultInitTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.CloseGrace <= 0 {
		cfg.CloseGrace = DefaultCloseGrace
	}
	if cfg.Tick <= 0 {
		cfg.Tick = min(DefaultTick, cfg.KeepAlive/2)
	}
	if cfg.ReadLimit <= 0 {
		cfg.ReadLimit = DefaultReadLimit
	}
	if cfg.ReadBufferSize <= 0 {
		cfg.ReadBufferSize = DefaultReadBufferSize
	}
	cfg.ReadBufferSize = max(cfg.ReadBufferSize, minReadBufferSize)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	if cfg.Authenticate == nil {
		cfg.Authenticate = func(ctx context.Context, _ map[string]any) (Session, error) {
			return Session{Context: ctx}, nil
		}
	}
	cfg.Limits = cfg.Limits.withDefaults()
	s := &Server{
		cfg: cfg,
		upgrader: websocket.Upgrader{
			HandshakeTimeout: cfg.WriteTimeout,
			// Zero, so that gorilla reads through the buffer the
			// hijacker hands it (see hijacker), sized ReadBufferSize.
			ReadBufferSize: 0,
			// Write buffers are taken from the pool only while a message
			// is written, so an idle socket holds none.
			WriteBufferPool: &sync.Pool{},
			Subprotocols:    []string{ProtocolTransportWS, ProtocolLegacyWS},
			CheckOrigin:     cfg.CheckOrigin,
			Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
				http.Error(w, reason.Error(), status)
			},
		},
		conns:    map[*conn]struct{}{},
		perUser:  map[string]int{},
		perAddr:  map[string]int{},
		stop:     make(chan struct{}),
		tickDone: make(chan struct{}),
	}
	if s.upgrader.CheckOrigin == nil {
		s.upgrader.CheckOrigin = SameOrigin
	}
	p, err := newPoller(cfg.Logger, cfg.Panics)
	if err != nil {
		cfg.Logger.Warn("websocket poller unavailable; every socket keeps a reader goroutine", "err", err)
	}
	s.poller = p
	go s.tick()
	return s
}

// Supports reports a websocket upgrade.
func (s *Server) Supports(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// Do upgrades the request and returns: the socket is then parked with the
// poller until the client sends something (or, without a poller, served
// by a reader goroutine of its own), and net/http's connection goroutine
// and buffers are released.
func (s *Server) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	addr := clientAddress(r)
	if status, msg := s.admit(addr); status != 0 {
		http.Error(w, msg, status)
		return
	}
	hw := &hijacker{ResponseWriter: w, size: s.cfg.ReadBufferSize}
	ws, err := s.upgrader.Upgrade(hw, r, nil)
	if err != nil {
		// The upgrader has answered the request.
		s.release(addr, "")
		return
	}
	ws.SetReadLimit(s.cfg.ReadLimit)
	base := context.WithoutCancel(r.Context())
	if s.cfg.BaseContext != nil {
		base = s.cfg.BaseContext(r)
	}
	c := newConn(s, ws, hw.br, exec, base, addr)
	if !s.register(c) {
		s.release(addr, "")
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(CloseGoingAway, "server shutting down"), time.Now().Add(s.cfg.WriteTimeout))
		_ = ws.Close()
		return
	}
	if !c.park() {
		go c.run()
	}
}

// admit counts a socket against its address's cap before the upgrade.
func (s *Server) admit(addr string) (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return http.StatusServiceUnavailable, "shutting down"
	}
	if addr != "" {
		if max := s.cfg.Limits.SocketsPerAddress; max > 0 && s.perAddr[addr] >= max {
			return http.StatusTooManyRequests, "too many sockets from this address"
		}
		s.perAddr[addr]++
	}
	return 0, ""
}

// admitUser counts an authenticated socket against its user's cap.
func (s *Server) admitUser(user string) bool {
	if user == "" {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if max := s.cfg.Limits.SocketsPerUser; max > 0 && s.perUser[user] >= max {
		return false
	}
	s.perUser[user]++
	return true
}

// release uncounts a socket's address and user.
func (s *Server) release(addr, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	decrement(s.perAddr, addr)
	decrement(s.perUser, user)
}

func decrement(m map[string]int, key string) {
	if key == "" {
		return
	}
	if m[key] <= 1 {
		delete(m, key)
		return
	}
	m[key]--
}

func (s *Server) register(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return false
	}
	s.conns[c] = struct{}{}
	s.cfg.Metrics.SocketOpened()
	return true
}

func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok {
		return
	}
	delete(s.conns, c)
	decrement(s.perAddr, c.addr)
	decrement(s.perUser, c.user)
	s.cfg.Metrics.SocketClosed()
	if s.shutdown && len(s.conns) == 0 && s.empty != nil {
		select {
		case <-s.empty:
		default:
			close(s.empty)
		}
	}
}

// Shutdown refuses new sockets and starts closing every open one with
// 1001; Wait then waits for them to end. It is idempotent.
func (s *Server) Shutdown() {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return
	}
	s.shutdown = true
	conns := s.snapshot(nil)
	s.empty = make(chan struct{})
	if len(conns) == 0 {
		close(s.empty)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.close(CloseGoingAway, "server shutting down")
	}
}

// Wait waits, after Shutdown, until every socket has ended (a client that
// does not answer the close frame is dropped after the close grace period
// by the ticker), then stops the poller and the ticker: the poller only
// once no socket is left, since a parked socket hears its client's close
// frame through it. When ctx ends first, the sockets left are dropped, and
// Wait reports how many there were.
func (s *Server) Wait(ctx context.Context) error {
	s.mu.Lock()
	empty := s.empty
	s.mu.Unlock()
	if empty == nil {
		return errors.New("socket: Wait before Shutdown")
	}
	var err error
	select {
	case <-empty:
	case <-ctx.Done():
		s.mu.Lock()
		conns := s.snapshot(nil)
		s.mu.Unlock()
		err = fmt.Errorf("%d sockets still open: %w", len(conns), ctx.Err())
		for _, c := range conns {
			c.drop()
		}
		<-empty
	}
	if s.poller != nil {
		s.poller.stop()
	}
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.tickDone
	return err
}

func (s *Server) snapshot(buf []*conn) []*conn {
	buf = buf[:0]
	for c := range s.conns {
		buf = append(buf, c)
	}
	return buf
}

// Open returns the number of open sockets.
func (s *Server) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// tick runs every socket's timers: keepalives, the init deadline, token
// expiry, the pong deadline and the closing handshake's grace period. One
// ticker for all sockets replaces a timer goroutine per socket; visiting
// 10,000 sockets takes well under a millisecond.
func (s *Server) tick() {
	defer close(s.tickDone)
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	var conns []*conn
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.mu.Lock()
			conns = s.snapshot(conns)
			s.mu.Unlock()
			for _, c := range conns {
				c.tick(now)
			}
			clear(conns)
		}
	}
}

// SameOrigin allows an upgrade without an Origin header (not a browser)
// or whose Origin's host is the request's own.
func SameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	_, host, ok := strings.Cut(origin, "://")
	return ok && strings.EqualFold(host, r.Host)
}

// clientAddress is the address a socket counts against: the peer's, or,
// from a proxy on the same host, the last address it put in
// X-Forwarded-For; empty (uncapped) for a local client without one.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return host
	}
	fwd := r.Header.Values("X-Forwarded-For")
	if len(fwd) == 0 {
		return ""
	}
	last := fwd[len(fwd)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	return strings.TrimSpace(last)
}

type noMetrics struct{}

func (noMetrics) SocketOpened() {}
func (noMetrics) SocketClosed() {}

// errClosed ends a write once the socket is closing or closed.
var errClosed = errors.New("socket closed")
