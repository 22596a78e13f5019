// Package wsgorilla plugs gorilla/websocket into gqlgen's websocket transport.
//
// gqlgen (since v0.17.92) accepts any websocket library through
// transport.WebsocketImplementation. This package provides that seam for
// gorilla/websocket, adding what a public API needs on top of a bare
// upgrade: an allowed-origins check, a read limit, write deadlines and close
// frames that carry gqlgen's close codes (for example 4403 for a rejected
// token) to the client.
package wsgorilla

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/gorilla/websocket"
)

// Defaults applied when the corresponding Options field is zero.
const (
	// DefaultReadLimit caps one incoming message. GraphQL operations sent
	// over a socket are small; 64 KiB leaves ample room while bounding the
	// memory a single client can make the server buffer.
	DefaultReadLimit int64 = 64 << 10
	// DefaultWriteTimeout bounds every frame written to a client so a peer
	// that stopped reading cannot block a subscription goroutine forever.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultHandshakeTimeout bounds the HTTP upgrade handshake.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultCloseGracePeriod bounds how long a connection stays open after
	// the server sent its close frame, waiting for the client's reply.
	DefaultCloseGracePeriod = 2 * time.Second
)

// maxCloseReasonBytes is the largest close reason RFC 6455 allows: a control
// frame payload is at most 125 bytes, two of which hold the status code.
const maxCloseReasonBytes = 123

// preferredSubprotocol is chosen first when a client offers several
// protocols, because it is the maintained successor of legacy graphql-ws.
const preferredSubprotocol = "graphql-transport-ws"

// Options configures an Implementation. The zero value is usable: any
// origin, DefaultReadLimit, DefaultWriteTimeout and DefaultHandshakeTimeout.
type Options struct {
	// AllowedOrigins lists the browser origins (scheme://host[:port]) that
	// may open a socket. Empty, or an entry "*", allows any origin. Requests
	// without an Origin header come from non-browser clients and are allowed:
	// the origin check protects browsers from cross-site use, and tokens
	// travel in the connection_init payload, not in cookies.
	AllowedOrigins []string
	// ReadLimit is the maximum size of one incoming message in bytes. When
	// gqlgen also sets a limit (its PayloadReadLimit), the smaller one wins.
	// A negative value leaves the limit to gqlgen alone.
	ReadLimit int64
	// WriteTimeout bounds each frame written to the client.
	WriteTimeout time.Duration
	// HandshakeTimeout bounds the upgrade handshake.
	HandshakeTimeout time.Duration
	// CloseGracePeriod bounds the closing handshake: after sending a close
	// frame the server reads until the client's close frame arrives, then
	// closes the TCP connection, or closes it anyway after this period.
	CloseGracePeriod time.Duration
	// ReadBufferSize sizes gorilla's read buffer; zero reuses the one of the
	// HTTP server.
	ReadBufferSize int
	// PoolWriteBuffers shares write buffers between connections, taking one
	// only while a message is written: an idle socket then holds none.
	PoolWriteBuffers bool
}

// Implementation is a transport.WebsocketImplementation backed by
// gorilla/websocket. Create it with New; it is safe for concurrent use.
type Implementation struct {
	checkOrigin      func(*http.Request) bool
	readLimit        int64
	writeTimeout     time.Duration
	handshakeTimeout time.Duration
	closeGracePeriod time.Duration
	readBufferSize   int
	writeBufferPool  websocket.BufferPool
}

var _ transport.WebsocketImplementation = (*Implementation)(nil)

// New returns an Implementation configured by opts.
func New(opts Options) *Implementation {
	impl := &Implementation{
		checkOrigin:      OriginChecker(opts.AllowedOrigins),
		readLimit:        opts.ReadLimit,
		writeTimeout:     opts.WriteTimeout,
		handshakeTimeout: opts.HandshakeTimeout,
		closeGracePeriod: opts.CloseGracePeriod,
		readBufferSize:   opts.ReadBufferSize,
	}
	if opts.PoolWriteBuffers {
		impl.writeBufferPool = &sync.Pool{}
	}
	if impl.readLimit == 0 {
		impl.readLimit = DefaultReadLimit
	}
	if impl.writeTimeout <= 0 {
		impl.writeTimeout = DefaultWriteTimeout
	}
	if impl.handshakeTimeout <= 0 {
		impl.handshakeTimeout = DefaultHandshakeTimeout
	}
	if impl.closeGracePeriod <= 0 {
		impl.closeGracePeriod = DefaultCloseGracePeriod
	}
	return impl
}

// Accept upgrades the request to a websocket, negotiating one of the
// subprotocols gqlgen supports. On failure the HTTP status (403 for a
// disallowed origin, 400 for a malformed handshake) has already been written;
// gqlgen then appends its own JSON error body.
func (i *Implementation) Accept(w http.ResponseWriter, r *http.Request, options transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	upgrader := websocket.Upgrader{
		HandshakeTimeout: i.handshakeTimeout,
		ReadBufferSize:   i.readBufferSize,
		WriteBufferPool:  i.writeBufferPool,
		Subprotocols:     preferredFirst(options.Subprotocols),
		CheckOrigin:      i.checkOrigin,
		Error:            writeHandshakeStatus,
	}
	conn, err := upgrader.Upgrade(w, r, options.ResponseHeader)
	if err != nil {
		return nil, fmt.Errorf("websocket upgrade: %w", err)
	}
	c := &Conn{conn: conn, writeTimeout: i.writeTimeout, closeGracePeriod: i.closeGracePeriod, readLimit: i.readLimit}
	if i.readLimit > 0 {
		conn.SetReadLimit(i.readLimit)
	}
	return c, nil
}

// preferredFirst orders gqlgen's subprotocols with the preferred one first,
// because gorilla picks the first server entry the client also offered.
func preferredFirst(protocols []string) []string {
	i := slices.Index(protocols, preferredSubprotocol)
	if i <= 0 {
		return protocols
	}
	out := make([]string, 0, len(protocols))
	out = append(out, preferredSubprotocol)
	return append(append(out, protocols[:i]...), protocols[i+1:]...)
}

// writeHandshakeStatus writes only the status of a failed upgrade. gqlgen's
// websocket transport writes a GraphQL JSON error body itself after Accept
// fails, so writing gorilla's plain-text body too would corrupt that body.
func writeHandshakeStatus(w http.ResponseWriter, _ *http.Request, status int, _ error) {
	w.Header().Set("Sec-Websocket-Version", "13")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
}

// OriginChecker returns a function reporting whether a websocket upgrade
// request's Origin header is in allowed. An empty list, or one holding "*",
// allows every origin; a request without an Origin header is always allowed
// (see Options.AllowedOrigins). Origins compare by scheme and host,
// case-insensitively, ignoring any path or trailing slash.
func OriginChecker(allowed []string) func(*http.Request) bool {
	set := make(map[string]struct{}, len(allowed))
	for _, origin := range allowed {
		origin = strings.TrimSpace(origin)
		if origin == "" {
			continue
		}
		if origin == "*" {
			return allowAnyOrigin
		}
		set[normalizeOrigin(origin)] = struct{}{}
	}
	if len(set) == 0 {
		return allowAnyOrigin
	}
	return func(r *http.Request) bool {
		origin := r.Header.Get("Origin")
		if origin == "" {
			return true
		}
		_, ok := set[normalizeOrigin(origin)]
		return ok
	}
}

func allowAnyOrigin(*http.Request) bool { return true }

// normalizeOrigin reduces an origin to lower-case scheme://host[:port]. A
// value that does not parse is kept (lower-cased) so that it can only match
// itself.
func normalizeOrigin(origin string) string {
	u, err := url.Parse(strings.TrimSpace(origin))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return strings.ToLower(strings.TrimRight(origin, "/"))
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

// Conn adapts a *websocket.Conn to transport.WebsocketConn, and also to the
// optional transport.WebsocketReadLimiter and transport.WebsocketReadDeadliner.
//
// Closing follows RFC 6455's closing handshake, as gqlgen's default
// coder/websocket adapter does: WriteClose sends the close frame and starts
// reading until the client answers with its own, and only then is the TCP
// connection closed. Closing it at once would make the kernel reset a
// connection that still has unread client data (say, a subscribe pipelined
// after a rejected connection_init), and some clients then lose the close
// frame and its code (4403) along with the connection.
type Conn struct {
	conn             *websocket.Conn
	writeTimeout     time.Duration
	closeGracePeriod time.Duration
	readLimit        int64

	// writeMu serialises data frames: gorilla allows one concurrent writer.
	writeMu sync.Mutex
	// readMu serialises reads between gqlgen's read loop and the goroutine
	// finishing the closing handshake: gorilla allows one concurrent reader.
	readMu sync.Mutex

	// closing is set once the server's close frame is sent; from then on
	// reads only wait for the client's close frame.
	closing    atomic.Bool
	closeStart sync.Once
	closeNet   sync.Once
	// deadlineMu keeps a deadline change by gqlgen from racing with, and
	// undoing, the deadline that bounds the closing handshake.
	deadlineMu sync.Mutex
}

var (
	_ transport.WebsocketConn          = (*Conn)(nil)
	_ transport.WebsocketReadLimiter   = (*Conn)(nil)
	_ transport.WebsocketReadDeadliner = (*Conn)(nil)
)

// NextReader reads the next message whole and returns a reader over it.
// Reading it whole (it is bounded by the read limit) keeps every read of the
// underlying connection inside this method, where it can be serialised with
// the closing handshake. A normal close by the peer (1000, 1001 or no status),
// and any read error once the server has started closing, is reported as
// transport.ErrWebsocketClosed, which gqlgen treats as an orderly end.
func (c *Conn) NextReader() (int, io.Reader, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	messageType, data, err := c.conn.ReadMessage()
	if err != nil {
		if c.closing.Load() {
			c.closeNow()
			return messageType, nil, transport.ErrWebsocketClosed
		}
		if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) {
			return messageType, nil, transport.ErrWebsocketClosed
		}
		return messageType, nil, err
	}
	return messageType, bytes.NewReader(data), nil
}

// WriteJSON writes v as one text message within the write timeout.
func (c *Conn) WriteJSON(v any) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.conn.SetWriteDeadline(time.Now().Add(c.writeTimeout)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	return c.conn.WriteJSON(v)
}

// WriteClose sends a close frame with closeCode and message, truncated to
// the 123 bytes a close frame can carry, and starts the closing handshake:
// the connection is closed once the client answers, or after the grace
// period.
func (c *Conn) WriteClose(closeCode int, message string) error {
	payload := websocket.FormatCloseMessage(closeCode, truncateReason(message))
	err := c.conn.WriteControl(websocket.CloseMessage, payload, time.Now().Add(c.writeTimeout))
	if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
		c.closeNow()
		return fmt.Errorf("write close frame: %w", err)
	}
	c.closeStart.Do(func() {
		// The deadline ends any read, gqlgen's or finishClose's, by the end
		// of the grace period.
		c.deadlineMu.Lock()
		c.closing.Store(true)
		_ = c.conn.SetReadDeadline(time.Now().Add(c.closeGracePeriod))
		c.deadlineMu.Unlock()
		go c.finishClose()
	})
	return nil
}

// finishClose reads, discarding messages, until the client's close frame (or
// any error, the deadline included) and then closes the connection. If
// gqlgen's read loop is still running it waits its turn on readMu; that loop
// may see the close frame first, and then this finds the connection done.
func (c *Conn) finishClose() {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for {
		if _, _, err := c.conn.NextReader(); err != nil {
			break
		}
	}
	c.closeNow()
}

// Close closes the connection. After WriteClose it leaves the closing
// handshake to finish in the background; otherwise it closes at once. It is
// idempotent.
func (c *Conn) Close() error {
	if c.closing.Load() {
		return nil
	}
	return c.closeNow()
}

func (c *Conn) closeNow() error {
	var err error
	c.closeNet.Do(func() {
		err = c.conn.Close()
	})
	return err
}

// Subprotocol returns the negotiated subprotocol, empty when none was.
func (c *Conn) Subprotocol() string {
	return c.conn.Subprotocol()
}

// SetReadLimit applies gqlgen's payload limit, unless the limit configured
// on the Implementation is stricter.
func (c *Conn) SetReadLimit(limit int64) {
	if c.readLimit > 0 && (limit <= 0 || limit > c.readLimit) {
		limit = c.readLimit
	}
	c.conn.SetReadLimit(limit)
}

// SetReadDeadline sets the deadline for the next read; the zero time clears
// it. gqlgen uses it to drop clients that stop answering pings. Once the
// server is closing, the closing handshake's deadline stays in force.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.deadlineMu.Lock()
	defer c.deadlineMu.Unlock()
	if c.closing.Load() {
		return nil
	}
	return c.conn.SetReadDeadline(t)
}

// truncateReason shortens a close reason to what fits in a close frame,
// without splitting a UTF-8 sequence.
func truncateReason(reason string) string {
	if len(reason) <= maxCloseReasonBytes {
		return reason
	}
	cut := maxCloseReasonBytes
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}
