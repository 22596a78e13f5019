//go:build !linux

package socket

import (
	"errors"
	"log/slog"
	"net"

	"github.com/narrate/narrate/recovery"
)

// pollerSupported reports whether idle sockets can be handed to a poller on
// this platform. Elsewhere than on Linux every socket keeps its reader
// goroutine, blocked in a read while the socket is idle.
const pollerSupported = false

var errPollerStopped = errors.New("socket: no poller on this platform")

// poller stands in for the Linux epoll poller; newPoller makes none, so its
// methods are never called.
type poller struct{}

func newPoller(*slog.Logger, *recovery.Metrics) (*poller, error) { return nil, nil }

func (*poller) stop() {}

func (*poller) arm(_ *conn, _ int, token uint64) (uint64, error) { return token, errPollerStopped }

func (*poller) remove(int, uint64) {}

func connFD(net.Conn) int { return -1 }
