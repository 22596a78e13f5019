package socket

// registrations counts the sockets registered with s's poller.
func registrations(s *Server) int {
	if s.poller == nil {
		return 0
	}
	s.poller.mu.Lock()
	defer s.poller.mu.Unlock()
	return len(s.poller.conns)
}
