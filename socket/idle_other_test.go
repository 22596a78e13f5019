//go:build !linux

package socket

// registrations counts the sockets registered with s's poller: there is
// none on this platform.
func registrations(*Server) int { return 0 }
