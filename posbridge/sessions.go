package posbridge

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/storeline/storeline"
)

// caller is who is asking: always a terminal of this store, and for routes
// that need one, a seller's session opened at that terminal.
type caller struct {
	terminal storeline.Terminal
	session  *session // nil unless the route needs one or one was sent
}

type session struct {
	token    string
	seller   storeline.SellerID
	name     string
	role     storeline.Role
	terminal storeline.TerminalID
	expires  time.Time
}

// sessions holds seller sessions and failed PIN attempts in memory. A node
// restart logs every seller out, which is what a till expects after a
// power cut. mu guards both maps; no other lock is taken under it.
type sessions struct {
	attempts int
	window   time.Duration
	ttl      time.Duration
	max      int

	mu       sync.Mutex
	byToken  map[string]*session
	failures map[string][]time.Time // terminal + "\x00" + seller → failure times, oldest first
}

func newSessions(attempts int, window, ttl time.Duration, max int) *sessions {
	return &sessions{
		attempts: attempts, window: window, ttl: ttl, max: max,
		byToken:  map[string]*session{},
		failures: map[string][]time.Time{},
	}
}

// locked returns how long the seller is locked out at the terminal, or 0.
func (ss *sessions) locked(key string, now time.Time) time.Duration {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	f := ss.recent(key, now)
	if len(f) < ss.attempts {
		return 0
	}
	return f[len(f)-ss.attempts].Add(ss.window).Sub(now)
}

// recent drops failures older than the window and returns the rest.
func (ss *sessions) recent(key string, now time.Time) []time.Time {
	f := ss.failures[key]
	i := 0
	for i < len(f) && !f[i].Add(ss.window).After(now) {
		i++
	}
	f = f[i:]
	if len(f) == 0 {
		delete(ss.failures, key)
	} else {
		ss.failures[key] = f
	}
	return f
}

func (ss *sessions) fail(key string, now time.Time) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.failures) >= ss.max {
		for k := range ss.failures {
			ss.recent(k, now)
		}
	}
	if len(ss.failures) >= ss.max {
		return // bounded: a flood of distinct keys is not remembered
	}
	f := ss.recent(key, now)
	if len(f) >= ss.attempts {
		f = f[1:]
	}
	ss.failures[key] = append(f, now)
}

func (ss *sessions) open(s *session, now time.Time) error {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return storeline.E("posbridge.login", storeline.Internal, err)
	}
	s.token = base64.RawURLEncoding.EncodeToString(b[:])
	s.expires = now.Add(ss.ttl)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.byToken) >= ss.max {
		for k, x := range ss.byToken {
			if !x.expires.After(now) {
				delete(ss.byToken, k)
			}
		}
		if len(ss.byToken) >= ss.max {
			return storeline.Errorf(storeline.Unavailable, "posbridge.login", "too many open sessions (%d)", ss.max)
		}
	}
	ss.byToken[s.token] = s
	return nil
}

func (ss *sessions) get(token string, now time.Time) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.byToken[token]
	if !ok {
		return nil
	}
	if !s.expires.After(now) {
		delete(ss.byToken, token)
		return nil
	}
	return s
}

func (ss *sessions) close(token string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byToken, token)
}

// authenticate checks the terminal token, and the session where a needs it.
func (s *Server) authenticate(r *http.Request, a access) (*caller, error) {
	const op = "posbridge.auth"
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return nil, storeline.Errorf(storeline.Unauthorized, op, "a terminal token is required (Authorization: Bearer)")
	}
	var t storeline.Terminal
	if err := s.led.LookupMaster(storeline.KindTerminal, storeline.TerminalTokenKey(storeline.TokenHash(tok)), &t); err != nil {
		if errors.Is(err, storeline.NotFound) {
			return nil, storeline.Errorf(storeline.Unauthorized, op, "unknown terminal token")
		}
		return nil, err
	}
	if t.Store != s.cfg.Store {
		return nil, storeline.Errorf(storeline.Unauthorized, op, "the terminal does not belong to this store")
	}
	c := &caller{terminal: t}
	st := r.Header.Get("X-Session")
	if st == "" {
		if a >= withSession {
			return nil, storeline.Errorf(storeline.Unauthorized, op, "a seller session is required (X-Session)")
		}
		return c, nil
	}
	c.session = s.sessions.get(st, s.cfg.Now())
	if c.session == nil || c.session.terminal != t.ID {
		return nil, storeline.Errorf(storeline.Unauthorized, op, "unknown or expired session")
	}
	if a == manager && c.session.role != storeline.Manager {
		return nil, storeline.Errorf(storeline.Forbidden, op, "a manager's session is required")
	}
	return c, nil
}

type loginJSON struct {
	Seller storeline.SellerID `json:"seller"`
	PIN    string             `json:"pin"`
}

type sessionJSON struct {
	Token     string             `json:"token"`
	Seller    storeline.SellerID `json:"seller"`
	Name      string             `json:"name"`
	Role      storeline.Role     `json:"role"`
	ExpiresAt time.Time          `json:"expires_at"`
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, c *caller) error {
	const op = "posbridge.login"
	var in loginJSON
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	if err := storeline.CheckID("seller", string(in.Seller)); err != nil {
		return err
	}
	if in.PIN == "" || len(in.PIN) > 64 {
		return storeline.Invalidf("pin", "a PIN is 1-64 characters")
	}
	now := s.cfg.Now()
	key := string(c.terminal.ID) + "\x00" + string(in.Seller)
	if d := s.sessions.locked(key, now); d > 0 {
		return retryAfter{storeline.Errorf(storeline.RateLimited, op, "too many failed attempts; retry in %s", d.Round(time.Second)), d}
	}
	var sel storeline.Seller
	err := s.led.GetMaster(storeline.KindSeller, string(in.Seller), &sel)
	if err != nil && !errors.Is(err, storeline.NotFound) {
		return err
	}
	// An unknown seller, one of another shop and a wrong PIN answer alike,
	// and all count as failures, so a till cannot enumerate the staff.
	if err != nil || !sel.WorksAt(s.cfg.Store) || !storeline.CheckPIN(sel.PINHash, in.PIN) {
		s.sessions.fail(key, now)
		return storeline.Errorf(storeline.Unauthorized, op, "wrong seller or PIN")
	}
	ses := &session{seller: sel.ID, name: sel.Name, role: sel.Role, terminal: c.terminal.ID}
	if err := s.sessions.open(ses, now); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, sessionJSON{Token: ses.token, Seller: ses.seller, Name: ses.name, Role: ses.role, ExpiresAt: ses.expires.UTC()})
	return nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, c *caller) error {
	s.sessions.close(c.session.token)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
