//go:build linux

package socket

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"

	"github.com/narrate/narrate/recovery"
)

// pollerSupported reports whether idle sockets can be handed to a poller on
// this platform.
const pollerSupported = true

// wakeToken marks the poller's own wake-up pipe among its events; sockets'
// tokens start at 1.
const wakeToken = 0

// errPollerStopped refuses a registration once the poller has stopped or
// failed: the socket then keeps reading on a goroutine of its own.
var errPollerStopped = errors.New("socket: poller stopped")

// poller watches idle sockets with epoll, so that a socket with nothing to
// read holds no goroutine: its reader registers the descriptor for one
// readiness event (EPOLLONESHOT) and ends, and when the client sends
// something, or hangs up, the poller gives the socket a reader again. One
// goroutine, blocked in epoll_wait, serves every idle socket of a Server.
//
// A registration is known by a token of its own rather than by its
// descriptor's number, which the system reuses as soon as a connection is
// closed: an event read just before a socket's registration was removed
// finds no socket and is dropped, instead of waking whichever connection
// got the number next.
type poller struct {
	epfd     int
	wake     [2]int // a pipe; a byte written to wake[1] stops the poller
	logger   *slog.Logger
	panics   *recovery.Metrics
	done     chan struct{}
	stopOnce sync.Once

	mu      sync.Mutex
	conns   map[uint64]*conn
	next    uint64
	stopped bool
}

// newPoller creates the epoll instance and starts the poller's goroutine;
// stop ends it.
func newPoller(logger *slog.Logger, panics *recovery.Metrics) (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	p := &poller{epfd: epfd, logger: logger, panics: panics, done: make(chan struct{}), conns: map[uint64]*conn{}, next: wakeToken + 1}
	if err := syscall.Pipe2(p.wake[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		_ = syscall.Close(epfd)
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	setToken(&ev, wakeToken)
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.wake[0], &ev); err != nil {
		p.closeFDs()
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	go p.run()
	return p, nil
}

// setToken and tokenOf put a registration's token in, and take it out of,
// the event's 64 bits of user data, which syscall.EpollEvent spells as its
// Fd and Pad fields on every Linux architecture.
func setToken(ev *syscall.EpollEvent, token uint64) {
	ev.Fd = int32(uint32(token))
	ev.Pad = int32(uint32(token >> 32))
}

func tokenOf(ev *syscall.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// run waits for readiness and resumes the sockets it concerns, until the
// wake-up pipe says stop. Should it panic, the sockets it holds are resumed
// rather than left parked for good, and the process goes on.
func (p *poller) run() {
	defer close(p.done)
	defer func() {
		if v := recover(); v != nil {
			p.panics.Recovered(context.Background(), p.logger.With("then", "idle sockets keep a goroutine each from now on"), panicWhere, v)
			p.halt()
		}
	}()
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			// Nothing would ever wake the parked sockets: resume them all,
			// and let every socket read on a goroutine of its own from now
			// on.
			p.logger.Error("websocket poller failed; idle sockets keep a goroutine each from now on", "err", err)
			p.halt()
			return
		}
		for i := range events[:n] {
			token := tokenOf(&events[i])
			if token == wakeToken {
				p.halt()
				return
			}
			p.mu.Lock()
			c := p.conns[token]
			p.mu.Unlock()
			if c != nil {
				c.wake()
			}
		}
	}
}

// halt refuses further registrations and resumes every socket still
// registered. After a Server's Wait there are none: every socket removed its
// registration as it closed.
func (p *poller) halt() {
	p.mu.Lock()
	p.stopped = true
	conns := make([]*conn, 0, len(p.conns))
	for _, c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.wake()
	}
}

// stop ends the poller's goroutine and closes its descriptors, once: a
// second write to a closed descriptor's number could reach another file.
func (p *poller) stop() {
	p.stopOnce.Do(func() {
		_, _ = syscall.Write(p.wake[1], []byte{0})
		<-p.done
		p.closeFDs()
	})
}

func (p *poller) closeFDs() {
	_ = syscall.Close(p.wake[0])
	_ = syscall.Close(p.wake[1])
	_ = syscall.Close(p.epfd)
}

// arm registers c's descriptor for one readiness event: EPOLLIN for data,
// EPOLLRDHUP for the peer's hang-up (errors and full hang-ups are always
// reported). The first arming adds the descriptor; a one-shot registration
// that has fired stays in the interest list, disabled, and later armings
// modify it. Level-triggered, so bytes that arrived before the arming fire
// at once. token is c's registration, 0 before the first.
func (p *poller) arm(c *conn, fd int, token uint64) (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return token, errPollerStopped
	}
	op := syscall.EPOLL_CTL_MOD
	if token == 0 {
		op = syscall.EPOLL_CTL_ADD
		token = p.next
		p.next++
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT}
	setToken(&ev, token)
	if err := syscall.EpollCtl(p.epfd, op, fd, &ev); err != nil {
		if op == syscall.EPOLL_CTL_ADD {
			return 0, fmt.Errorf("epoll_ctl add: %w", err)
		}
		return token, fmt.Errorf("epoll_ctl mod: %w", err)
	}
	p.conns[token] = c
	return token, nil
}

// remove deletes a registration. It must happen before the descriptor is
// closed, while its number still names this connection.
func (p *poller) remove(fd int, token uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, token)
	_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
}

// connFD is the descriptor of a plain TCP or Unix connection, -1 for any
// other: a TLS connection, or any wrapper, may hold bytes of its own that
// readiness of the descriptor would not announce.
func connFD(nc net.Conn) int {
	var raw syscall.RawConn
	var err error
	switch nc := nc.(type) {
	case *net.TCPConn:
		raw, err = nc.SyscallConn()
	case *net.UnixConn:
		raw, err = nc.SyscallConn()
	default:
		return -1
	}
	if err != nil {
		return -1
	}
	fd := -1
	if err := raw.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return -1
	}
	return fd
}
