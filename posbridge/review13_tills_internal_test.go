package posbridge

// Review 13 hooks: the sizes of the in-memory session and PIN-failure
// records, measured through the real login path.

// SessionsHeld is how many seller sessions the server keeps in memory.
func (s *Server) SessionsHeld() int {
	s.sessions.mu.Lock()
	defer s.sessions.mu.Unlock()
	return len(s.sessions.byToken)
}

// FailureRecords is how many (terminal, seller) PIN-failure records the
// server keeps in memory.
func (s *Server) FailureRecords() int {
	s.sessions.mu.Lock()
	defer s.sessions.mu.Unlock()
	return s.sessions.nfail
}
