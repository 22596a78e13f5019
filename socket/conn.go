package socket

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/gorilla/websocket"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// conn is one socket. Its reader (run) handles every client message and,
// when the connection ends, tears the socket down; while nothing is left to
// read, the socket is parked with the poller and has no reader goroutine
// (see park). Messages to the client go through queue, which a goroutine
// started on demand (write) empties, so an idle socket has no writer
// either.
type conn struct {
	s  *Server
	ws *websocket.Conn
	// br is the buffer gorilla reads the connection through (see
	// hijacker); fd is the connection's descriptor, -1 when the socket
	// cannot be parked.
	br     *bufio.Reader
	fd     int
	exec   graphql.GraphExecutor
	legacy bool
	addr   string
	opened time.Time
	// base carries the upgrade request's values (its request id) but not
	// its cancellation.
	base context.Context
	// ctx is the socket's context, with the caller's identity once
	// connection_init was accepted; cancel ends it and every operation.
	// Both are only touched by the reader (one goroutine at a time, each
	// handing over to the next through the poller under pmu).
	ctx    context.Context
	cancel context.CancelFunc
	// user is the key counted against the per-user cap; reader only.
	user string

	// pmu guards the hand-offs between the socket's readers, the poller
	// and closing the connection.
	pmu sync.Mutex
	// token is the socket's registration with the poller, 0 for none.
	token uint64
	// parked: registered for readiness, and no goroutine reads.
	parked bool
	// netClosed: the connection is closed or closing, and must not be
	// registered again.
	netClosed bool

	// lastRead is when a message last arrived, in Unix nanoseconds, and
	// handling whether one is being handled (the reader is not reading).
	lastRead atomic.Int64
	handling atomic.Bool

	mu          sync.Mutex
	initStarted bool
	initDone    bool
	until       time.Time
	nextPing    time.Time
	ops         map[string]*operation
	queue       []item
	writing     bool
	pingQueued  bool
	closing     bool
	closingAt   time.Time
	closeCode   int
	dead        bool
}

// operation is one running operation of a socket.
type operation struct {
	id     string
	cancel context.CancelFunc
	// ctx and next are the executor's: next(ctx) yields the operation's
	// next response, nil at its end.
	ctx  context.Context
	next graphql.ResponseHandler
	// resume is the Driver's: called after each response is written.
	resume func()
}

// item is one entry of a socket's write queue.
type item struct {
	op    *operation // take the operation's next response and write it
	data  []byte     // a message
	ping  bool       // a keepalive
	close *CloseError
}

// Message types.
const (
	msgConnectionInit      = "connection_init"
	msgConnectionAck       = "connection_ack"
	msgConnectionError     = "connection_error" // legacy
	msgConnectionTerminate = "connection_terminate"
	msgPing                = "ping"
	msgPong                = "pong"
	msgKeepAlive           = "ka" // legacy
	msgSubscribe           = "subscribe"
	msgStart               = "start" // legacy
	msgNext                = "next"
	msgData                = "data" // legacy
	msgError               = "error"
	msgComplete            = "complete"
	msgStop                = "stop" // legacy
)

func newConn(s *Server, ws *websocket.Conn, br *bufio.Reader, exec graphql.GraphExecutor, base context.Context, addr string) *conn {
	now := time.Now()
	fd := -1
	if s.poller != nil && br != nil {
		fd = connFD(ws.NetConn())
	}
	c := &conn{
		s:      s,
		ws:     ws,
		br:     br,
		fd:     fd,
		exec:   exec,
		legacy: ws.Subprotocol() != ProtocolTransportWS,
		addr:   addr,
		opened: now,
		base:   base,
		ops:    map[string]*operation{},
	}
	c.ctx, c.cancel = context.WithCancel(base)
	c.lastRead.Store(now.UnixNano())
	return c
}

// run reads and handles the client's messages until nothing is left to
// read, when it parks the socket and ends, or until the connection ends,
// when it tears the socket down: every exit path goes through here.
func (c *conn) run() {
	handedOff := false
	defer func() {
		if !handedOff {
			c.teardown()
		}
	}()
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		c.lastRead.Store(time.Now().UnixNano())
		c.mu.Lock()
		closing := c.closing
		c.mu.Unlock()
		// Once closing, the reader only waits for the client's close
		// frame: the rest is moot.
		if !closing {
			c.handling.Store(true)
			c.handleMessage(data)
			c.handling.Store(false)
			// Time spent on the message (a snapshot read waiting for the
			// database, say) is not the client's silence.
			c.lastRead.Store(time.Now().UnixNano())
		}
		if c.park() {
			// The poller may already have started the next reader.
			handedOff = true
			return
		}
	}
}

// handleMessage handles one message, in order with the others. A socket
// that parks handles it on its reader, which ends once the socket is idle.
// A socket that cannot park handles it on a goroutine of its own while the
// reader waits, so that the reader's stack stays as small as reading needs:
// parsing, validation and a resolver's snapshot read grow a stack to tens
// of kilobytes, which a goroutine that then sits idle for hours would keep
// until garbage collections shrink it, a half at a time.
func (c *conn) handleMessage(data []byte) {
	if c.fd >= 0 {
		c.handleSafely(data)
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.handleSafely(data)
	}()
	<-done
}

// handleSafely handles a message and contains a panic in its handling:
// with no operation to pin it on, the socket closes with 4500.
func (c *conn) handleSafely(data []byte) {
	defer func() {
		if v := recover(); v != nil {
			c.s.cfg.Panics.Recovered(c.base, c.s.cfg.Logger, panicWhere, v)
			c.close(CloseInternalError, "internal error")
		}
	}()
	c.handle(data)
}

// inMessage is a client message of either protocol.
type inMessage struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

func (c *conn) handle(data []byte) {
	var m inMessage
	if err := json.Unmarshal(data, &m); err != nil {
		c.close(CloseBadRequest, "Invalid message received")
		return
	}
	c.mu.Lock()
	initDone := c.initDone
	c.mu.Unlock()
	switch {
	case m.Type == msgConnectionInit:
		c.init(m.Payload)
	case m.Type == msgPing && !c.legacy:
		c.enqueue(encode(msgPong, "", nil))
	case m.Type == msgPong && !c.legacy:
	case m.Type == msgConnectionTerminate && c.legacy:
		c.close(CloseNormal, "terminated")
	case m.Type == msgSubscribe && !c.legacy, m.Type == msgStart && c.legacy:
		if !initDone {
			c.close(CloseUnauthorized, "Unauthorized")
			return
		}
		if m.ID == "" {
			c.close(CloseBadRequest, "Invalid message received: operation id missing")
			return
		}
		c.start(m.ID, m.Payload)
	case m.Type == msgComplete && !c.legacy, m.Type == msgStop && c.legacy:
		if !initDone {
			c.close(CloseUnauthorized, "Unauthorized")
			return
		}
		c.stop(m.ID)
	default:
		c.close(CloseBadRequest, "Invalid message received")
	}
}

// init judges connection_init before anything else can happen on the
// socket: connection_ack is sent only once the token was accepted.
func (c *conn) init(payload json.RawMessage) {
	c.mu.Lock()
	again := c.initStarted
	c.initStarted = true
	c.mu.Unlock()
	if again {
		c.close(CloseTooManyInits, "Too many initialisation requests")
		return
	}
	var fields map[string]any
	if p := bytes.TrimSpace(payload); len(p) > 0 && !bytes.Equal(p, []byte("null")) {
		if p[0] != '{' || json.Unmarshal(p, &fields) != nil {
			c.close(CloseBadRequest, "connection_init payload must be an object")
			return
		}
	}
	sess, err := c.s.cfg.Authenticate(c.ctx, fields)
	if err != nil {
		var ce *CloseError
		if !errors.As(err, &ce) {
			c.s.cfg.Logger.ErrorContext(c.base, "websocket authentication", "err", err)
			ce = &CloseError{Code: CloseInternalError, Reason: "internal error"}
		}
		c.close(ce.Code, ce.Reason)
		return
	}
	if !c.s.admitUser(sess.User) {
		c.close(ClosePolicyViolation, "too many sockets for this user")
		return
	}
	c.user = sess.User
	if sess.Context != nil {
		c.ctx = sess.Context
	}
	c.mu.Lock()
	c.initDone = true
	c.until = sess.Until
	c.nextPing = time.Now().Add(c.s.cfg.KeepAlive)
	c.mu.Unlock()
	c.enqueue(encode(msgConnectionAck, "", nil))
	if c.legacy {
		// subscriptions-transport-ws servers send the first keepalive
		// right after the ack; its clients start their timeout then.
		c.enqueue(encode(msgKeepAlive, "", nil))
	}
}

// start begins operation id. Parsing and validation run here, on the
// reader, and so does a subscription's resolver (its snapshot read): a
// client sending many operations waits for its own.
func (c *conn) start(id string, payload json.RawMessage) {
	c.mu.Lock()
	if _, dup := c.ops[id]; dup {
		c.mu.Unlock()
		c.close(CloseSubscriberExists, truncate("Subscriber for "+id+" already exists"))
		return
	}
	if limit := c.s.cfg.Limits.SubscriptionsPerSocket; limit > 0 && len(c.ops) >= limit {
		c.mu.Unlock()
		err := gqlerror.Errorf("too many operations on this socket (at most %d)", limit)
		err.Extensions = map[string]any{"code": "RATE_LIMITED"}
		c.enqueue(c.errorMessage(id, gqlerror.List{err}))
		return
	}
	op := &operation{id: id}
	var opCtx context.Context
	opCtx, op.cancel = context.WithCancel(c.ctx)
	c.ops[id] = op
	c.mu.Unlock()

	start := graphql.Now()
	params := &graphql.RawParams{}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(params); err != nil {
		c.fail(op, gqlerror.List{{Message: "invalid json"}})
		return
	}
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}

	ctx := graphql.StartOperationTrace(opCtx)
	rc, errs := c.exec.CreateOperationContext(ctx, params)
	if errs != nil {
		resp := c.exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs)
		if errcode.GetErrorKind(errs) == errcode.KindProtocol {
			c.fail(op, resp.Errors)
			return
		}
		c.enqueueResponse(op.id, &graphql.Response{Errors: errs})
		c.end(op, true)
		return
	}
	ctx = graphql.WithOperationContext(ctx, rc)
	if rc.Operation.Operation != ast.Subscription {
		// A query or mutation over the socket: a goroutine for as long
		// as it runs.
		go c.drain(op, rc, ctx)
		return
	}
	d := &Driver{}
	ctx = withDriver(ctx, d)
	var ok bool
	func() {
		defer func() {
			if v := recover(); v != nil {
				c.panicked(ctx, op, v)
			}
		}()
		op.next, op.ctx = c.exec.DispatchOperation(ctx, rc)
		ok = true
	}()
	if !ok {
		return
	}
	if op.resume = d.claimed(); op.resume != nil {
		d.attach(func() { c.ready(op) })
		return
	}
	// The resolver does not take a Driver (or failed before it could):
	// read its results the usual way.
	go c.drain(op, rc, op.ctx)
}

// drain runs an operation whose results must be waited for: queries and
// mutations, and subscriptions whose resolver took no Driver.
func (c *conn) drain(op *operation, rc *graphql.OperationContext, ctx context.Context) {
	defer func() {
		if v := recover(); v != nil {
			c.panicked(ctx, op, v)
		}
	}()
	next := op.next
	if next == nil {
		next, ctx = c.exec.DispatchOperation(ctx, rc)
	}
	for {
		resp := next(ctx)
		if resp == nil {
			break
		}
		c.enqueueResponse(op.id, resp)
	}
	c.end(op, ctx.Err() == nil)
}

// panicWhere labels the panics a socket recovers in narrate_panics_total.
const panicWhere = "websocket"

// panicked ends operation op after a panic in its code (v, as recover
// returned it, still on the goroutine that panicked, whose stack is
// logged): the panic is logged and counted (Config.Panics), and the
// operation ends as an execution error ends it, with a last result
// carrying the error the executor presents for it (an internal error,
// with this server's presenter) and then complete. The socket and its
// other operations live on.
func (c *conn) panicked(ctx context.Context, op *operation, v any) {
	err := c.s.cfg.Panics.Recovered(ctx, c.s.cfg.Logger, panicWhere, v)
	c.enqueueResponse(op.id, c.exec.DispatchError(ctx, gqlerror.List{gqlerror.WrapPath(graphql.GetPath(ctx), err)}))
	c.end(op, true)
}

// stop ends operation id at the client's request.
func (c *conn) stop(id string) {
	c.mu.Lock()
	op := c.ops[id]
	delete(c.ops, id)
	c.mu.Unlock()
	if op != nil {
		op.cancel()
	}
}

// end removes a finished operation and, unless the client ended it,
// tells the client with complete.
func (c *conn) end(op *operation, complete bool) {
	c.mu.Lock()
	mine := c.ops[op.id] == op
	if mine {
		delete(c.ops, op.id)
	}
	c.mu.Unlock()
	op.cancel()
	if mine && complete {
		c.enqueue(encode(msgComplete, op.id, nil))
	}
}

// fail ends an operation with an error message, which ends it for the
// client too.
func (c *conn) fail(op *operation, errs gqlerror.List) {
	c.enqueue(c.errorMessage(op.id, errs))
	c.end(op, c.legacy)
}

func (c *conn) errorMessage(id string, errs gqlerror.List) []byte {
	b, err := json.Marshal(errs)
	if err != nil {
		b = []byte(`[{"message":"internal system error"}]`)
	}
	return encode(msgError, id, b)
}

func (c *conn) enqueueResponse(id string, resp *graphql.Response) {
	if b, ok := c.responseMessage(id, resp); ok {
		c.enqueue(b)
	}
}

func (c *conn) responseMessage(id string, resp *graphql.Response) ([]byte, bool) {
	b, err := json.Marshal(resp)
	if err != nil {
		c.s.cfg.Logger.ErrorContext(c.base, "marshal websocket response", "err", err)
		return nil, false
	}
	typ := msgNext
	if c.legacy {
		typ = msgData
	}
	return encode(typ, id, b), true
}

// ready queues a driven operation whose next response is waiting.
func (c *conn) ready(op *operation) {
	c.push(item{op: op})
}

func (c *conn) enqueue(msg []byte) {
	c.push(item{data: msg})
}

func (c *conn) push(it item) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.dead {
		return
	}
	c.queue = append(c.queue, it)
	c.startWriterLocked()
}

func (c *conn) startWriterLocked() {
	if !c.writing {
		c.writing = true
		go c.write()
	}
}

// write empties the queue and ends: a socket has a writer goroutine only
// while it has something to send. A write that fails (its deadline
// included) drops the client.
func (c *conn) write() {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 || c.dead {
			c.writing = false
			c.queue = nil
			c.mu.Unlock()
			return
		}
		it := c.queue[0]
		c.queue[0] = item{}
		c.queue = c.queue[1:]
		if it.ping {
			c.pingQueued = false
		}
		c.mu.Unlock()
		if err := c.writeItem(it); err != nil {
			c.drop()
		}
	}
}

func (c *conn) writeItem(it item) error {
	switch {
	case it.op != nil:
		return c.writeNext(it.op)
	case it.close != nil:
		msg := websocket.FormatCloseMessage(it.close.Code, it.close.Reason)
		err := c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.s.cfg.WriteTimeout))
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
			return err
		}
		return nil
	case it.ping:
		typ := msgPing
		if c.legacy {
			typ = msgKeepAlive
		}
		return c.writeMessage(encode(typ, "", nil))
	default:
		return c.writeMessage(it.data)
	}
}

// writeNext takes a driven operation's waiting response and writes it,
// then lets its resolver produce the next one.
func (c *conn) writeNext(op *operation) (err error) {
	if op.ctx.Err() != nil {
		return nil
	}
	var resp *graphql.Response
	func() {
		defer func() {
			if v := recover(); v != nil {
				c.panicked(op.ctx, op, v)
				resp = nil
			}
		}()
		resp = op.next(op.ctx)
	}()
	if resp == nil {
		c.end(op, op.ctx.Err() == nil)
		return nil
	}
	defer op.resume()
	msg, ok := c.responseMessage(op.id, resp)
	if !ok {
		return nil
	}
	return c.writeMessage(msg)
}

func (c *conn) writeMessage(msg []byte) error {
	if err := c.ws.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout)); err != nil {
		return err
	}
	return c.ws.WriteMessage(websocket.TextMessage, msg)
}

// close starts the closing handshake with code: what is already queued is
// still sent (a connection_ack the client must see before the close, say),
// nothing more is queued, the close frame follows, and the reader waits for
// the client's answer (the ticker drops the connection after the grace
// period). The legacy protocol's clients learn why from connection_error
// first.
func (c *conn) close(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.dead {
		return
	}
	c.closing = true
	c.closingAt = time.Now()
	c.closeCode = code
	if c.legacy && code >= 4000 && !c.initDone {
		payload, _ := json.Marshal(map[string]string{"message": reason})
		c.queue = append(c.queue, item{data: encode(msgConnectionError, "", payload)})
	}
	c.queue = append(c.queue, item{close: &CloseError{Code: code, Reason: reason}})
	c.startWriterLocked()
}

// drop closes the connection at once; the reader then tears down.
func (c *conn) drop() {
	c.closeNet()
}

// teardown releases everything the socket holds; the reader runs it once,
// as it ends.
func (c *conn) teardown() {
	c.mu.Lock()
	c.dead = true
	c.ops = nil
	c.queue = nil
	code := c.closeCode
	c.mu.Unlock()
	c.cancel()
	c.closeNet()
	c.s.unregister(c)
	c.s.cfg.Logger.InfoContext(c.base, "websocket closed", "duration", time.Since(c.opened), "close_code", code)
}

// tick runs the socket's timers (see Server.tick).
func (c *conn) tick(now time.Time) {
	cfg := &c.s.cfg
	c.mu.Lock()
	switch {
	case c.dead:
	case c.closing:
		if now.Sub(c.closingAt) > cfg.CloseGrace {
			c.mu.Unlock()
			c.drop()
			return
		}
	case !c.initDone:
		if now.Sub(c.opened) > cfg.InitTimeout {
			c.mu.Unlock()
			c.close(CloseInitTimeout, "Connection initialisation timeout")
			return
		}
	case !c.until.IsZero() && !now.Before(c.until):
		c.mu.Unlock()
		c.close(CloseForbidden, "token expired")
		return
	case !c.legacy && !c.handling.Load() && now.Sub(time.Unix(0, c.lastRead.Load())) > 2*cfg.KeepAlive+cfg.Tick:
		// Not even a pong to the last two pings: the peer is gone.
		c.mu.Unlock()
		c.drop()
		return
	case !now.Before(c.nextPing):
		c.nextPing = now.Add(cfg.KeepAlive)
		if !c.pingQueued {
			c.pingQueued = true
			c.queue = append(c.queue, item{ping: true})
			c.startWriterLocked()
		}
	}
	c.mu.Unlock()
}

// encode builds a protocol message; payload is JSON or nil.
func encode(typ, id string, payload []byte) []byte {
	b := make([]byte, 0, 32+len(id)+len(payload))
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, '"')
	if id != "" {
		quoted, _ := json.Marshal(id)
		b = append(b, `,"id":`...)
		b = append(b, quoted...)
	}
	if payload != nil {
		b = append(b, `,"payload":`...)
		b = append(b, payload...)
	}
	return append(b, '}')
}

// truncate shortens a close reason to what a close frame carries.
func truncate(reason string) string {
	const maxReason = 123
	if len(reason) <= maxReason {
		return reason
	}
	cut := maxReason
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}
