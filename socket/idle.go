package socket

import (
	"bufio"
	"errors"
	"net"
	"net/http"
)

// minReadBufferSize is the smallest read buffer a socket gets: gorilla's
// Upgrader (v1.5.3, server.go) reads through the hijacked buffer only when
// it is larger than 256 bytes, and control frames need 139.
const minReadBufferSize = 257

// hijacker hands gorilla's Upgrader a read buffer of the socket's own, so
// that the socket can tell whether bytes the client sent are waiting in it.
// Before a socket is parked, its reader must have consumed every byte
// already read from the connection: the poller only hears of bytes still
// in the kernel, and a message left in gorilla's private buffer would wait
// for the next one. gorilla reuses the hijacked reader when its own
// ReadBufferSize is zero and the reader is large enough, and then reads
// every frame through it; hijacker's Hijack puts a reader of size bytes
// over the connection in place of net/http's.
type hijacker struct {
	http.ResponseWriter
	size int
	// br is the reader handed to gorilla, nil until Hijack succeeds.
	br *bufio.Reader
}

// Hijack takes the connection over from net/http. When net/http has
// already buffered bytes past the upgrade request, they are left where they
// are: gorilla refuses such a client ("sent data before handshake is
// complete") and would discard them anyway when it resets the reader.
func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil || rw.Reader.Buffered() > 0 {
		return nc, rw, err
	}
	h.br = bufio.NewReaderSize(nc, h.size)
	return nc, bufio.NewReadWriter(h.br, rw.Writer), nil
}

// park hands the socket to the poller when nothing that has arrived is left
// unread, and reports whether it did: the calling reader must then end at
// once without touching the connection, since the poller may already have
// started the next reader. gorilla keeps all of a connection's state, so
// the next reader carries on where this one stopped. A socket that cannot
// be parked (no poller, not a plain TCP connection, the poller stopped)
// keeps reading on its goroutine.
func (c *conn) park() bool {
	if c.fd < 0 || c.br.Buffered() > 0 {
		return false
	}
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if c.netClosed {
		return false
	}
	token, err := c.s.poller.arm(c, c.fd, c.token)
	c.token = token
	if err != nil {
		if !errors.Is(err, errPollerStopped) && c.s.pollWarned.CompareAndSwap(false, true) {
			c.s.cfg.Logger.WarnContext(c.base, "websocket could not be parked; it keeps a reader goroutine", "err", err)
		}
		return false
	}
	c.parked = true
	return true
}

// wake gives a parked socket a reader again; the poller calls it when the
// connection is readable or hung up.
func (c *conn) wake() {
	c.pmu.Lock()
	resume := c.parked
	c.parked = false
	c.pmu.Unlock()
	if resume {
		go c.run()
	}
}

// closeNet closes the connection. Its registration with the poller is
// removed first, while the descriptor's number still names this
// connection: the system hands the number to the next connection it
// accepts. A parked socket gets a reader back, which finds the connection
// closed and tears the socket down.
func (c *conn) closeNet() {
	c.pmu.Lock()
	c.netClosed = true
	if c.token != 0 {
		c.s.poller.remove(c.fd, c.token)
		c.token = 0
	}
	resume := c.parked
	c.parked = false
	c.pmu.Unlock()
	_ = c.ws.Close()
	if resume {
		go c.run()
	}
}
