package node

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// The admin API. /metrics and /healthz are open (they sit on a loopback
// listener by default); everything under /admin/v1/ needs
// "Authorization: Bearer <AdminToken>". Errors are RFC 9457
// application/problem+json answers naming the field at fault (writeError).
//
//	POST /admin/v1/master       {"records":[{"kind":"item","record":{...}}]} -> {"version":N,"count":N} (at most MaxImportRecords records)
//	POST /admin/v1/terminals    {"id":"T1","name":"Till 1"}                  -> {"id":"T1","token":"..."} (the token is shown once)
//	POST /admin/v1/sellers      {"id":"S1","name":"Ann","role":"cashier","pin":"1234"} -> {"id":"S1","version":N}
//	GET  /admin/v1/backup       an online backup stream (ledger.Backup)
//	GET  /admin/v1/conservation 200 {"ok":true}, or 500 with the broken asset
//	GET  /admin/v1/journal?origin=&epoch=&seq=&limit=  a page of the journal (event summaries)
func (n *Node) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg}))
	mux.HandleFunc("GET /healthz", n.healthz)
	mux.Handle("POST /admin/v1/master", n.auth(n.importMaster))
	mux.Handle("POST /admin/v1/terminals", n.auth(n.issueTerminal))
	mux.Handle("POST /admin/v1/sellers", n.auth(n.setSeller))
	mux.Handle("GET /admin/v1/backup", n.auth(n.backup))
	mux.Handle("GET /admin/v1/conservation", n.auth(n.conservation))
	mux.Handle("GET /admin/v1/journal", n.auth(n.journal))
	return mux
}

func (n *Node) auth(h http.HandlerFunc) http.Handler {
	want := []byte("Bearer " + n.cfg.AdminToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="storeline-admin"`)
			writeError(w, &storeline.Error{Op: "admin", Kind: storeline.Unauthorized, Field: "Authorization",
				Err: errors.New("missing or wrong admin token")}, n)
			return
		}
		h(w, r)
	})
}

// healthz answers 200 "ok", or 503 "unavailable" once the ledger is
// poisoned: the node then refuses every write until it is restarted.
func (n *Node) healthz(w http.ResponseWriter, r *http.Request) {
	if err := n.ledger.Poisoned(); err != nil {
		// The cause is in the log; this listener is open.
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{
			"status":         "unavailable",
			"reason":         "ledger poisoned by a failed sync or write: restart the node",
			"store":          n.cfg.StoreID,
			"master_version": n.ledger.MasterVersion(),
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status":         "ok",
		"store":          n.cfg.StoreID,
		"master_version": n.ledger.MasterVersion(),
	})
}

// MasterImport is the body of POST /admin/v1/master.
type MasterImport struct {
	Records []MasterEntry `json:"records"`
}

// MasterEntry is one record of an import: its kind and its fields, in the
// JSON form of the storeline record type (field names match case-
// insensitively: "id", "name", "timezone", ...).
type MasterEntry struct {
	Kind   storeline.MasterKind `json:"kind"`
	Record json.RawMessage      `json:"record"`
}

// MaxImportRecords bounds the records of one import request: the ledger
// stores an import in one PutMaster call (all or none), which takes at
// most ledger.MaxMasterRecords. Bigger imports are split by the client
// (storeline ctl import sends batches of this size).
const MaxImportRecords = ledger.MaxMasterRecords

// DecodeMaster turns an import into storeline records, validated, naming
// the offending record in errors ("records[3].barcodes[0].code"). An
// import of more than MaxImportRecords records is TooLarge, naming
// "records", before any record is looked at.
func DecodeMaster(imp MasterImport) ([]storeline.Record, error) {
	if len(imp.Records) > MaxImportRecords {
		return nil, &storeline.Error{Op: "admin.master", Kind: storeline.TooLarge, Field: "records",
			Err: fmt.Errorf("%d records, at most %d per request: split the import (storeline ctl import does)", len(imp.Records), MaxImportRecords)}
	}
	recs := make([]storeline.Record, 0, len(imp.Records))
	for i, e := range imp.Records {
		f := fmt.Sprintf("records[%d]", i)
		rec, err := storeline.NewRecord(e.Kind)
		if err != nil {
			return nil, storeline.Invalidf(f+".kind", "%v", err)
		}
		if len(e.Record) == 0 {
			return nil, storeline.Invalidf(f+".record", "missing")
		}
		dec := json.NewDecoder(strings.NewReader(string(e.Record)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(rec); err != nil {
			return nil, storeline.Invalidf(f+".record", "%v", err)
		}
		if err := rec.Validate(); err != nil {
			cause := err
			var se *storeline.Error
			if errors.As(err, &se) && se.Err != nil {
				cause = se.Err
			}
			return nil, storeline.Invalidf(f+".record."+storeline.FieldOf(err), "%s %q: %v", e.Kind, rec.MasterID(), cause)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

func (n *Node) importMaster(w http.ResponseWriter, r *http.Request) {
	var imp MasterImport
	if !n.decode(w, r, n.cfg.MaxImportBytes, &imp) {
		return
	}
	recs, err := DecodeMaster(imp)
	if err == nil {
		err = n.checkOwnRecords(recs)
	}
	if err == nil {
		err = n.checkNotFromCentral(recs)
	}
	if err != nil {
		writeError(w, err, n)
		return
	}
	if len(recs) == 0 {
		writeJSON(w, http.StatusOK, map[string]any{"version": n.ledger.MasterVersion(), "count": 0})
		return
	}
	v, err := n.ledger.PutMaster(r.Context(), recs)
	if err != nil {
		writeError(w, err, n)
		return
	}
	n.log.Info("master data imported", "records", len(recs), "version", v)
	writeJSON(w, http.StatusOK, map[string]any{"version": v, "count": len(recs)})
}

// checkNotFromCentral refuses, on a shop that replicates, a record of a
// kind head office sends (replication.SweptKinds): the next resync would
// remove it without a word (the tills' items gone with it), so it is
// written at head office. Standalone shops import every kind.
func (n *Node) checkNotFromCentral(recs []storeline.Record) error {
	if !n.cfg.Replication.Enabled() {
		return nil
	}
	for i, rec := range recs {
		if k := rec.MasterKind(); slices.Contains(replication.SweptKinds, k) {
			return &storeline.Error{Op: "import", Kind: storeline.Conflict, Field: fmt.Sprintf("records[%d].kind", i),
				Err: fmt.Errorf("this shop replicates: %s records come from head office, and a resync would remove %q imported here; write it at head office", k, rec.MasterID())}
		}
	}
	return nil
}

// checkOwnRecords refuses, naming the record, what an import may not
// store on this shop because it is another shop's: a terminal of another
// shop (the tills' API accepts only this shop's terminals, and terminal
// IDs are chain-wide, so storing one would replace this shop's terminal
// of that ID and lock its till out), another shop's store record (the
// tills' catalogue follows store records), a seller who does not work
// here and a message not for this shop (central's feed never sends this
// shop any of them). The whole import is refused, so nothing of it is
// stored.
func (n *Node) checkOwnRecords(recs []storeline.Record) error {
	for i, rec := range recs {
		f := fmt.Sprintf("records[%d].record.", i)
		switch r := rec.(type) {
		case *storeline.Terminal:
			if r.Store != n.cfg.StoreID {
				return storeline.Invalidf(f+"store", "terminal %q belongs to store %q, not this node's %q", r.ID, r.Store, n.cfg.StoreID)
			}
		case *storeline.Store:
			if r.ID != n.cfg.StoreID {
				return storeline.Invalidf(f+"id", "store %q is another shop's: this node serves %q", r.ID, n.cfg.StoreID)
			}
		case *storeline.Seller:
			if !r.WorksAt(n.cfg.StoreID) {
				return storeline.Invalidf(f+"stores", "seller %q does not work at this node's store %q (stores %q)", r.ID, n.cfg.StoreID, r.Stores)
			}
		case *storeline.Message:
			if len(r.Stores) > 0 && !slices.Contains(r.Stores, n.cfg.StoreID) {
				return storeline.Invalidf(f+"stores", "message %q is not for this node's store %q (stores %q)", r.ID, n.cfg.StoreID, r.Stores)
			}
		}
	}
	return nil
}

// TerminalRequest is the body of POST /admin/v1/terminals.
type TerminalRequest struct {
	ID   storeline.TerminalID `json:"id"`
	Name string               `json:"name"`
}

// TerminalResponse carries a terminal's new token; only its hash is kept.
type TerminalResponse struct {
	ID    storeline.TerminalID `json:"id"`
	Token string               `json:"token"`
}

// NewToken returns a random bearer token (32 bytes, base64url).
func NewToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (n *Node) issueTerminal(w http.ResponseWriter, r *http.Request) {
	var req TerminalRequest
	if !n.decode(w, r, 64<<10, &req) {
		return
	}
	if req.Name == "" {
		req.Name = string(req.ID)
	}
	tok := NewToken()
	t := &storeline.Terminal{ID: req.ID, Store: n.cfg.StoreID, Name: req.Name, TokenHash: storeline.TokenHash(tok)}
	if err := t.Validate(); err != nil {
		writeError(w, err, n)
		return
	}
	if _, err := n.ledger.PutMaster(r.Context(), []storeline.Record{t}); err != nil {
		writeError(w, err, n)
		return
	}
	n.log.Info("terminal token issued", "terminal", string(req.ID))
	writeJSON(w, http.StatusOK, TerminalResponse{ID: req.ID, Token: tok})
}

// SellerRequest is the body of POST /admin/v1/sellers. The PIN is hashed
// with a fresh salt and never stored.
type SellerRequest struct {
	ID     storeline.SellerID  `json:"id"`
	Name   string              `json:"name"`
	Role   storeline.Role      `json:"role"`
	PIN    string              `json:"pin"`
	Stores []storeline.StoreID `json:"stores,omitempty"`
}

// MinPINLen and MaxPINLen bound a seller's PIN: digits only.
const (
	MinPINLen = 4
	MaxPINLen = 12
)

// SellerRecord builds the seller record for req, hashing its PIN.
func SellerRecord(req SellerRequest) (*storeline.Seller, error) {
	if len(req.PIN) < MinPINLen || len(req.PIN) > MaxPINLen || strings.Trim(req.PIN, "0123456789") != "" {
		return nil, storeline.Invalidf("pin", "a PIN is %d-%d digits", MinPINLen, MaxPINLen)
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	s := &storeline.Seller{ID: req.ID, Name: req.Name, Role: req.Role, PINHash: storeline.HashPIN(req.PIN, salt), Stores: req.Stores}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

func (n *Node) setSeller(w http.ResponseWriter, r *http.Request) {
	var req SellerRequest
	if !n.decode(w, r, 64<<10, &req) {
		return
	}
	s, err := SellerRecord(req)
	if err != nil {
		writeError(w, err, n)
		return
	}
	v, err := n.ledger.PutMaster(r.Context(), []storeline.Record{s})
	if err != nil {
		writeError(w, err, n)
		return
	}
	n.log.Info("seller set", "seller", string(req.ID), "role", string(req.Role))
	writeJSON(w, http.StatusOK, map[string]any{"id": req.ID, "version": v})
}

// backup streams an online backup. A failure before the first byte (the
// ledger closed or poisoned) is answered as an error, 503 for an
// unavailable ledger. Once the first byte is out the status cannot
// change, so a failure midway aborts the connection: the client sees a
// truncated body and an error, never a short file that looks whole.
func (n *Node) backup(w http.ResponseWriter, r *http.Request) {
	// ledger.Backup checks that the ledger is available (not closed, not
	// poisoned) before it writes anything: that error gets an answer.
	sw := &streamWriter{w: w, start: func(h http.Header) {
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="storeline-%s.backup"`, n.cfg.StoreID))
	}}
	if err := n.ledger.Backup(sw); err != nil {
		n.log.Error("backup failed", "err", err, "bytes_sent", sw.sent)
		if !sw.started {
			writeError(w, err, n)
			return
		}
		panic(http.ErrAbortHandler)
	}
	n.log.Info("backup streamed", "bytes", sw.sent)
}

// streamWriter sets a stream's headers at its first Write, so an error
// found before any byte can still be answered with a status and a
// problem body.
type streamWriter struct {
	w       http.ResponseWriter
	start   func(http.Header)
	started bool
	sent    int64
}

func (s *streamWriter) Write(p []byte) (int, error) {
	if !s.started {
		s.started = true
		s.start(s.w.Header())
	}
	n, err := s.w.Write(p)
	s.sent += int64(n)
	return n, err
}

func (n *Node) conservation(w http.ResponseWriter, r *http.Request) {
	if err := n.ledger.CheckConservation(); err != nil {
		n.log.Error("conservation broken", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"ok": false, "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true})
}

// JournalEntry summarises one event of a journal page.
type JournalEntry struct {
	ID         storeline.EventID   `json:"id"`
	Epoch      uint64              `json:"epoch"`
	Seq        uint64              `json:"seq"`
	Kind       storeline.EventKind `json:"kind"`
	OccurredAt time.Time           `json:"occurred_at"`
}

// JournalPage is the answer of GET /admin/v1/journal. Next is where the
// following page starts; an empty Events means the end.
type JournalPage struct {
	Events []JournalEntry `json:"events"`
	Next   struct {
		Epoch uint64 `json:"epoch"`
		Seq   uint64 `json:"seq"`
	} `json:"next"`
}

// journal serves a page of an origin's journal (the node's own by
// default), from position (epoch, seq) on. origin must be a valid ID;
// epoch and seq are decimal uint64s; limit is a decimal in [1,
// ledger.MaxJournalLimit]. An absent or empty parameter takes its
// default (the node's store, 0, 0, ledger.DefaultJournalLimit).
func (n *Node) journal(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	origin := storeline.StoreID(q.Get("origin"))
	if origin == "" {
		origin = n.cfg.StoreID
	}
	if err := storeline.CheckID("origin", string(origin)); err != nil {
		writeError(w, err, n)
		return
	}
	var from ledger.Position
	limit := uint64(ledger.DefaultJournalLimit)
	for _, p := range []struct {
		name     string
		dst      *uint64
		min, max uint64
	}{
		{"epoch", &from.Epoch, 0, 1<<64 - 1},
		{"seq", &from.Seq, 0, 1<<64 - 1},
		{"limit", &limit, 1, ledger.MaxJournalLimit},
	} {
		v := q.Get(p.name)
		if v == "" {
			continue // absent: the default
		}
		x, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, storeline.Invalidf(p.name, "%q is not a decimal number in [%d, %d]", v, p.min, p.max), n)
			return
		}
		if x < p.min || x > p.max {
			writeError(w, storeline.Invalidf(p.name, "%d out of range [%d, %d]", x, p.min, p.max), n)
			return
		}
		*p.dst = x
	}
	evs, err := n.ledger.Journal(origin, from, int(limit))
	if err != nil {
		writeError(w, err, n)
		return
	}
	page := JournalPage{Events: make([]JournalEntry, len(evs))}
	page.Next.Epoch, page.Next.Seq = from.Epoch, from.Seq
	for i, ev := range evs {
		page.Events[i] = JournalEntry{ID: ev.ID, Epoch: ev.Epoch, Seq: ev.Seq, Kind: ev.Kind, OccurredAt: ev.OccurredAt}
		page.Next.Epoch, page.Next.Seq = ev.Epoch, ev.Seq+1
	}
	writeJSON(w, http.StatusOK, page)
}

// maxAdminJSONDepth bounds the nesting of an admin request body, far above
// what master records nest.
const maxAdminJSONDepth = 32

// decode reads a JSON body of at most limit bytes into v, answering the
// error itself when it fails.
func (n *Node) decode(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	// Reading the body is bounded by ReadTimeout, as on the tills' API,
	// but only the reading: the listener has no ReadTimeout of its own,
	// whose expiry would also cancel an import still being stored, and
	// no WriteTimeout, as an online backup may stream for minutes.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(n.cfg.ReadTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		// The connection is left to its past deadline and closed: the
		// rest of the body may never come.
		w.Header().Set("Connection", "close")
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, storeline.Errorf(storeline.TooLarge, "admin", "body over %d bytes", limit), n)
		} else {
			writeError(w, storeline.Invalidf("body", "reading the body: %v", err), n)
		}
		return false
	}
	_ = rc.SetReadDeadline(time.Time{})
	if err := CheckAdminBody(body); err != nil {
		writeError(w, err, n)
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, storeline.Invalidf("body", "%v", err), n)
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, storeline.Invalidf("body", "trailing data after the JSON value"), n)
		return false
	}
	return true
}

// CheckAdminBody refuses, as Invalid naming the field, what encoding/json
// would take from an admin request body without a word: nesting deeper
// than the admin API allows, and a field given twice in one object, in
// the same spelling or in two the decoder takes for one name ("ID" and
// "id": field names match case-insensitively, and the decoder would keep
// the last). Every admin request body passes it before it is decoded; a
// client that re-encodes an import file (storeline ctl import) can check
// the file with it first.
func CheckAdminBody(body []byte) error {
	var se *storeline.JSONShapeError
	if err := storeline.CheckJSONShapeFolded(body, maxAdminJSONDepth); errors.As(err, &se) {
		field := "body"
		if se.Field != "" {
			field = se.Field
		}
		return storeline.Invalidf(field, "%s", se.Reason)
	}
	return nil
}

// statusOf maps error kinds to HTTP statuses for the admin API.
var statusOf = map[storeline.Kind]int{
	storeline.Internal:            http.StatusInternalServerError,
	storeline.Invalid:             http.StatusBadRequest,
	storeline.NotFound:            http.StatusNotFound,
	storeline.Conflict:            http.StatusConflict,
	storeline.Unauthorized:        http.StatusUnauthorized,
	storeline.Forbidden:           http.StatusForbidden,
	storeline.TooLarge:            http.StatusRequestEntityTooLarge,
	storeline.RateLimited:         http.StatusTooManyRequests,
	storeline.InsufficientStorage: http.StatusInsufficientStorage,
	storeline.Unavailable:         http.StatusServiceUnavailable,
}

// Problem is the body of an admin error answer: an RFC 9457 problem, as
// the tills' API (posbridge) answers. Type ends in the error kind's wire
// name ("invalid", "too_large", ...); Field names the input at fault
// ("records[3].record.barcodes[0].code", "origin", "limit").
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	// Detail is the cause, except for internal errors, whose detail is
	// logged and not sent.
	Detail string `json:"detail,omitempty"`
	Field  string `json:"field,omitempty"`
}

// writeError answers err as application/problem+json.
func writeError(w http.ResponseWriter, err error, n *Node) {
	k := storeline.KindOf(err)
	status, ok := statusOf[k]
	if !ok {
		k, status = storeline.Internal, http.StatusInternalServerError
	}
	p := Problem{
		Type:   "https://storeline.dev/problems/" + k.String(),
		Title:  http.StatusText(status),
		Status: status,
	}
	switch {
	case k == storeline.Internal:
		n.log.Error("admin request failed", "err", err)
	case storeline.IsIOError(err):
		// A failed file operation (a poisoned ledger, a full disk) names
		// the data directory's files and the system's error text: the
		// log keeps them, the answer says where to look.
		n.log.Error("admin request failed", "err", err)
		p.Detail, p.Field = storeline.IOErrorDetail(k, "the node"), storeline.FieldOf(err)
	default:
		p.Detail, p.Field = err.Error(), storeline.FieldOf(err)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
