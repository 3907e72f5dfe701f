package posbridge

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/storeline/storeline"
)

// caller is who is asking: always a terminal of this store, and for routes
// that need one, a seller's session opened at that terminal.
type caller struct {
	terminal storeline.Terminal
	session  *session // nil unless the route needs one or a live one was sent
	// denied is, on a route that posts a fact, why a new fact is refused
	// (the session has ended, or lacks manager rights the route needs);
	// a retry is answered regardless (authenticate).
	denied error
}

// session is a seller's login at a terminal. It keeps no role: manager
// rights are read from the seller's record when they are used (manages).
// It keeps the PIN hash it was opened with: a PIN reset ends it (sellerOf).
type session struct {
	token    string
	seller   storeline.SellerID
	name     string
	terminal storeline.TerminalID
	pinHash  string
	expires  time.Time
}

// seat is a seller at a terminal: it holds at most one session, so the
// sessions held are bounded by terminals × sellers however often a till
// logs its seller in again without logging out.
type seat struct {
	terminal storeline.TerminalID
	seller   storeline.SellerID
}

// maxFailingSellers bounds the sellers with failed PINs one terminal is
// recorded for (within MaxSessions): a till sending logins of made-up
// sellers fills its own share, and locks out new sellers at that till
// only, not at every till of the shop.
const maxFailingSellers = 64

// sessions holds seller sessions and PIN attempts in memory. A node
// restart logs every seller out, which is what a till expects after a
// power cut. mu guards the maps; no other lock is taken under it.
type sessions struct {
	attempts int
	window   time.Duration
	ttl      time.Duration
	max      int

	mu      sync.Mutex
	byToken map[string]*session
	bySeat  map[seat]string // the token of each seat's session
	// failures are the attempt times, oldest first, of each seller at
	// each terminal; nfail counts the (terminal, seller) records.
	failures map[storeline.TerminalID]map[storeline.SellerID][]time.Time
	nfail    int
}

func newSessions(attempts int, window, ttl time.Duration, max int) *sessions {
	return &sessions{
		attempts: attempts, window: window, ttl: ttl, max: max,
		byToken:  map[string]*session{},
		bySeat:   map[seat]string{},
		failures: map[storeline.TerminalID]map[storeline.SellerID][]time.Time{},
	}
}

// reserve takes one of the seller's PIN attempts at the terminal before
// the PIN is checked, in the same critical section as the lock-out check,
// so concurrent tries check at most the allowed number of PINs. A wrong
// PIN keeps the attempt as a failure; release gives it back after a right
// one. A nil release means locked out for wait.
//
// The records are bounded by max, and a terminal's by maxFailingSellers.
// When they are full of live attempts a seller with none is refused until
// the oldest leave the window rather than not counted: otherwise made-up
// sellers, cheap to send, would fill the records and switch the lock-out
// off for the real ones. A terminal's own share full refuses new sellers
// at that terminal only.
func (ss *sessions) reserve(term storeline.TerminalID, seller storeline.SellerID, now time.Time) (release func(), wait time.Duration) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	f := ss.recent(term, seller, now)
	if len(f) >= ss.attempts {
		return nil, f[len(f)-ss.attempts].Add(ss.window).Sub(now)
	}
	if len(f) == 0 {
		if share := min(maxFailingSellers, ss.max); len(ss.failures[term]) >= share {
			if oldest := ss.oldest(term, now); len(ss.failures[term]) >= share {
				return nil, oldest.Add(ss.window).Sub(now)
			}
		}
		if ss.nfail >= ss.max {
			var oldest time.Time
			for t := range ss.failures {
				if o := ss.oldest(t, now); !o.IsZero() && (oldest.IsZero() || o.Before(oldest)) {
					oldest = o
				}
			}
			if ss.nfail >= ss.max {
				return nil, oldest.Add(ss.window).Sub(now)
			}
		}
	}
	// Kept in time order (a request that read the clock earlier may get
	// here later), so recent can drop from the front.
	i := len(f)
	for i > 0 && f[i-1].After(now) {
		i--
	}
	ss.set(term, seller, slices.Insert(f, i, now))
	return func() { ss.release(term, seller, now) }, 0
}

// oldest drops the terminal's records that have left the window and
// returns the oldest attempt left (zero: none).
func (ss *sessions) oldest(term storeline.TerminalID, now time.Time) time.Time {
	var o time.Time
	for seller := range ss.failures[term] {
		if g := ss.recent(term, seller, now); len(g) > 0 && (o.IsZero() || g[0].Before(o)) {
			o = g[0]
		}
	}
	return o
}

// set stores the seller's attempts at the terminal; none deletes the
// record.
func (ss *sessions) set(term storeline.TerminalID, seller storeline.SellerID, f []time.Time) {
	m := ss.failures[term]
	_, had := m[seller]
	switch {
	case len(f) == 0 && had:
		delete(m, seller)
		ss.nfail--
		if len(m) == 0 {
			delete(ss.failures, term)
		}
	case len(f) > 0:
		if m == nil {
			m = map[storeline.SellerID][]time.Time{}
			ss.failures[term] = m
		}
		if !had {
			ss.nfail++
		}
		m[seller] = f
	}
}

// release gives back an attempt reserved at t.
func (ss *sessions) release(term storeline.TerminalID, seller storeline.SellerID, t time.Time) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	f := ss.failures[term][seller]
	i := slices.IndexFunc(f, t.Equal)
	if i < 0 {
		return // it has left the window already
	}
	ss.set(term, seller, slices.Delete(f, i, i+1))
}

// recent drops attempts older than the window and returns the rest.
func (ss *sessions) recent(term storeline.TerminalID, seller storeline.SellerID, now time.Time) []time.Time {
	f := ss.failures[term][seller]
	i := 0
	for i < len(f) && !f[i].Add(ss.window).After(now) {
		i++
	}
	f = f[i:]
	ss.set(term, seller, f)
	return f
}

// open stores a new session, ending the seller's earlier one at the same
// terminal (a till logging in again holds one session, not one per login).
func (ss *sessions) open(s *session, now time.Time) error {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return storeline.E("posbridge.login", storeline.Internal, err)
	}
	s.token = base64.RawURLEncoding.EncodeToString(b[:])
	s.expires = now.Add(ss.ttl)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	at := seat{s.terminal, s.seller}
	if old, ok := ss.bySeat[at]; ok {
		ss.drop(old)
	}
	if len(ss.byToken) >= ss.max {
		for k, x := range ss.byToken {
			if !x.expires.After(now) {
				ss.drop(k)
			}
		}
		if len(ss.byToken) >= ss.max {
			return storeline.Errorf(storeline.Unavailable, "posbridge.login", "too many open sessions (%d)", ss.max)
		}
	}
	ss.byToken[s.token] = s
	ss.bySeat[at] = s.token
	return nil
}

// drop forgets the session of token; ss.mu is held.
func (ss *sessions) drop(token string) {
	s, ok := ss.byToken[token]
	if !ok {
		return
	}
	delete(ss.byToken, token)
	if at := (seat{s.terminal, s.seller}); ss.bySeat[at] == token {
		delete(ss.bySeat, at)
	}
}

func (ss *sessions) get(token string, now time.Time) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.byToken[token]
	if !ok {
		return nil
	}
	if !s.expires.After(now) {
		ss.drop(token)
		return nil
	}
	return s
}

func (ss *sessions) close(token string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.drop(token)
}

// authenticate checks the terminal token, and the session where a needs it.
//
// A route that posts a fact (fact) needs a's session for a new fact only:
// a retry is answered from the stored fact whatever has happened to the
// session since the first try (ended, its seller demoted), or the till
// could never learn that its fact was stored. Its caller carries the
// refusal a new fact gets instead (caller.denied), with the session when
// it is live; the header is still required, as for a new fact.
func (s *Server) authenticate(r *http.Request, a access, fact bool) (*caller, error) {
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
	// deny answers a session that does not give the route's rights: a
	// route that needs none (a receipt) ignores it, a fact's route keeps
	// the refusal for a new fact, any other refuses.
	deny := func(err error) (*caller, error) {
		switch {
		case a < withSession:
			c.session = nil
			return c, nil
		case fact:
			c.denied = err
			return c, nil
		}
		return nil, err
	}
	c.session = s.sessions.get(st, s.cfg.Now())
	if c.session == nil || c.session.terminal != t.ID {
		// A route that needs no session (a receipt) works without one: its
		// retry must land after the seller's session has expired (doc.go).
		c.session = nil
		return deny(storeline.Errorf(storeline.Unauthorized, op, "unknown or expired session"))
	}
	// The session lasts only as long as its seller works here with the
	// PIN it was opened with: a seller deleted, moved to another store, or
	// whose PIN was reset since the login is logged out, as that login
	// would be refused now. A route that needs no session ignores an
	// ended one as it does an expired one.
	sel, err := s.sellerOf(c.session)
	if err != nil {
		return nil, err
	}
	if sel == nil || !sel.WorksAt(s.cfg.Store) {
		s.sessions.close(st)
		c.session = nil
		return deny(storeline.Errorf(storeline.Unauthorized, op, "the session's seller no longer works at this store, or their PIN was reset"))
	}
	if a == manager && sel.Role != storeline.Manager {
		return deny(storeline.Errorf(storeline.Forbidden, op, "a manager's session is required"))
	}
	return c, nil
}

// mayPost checks, for a new fact naming seller (the fact is not stored:
// a retry is answered from the stored one without this), that the
// caller's session gives the route's rights (authenticate) and that the
// fact's seller is the session's, or the session a manager's.
func (s *Server) mayPost(c *caller, seller storeline.SellerID) error {
	if c.denied != nil {
		return c.denied
	}
	return s.sessionSeller(c, seller)
}

// sellerOf returns the session's seller as recorded now, or nil if the
// seller was deleted or their PIN changed since the session was opened.
func (s *Server) sellerOf(ses *session) (*storeline.Seller, error) {
	var sel storeline.Seller
	if err := s.led.GetMaster(storeline.KindSeller, string(ses.seller), &sel); err != nil {
		if errors.Is(err, storeline.NotFound) {
			return nil, nil
		}
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(sel.PINHash), []byte(ses.pinHash)) != 1 {
		return nil, nil
	}
	return &sel, nil
}

// manages reports whether the session's seller is a manager of this store
// now. The seller's record is read again rather than trusting the role at
// login, so a demotion (or a seller removed or moved to another store)
// takes manager rights away at once, not when the session expires.
func (s *Server) manages(ses *session) (bool, error) {
	sel, err := s.sellerOf(ses)
	if err != nil || sel == nil {
		return false, err
	}
	return sel.Role == storeline.Manager && sel.WorksAt(s.cfg.Store), nil
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
	release, d := s.sessions.reserve(c.terminal.ID, in.Seller, now)
	if release == nil {
		return retryAfter{storeline.Errorf(storeline.RateLimited, op, "too many failed attempts; retry in %s", d.Round(time.Second)), d}
	}
	var sel storeline.Seller
	err := s.led.GetMaster(storeline.KindSeller, string(in.Seller), &sel)
	if err != nil && !errors.Is(err, storeline.NotFound) {
		release() // not the till's fault
		return err
	}
	// An unknown seller, one of another shop and a wrong PIN answer alike,
	// and all keep their attempt as a failure, so a till cannot enumerate
	// the staff.
	if err != nil || !sel.WorksAt(s.cfg.Store) || !storeline.CheckPIN(sel.PINHash, in.PIN) {
		return storeline.Errorf(storeline.Unauthorized, op, "wrong seller or PIN")
	}
	release()
	ses := &session{seller: sel.ID, name: sel.Name, terminal: c.terminal.ID, pinHash: sel.PINHash}
	if err := s.sessions.open(ses, now); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, sessionJSON{Token: ses.token, Seller: ses.seller, Name: ses.name, Role: sel.Role, ExpiresAt: ses.expires.UTC()})
	return nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, c *caller) error {
	s.sessions.close(c.session.token)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
