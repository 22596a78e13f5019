package socket

import (
	"context"
	"sync"
)

// Driver lets a subscription resolver run without a goroutine of its own.
//
// gqlgen reads a subscription's results from the channel its resolver
// returns, which a transport would do from a goroutine per subscription,
// blocked on the channel while nothing happens. A resolver that finds a
// Driver in its context may instead promise never to block: it calls
// Ready once for each value it puts in the channel (which must have room
// for it) and once when it closes the channel, and the transport then
// takes exactly that value, on a goroutine that exists only while the
// socket has something to send. After writing it the transport calls the
// resolver's resume function, and only then may the resolver put the next
// value in.
type Driver struct {
	mu      sync.Mutex
	resume  func()
	ready   func()
	pending int
}

type driverKey struct{}

func withDriver(ctx context.Context, d *Driver) context.Context {
	return context.WithValue(ctx, driverKey{}, d)
}

// DriverFrom returns the Driver of a subscription served by this package,
// or nil: the resolver then serves its channel as usual.
func DriverFrom(ctx context.Context) *Driver {
	d, _ := ctx.Value(driverKey{}).(*Driver)
	return d
}

// Drive claims the subscription for the resolver, with the function the
// transport calls after taking each value. It must be called before the
// resolver returns.
func (d *Driver) Drive(resume func()) {
	d.mu.Lock()
	d.resume = resume
	d.mu.Unlock()
}

// Ready tells the transport that the channel holds a value or was closed.
// It does not block.
func (d *Driver) Ready() {
	d.mu.Lock()
	ready := d.ready
	if ready == nil {
		// The resolver sent its first value (a snapshot) before the
		// transport got its response handler: replayed by attach.
		d.pending++
	}
	d.mu.Unlock()
	if ready != nil {
		ready()
	}
}

// claimed returns the resolver's resume function, nil when the resolver
// did not claim the Driver.
func (d *Driver) claimed() func() {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.resume
}

// attach connects a claimed Driver to the transport and replays the Ready
// calls made before.
func (d *Driver) attach(ready func()) {
	d.mu.Lock()
	d.ready = ready
	n := d.pending
	d.pending = 0
	d.mu.Unlock()
	for range n {
		ready()
	}
}
