package central

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// resource is a master-data kind served at /v1/{Path}.
type resource struct {
	Path string
	Kind storeline.MasterKind
}

// resources are the head-office API's master-data collections, in the
// order an import applies them (referenced before referencing).
var resources = []resource{
	{"stores", storeline.KindStore},
	{"groups", storeline.KindGroup},
	{"suppliers", storeline.KindSupplier},
	{"buyers", storeline.KindBuyer},
	{"manufacturers", storeline.KindManufacturer},
	{"representatives", storeline.KindRepresentative},
	{"banks", storeline.KindBank},
	{"items", storeline.KindItem},
	{"price_lists", storeline.KindPriceList},
	{"prices", storeline.KindPrice},
	{"customer_groups", storeline.KindCustomerGroup},
	{"customers", storeline.KindCustomer},
	{"sellers", storeline.KindSeller},
	{"cards", storeline.KindCard},
	{"price_policies", storeline.KindPricePolicy},          // pricing_api.go
	{"promotions", storeline.KindPromotion},                // pricing_api.go
	{"loyalty_programmes", storeline.KindLoyaltyProgramme}, // pricing_api.go
	{"terminals", storeline.KindTerminal},
	{"messages", storeline.KindMessage},
}

// importable are the collections POST /v1/import takes (sellers and
// terminals need a PIN or a token issued one by one).
func importable(r resource) bool {
	return r.Kind != storeline.KindSeller && r.Kind != storeline.KindTerminal
}

func (n *Node) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/internal/v1/", n.internalHandler)
	mux.HandleFunc("GET /v1/openapi.yaml", serveOpenAPI)
	h := func(pattern string, write bool, fn func(http.ResponseWriter, *http.Request) error) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if err := n.authorize(r, write); err != nil {
				n.problem(w, r, err)
				return
			}
			if err := fn(w, r); err != nil {
				n.problem(w, r, err)
			}
		})
	}
	h("GET /v1/cluster", false, n.getCluster)
	h("GET /v1/changes", false, n.getChanges)
	h("GET /v1/snapshot", false, n.getSnapshot)
	h("POST /v1/import", true, n.postImport)
	h("POST /v1/prices", true, n.postPrices)
	h("GET /v1/prices", false, n.getPrices)
	h("POST /v1/sellers/{id}/pin", true, n.postSellerPIN)
	h("POST /v1/terminals/{id}/token", true, n.postTerminalToken)
	n.backOfficeRoutes(h) // backoffice_api.go
	n.loyaltyRoutes(h)    // loyalty.go
	n.pricingRoutes(h)    // pricing_api.go
	n.labelRoutes(h)      // labels.go

	n.savedReportRoutes(h) // reports_saved.go
	for _, res := range resources {
		if res.Kind == storeline.KindPrice {
			continue
		}
		res := res
		h("GET /v1/"+res.Path, false, func(w http.ResponseWriter, r *http.Request) error { return n.list(w, r, res) })
		h("GET /v1/"+res.Path+"/{id}", false, func(w http.ResponseWriter, r *http.Request) error { return n.get(w, r, res) })
		h("PUT /v1/"+res.Path+"/{id}", true, func(w http.ResponseWriter, r *http.Request) error { return n.put(w, r, res) })
		h("DELETE /v1/"+res.Path+"/{id}", true, func(w http.ResponseWriter, r *http.Request) error { return n.del(w, r, res) })
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { notRouted(mux, w, r) })
	return mux
}

// notRouted answers a request no route takes as problem+json, as every
// other error (the mux's own answers are text/plain): 405 with Allow when
// the path is served for other methods, else 404.
func notRouted(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodDelete, http.MethodGet, http.MethodHead, http.MethodPatch, http.MethodPost, http.MethodPut} {
		if m == r.Method {
			continue
		}
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, pattern := mux.Handler(r2); pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		writeProblem(w, r, storeline.Errorf(storeline.NotFound, "central.api", "no %s in the API", r.URL.Path))
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	const status = http.StatusMethodNotAllowed
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{
		Type: "https://storeline.dev/problems/" + storeline.Invalid.String(), Title: http.StatusText(status), Status: status,
		Kind: storeline.Invalid.String(), Detail: fmt.Sprintf("%s %s: the path takes %s", r.Method, r.URL.Path, strings.Join(allow, ", ")),
	})
}

func (n *Node) adminHandler() http.Handler {
	mux := http.NewServeMux()
	var g prometheus.Gatherer
	if rg, ok := n.cfg.Registerer.(prometheus.Gatherer); ok {
		g = rg
	} else {
		reg := prometheus.NewRegistry()
		reg.MustRegister(n.met)
		g = reg
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if n.Leader() == "" {
			writeProblem(w, r, storeline.Errorf(storeline.Unavailable, "central.healthz", "no leader known"))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "state": n.raft.State().String(), "leader": n.Leader(), "applied_index": n.AppliedIndex()})
	})
	return mux
}

// authorize checks the bearer API key; writes need the admin role.
func (n *Node) authorize(r *http.Request, write bool) error {
	const op = "central.auth"
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return storeline.Errorf(storeline.Unauthorized, op, "an API key is required (Authorization: Bearer KEY)")
	}
	k, ok := n.keys[storeline.TokenHash(tok)]
	if !ok {
		return storeline.Errorf(storeline.Unauthorized, op, "unknown API key")
	}
	if write && k.Role != RoleAdmin {
		return storeline.Errorf(storeline.Forbidden, op, "API key %q has role %s; writing needs admin", k.Name, k.Role)
	}
	return nil
}

func (n *Node) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return nil, errMalformed("", "Content-Type %q: want application/json", ct)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, n.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, storeline.Errorf(storeline.TooLarge, "", "request body over %d bytes", mbe.Limit)
		}
		return nil, errMalformed("", "reading the body: %v", err)
	}
	if err := checkShape(b, nil); err != nil {
		return nil, err
	}
	return b, nil
}

// maxJSONDepth bounds the nesting of a request body, far above what the
// API's bodies nest (an import's items' barcodes: four).
const maxJSONDepth = 32

// checkShape is storeline.CheckJSONShape as a 400 naming the key: no field
// twice in one object (the decoders kept the last), and for a body read
// into t (not nil) no field named in another case than the spec's.
func checkShape(body []byte, t reflect.Type) error {
	var se *storeline.JSONShapeError
	if err := storeline.CheckJSONShape(body, maxJSONDepth, t); errors.As(err, &se) {
		return errMalformed(se.Field, "%s", se.Reason)
	} else if err != nil {
		return err
	}
	return nil
}

// maxIdempotencyKey is openapi.yaml's maxLength of Idempotency-Key.
const maxIdempotencyKey = 128

// idempotencyKey is the request's Idempotency-Key, or a fresh one.
func idempotencyKey(r *http.Request) (string, error) {
	k := r.Header.Get("Idempotency-Key")
	if k == "" {
		return "auto:" + storeline.NewEventID().String(), nil
	}
	if utf8.RuneCountInString(k) > maxIdempotencyKey {
		// Characters, as openapi.yaml's maxLength counts them: a bound in
		// bytes refused a non-ASCII key the spec allows.
		return "", errMalformed("Idempotency-Key", "at most %d characters", maxIdempotencyKey)
	}
	return "key:" + k, nil
}

// readConsistency applies ?consistency= before a read.
func (n *Node) readConsistency(r *http.Request) error {
	switch c := r.URL.Query().Get("consistency"); c {
	case "", "local":
		return nil
	case "linearizable":
		return n.Linearize(r.Context())
	default:
		return errMalformed("consistency", "%q: want local or linearizable", c)
	}
}

// bulkHead is the payload of the first entry of a bulk write of several:
// a putPayload (applyPut ignores Digest) that carries the digest of every
// entry's payload, so the request's key, which keys that entry, stands
// for the whole body.
type bulkHead struct {
	putPayload `msgpack:",inline"`
	Digest     []byte `msgpack:"dg"`
}

// submitRecords writes records through Raft, ImportChunk per entry; each
// entry is atomic. The first entry is keyed key and, when there are more,
// carries the digest of them all; entry i > 0 is keyed bulkPartKey(key,
// i) (unkeyed when key is ""). So a retry
// of the same body skips the entries already applied, and the same key
// with another body, however it splits, is refused at the first entry
// (the FSM's Conflict on Idempotency-Key) before anything is applied.
func (n *Node) submitRecords(ctx context.Context, key string, recs []storeline.Record, fields []string) (Version, int, error) {
	var last Version
	entries := 0
	var first putPayload
	var payloads [][]byte
	for start := 0; start < len(recs); start += n.cfg.ImportChunk {
		end := min(start+n.cfg.ImportChunk, len(recs))
		p := putPayload{Records: make([]wireRecord, 0, end-start)}
		for i := start; i < end; i++ {
			wr, err := encodeRecord(recs[i], fields[i])
			if err != nil {
				return last, entries, storeline.E("central.put", storeline.Internal, err)
			}
			p.Records = append(p.Records, wr)
		}
		body, err := msgpack.Marshal(&p)
		if err != nil {
			return last, entries, storeline.E("central.put", storeline.Internal, err)
		}
		if start == 0 {
			first = p
		}
		payloads = append(payloads, body)
	}
	if len(payloads) > 1 {
		d := sha256.New()
		for _, b := range payloads {
			fmt.Fprintf(d, "%d:", len(b))
			d.Write(b)
		}
		head, err := msgpack.Marshal(&bulkHead{putPayload: first, Digest: d.Sum(nil)})
		if err != nil {
			return last, entries, storeline.E("central.put", storeline.Internal, err)
		}
		payloads[0] = head
	}
	for i, body := range payloads {
		k := key
		if i > 0 && key != "" {
			k = bulkPartKey(key, i)
		}
		res, err := n.Submit(ctx, OpMasterPut, k, body)
		if err != nil {
			return last, entries, err
		}
		if err := res.Err(); err != nil {
			if i > 0 {
				// Another write committed between the entries (a record
				// they name deleted, a unique key taken) after precheck:
				// the entries before stay applied, and the answer says so.
				err = &storeline.Error{Op: "central.put", Kind: storeline.KindOf(err), Field: storeline.FieldOf(err),
					Err: fmt.Errorf("%s; the request was applied in part: its first %d of %d records (%d entries) were applied before another write made this entry refused; a retry with the same Idempotency-Key gets this answer again",
						errMessage(err), i*n.cfg.ImportChunk, len(recs), i)}
			}
			return last, entries, err
		}
		last = res.Version
		entries++
	}
	return last, entries, nil
}

// bulkPartKey keys entry i > 0 of a bulk write keyed key. It begins
// "part", which no key idempotencyKey makes does ("key:", "auto:"), so
// no request of a client's can hold it: a client that sent "run/1"
// before "run" must not see the bulk refused after its first entry.
func bulkPartKey(key string, i int) string { return fmt.Sprintf("part%d:%s", i, key) }

// precheck validates records and their references against the local state
// and the request's own records before anything is submitted, so a bad
// bulk request that spans several entries changes nothing. The FSM checks
// again when it applies each entry.
func (n *Node) precheck(ctx context.Context, recs []storeline.Record, fields []string) error {
	err := n.precheckLocal(recs, fields)
	if err != nil && storeline.KindOf(err) == storeline.Invalid && !n.IsLeader() {
		// This follower may lag: check again once it has caught up, so a
		// stale replica never refuses a valid write.
		if lerr := n.Linearize(ctx); lerr != nil {
			return lerr
		}
		err = n.precheckLocal(recs, fields)
	}
	return err
}

func (n *Node) precheckLocal(recs []storeline.Record, fields []string) error {
	pending := make(map[string]storeline.Record, len(recs))
	for i, rec := range recs {
		if err := rec.Validate(); err != nil {
			return prefixed(fields[i], err)
		}
		pending[string(rec.MasterKind())+"\x00"+rec.MasterID()] = rec
	}
	err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		for i, rec := range recs {
			if err := checkRefs(rt, pending, rec, fields[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := n.checkUniqueKeys(recs, fields); err != nil {
		return err
	}
	return checkRuleOverlaps(replicaRuleScan(n.rep), recs, fields) // pricing_api.go
}

// checkUniqueKeys refuses records whose unique keys (SKU, barcode, card
// code) would be held by another record once the records before them are
// written, as the ledger decides it entry by entry: a bulk request split
// into several entries must not have a later entry refused after the
// earlier ones were applied.
func (n *Node) checkUniqueKeys(recs []storeline.Record, fields []string) error {
	owners := map[string]string{} // kind \0 key → holder after the records so far ("" free)
	held := map[string][]string{} // kind \0 id → keys it holds after the records so far
	for i, rec := range recs {
		kind, id := rec.MasterKind(), rec.MasterID()
		mk := string(kind) + "\x00" + id
		old, ok := held[mk]
		if !ok {
			cur, _ := storeline.NewRecord(kind)
			switch err := n.rep.GetMaster(kind, id, cur); {
			case err == nil:
				old = cur.UniqueKeys()
			case storeline.KindOf(err) != storeline.NotFound:
				return err
			}
		}
		for _, k := range old {
			owners[string(kind)+"\x00"+k] = ""
		}
		for _, k := range rec.UniqueKeys() {
			uk := string(kind) + "\x00" + k
			owner, ok := owners[uk]
			if !ok {
				cur, _ := storeline.NewRecord(kind)
				switch err := n.rep.LookupMaster(kind, k, cur); {
				case err == nil:
					owner = cur.MasterID()
				case storeline.KindOf(err) != storeline.NotFound:
					return err
				}
			}
			if owner != "" && owner != id {
				return &storeline.Error{Kind: storeline.Conflict, Field: joinField(fields[i], uniqueKeyField(rec, k)),
					Err: fmt.Errorf("%s %q: unique key %q is held by %q", kind, id, k, owner)}
			}
			owners[uk] = id
		}
		held[mk] = rec.UniqueKeys()
	}
	return nil
}

// uniqueKeyField is the field of rec holding its unique key k (an item's
// sku or barcodes[i].code, a card's code), for a Conflict to name; ""
// when none does.
func uniqueKeyField(rec storeline.Record, k string) string {
	switch r := rec.(type) {
	case *storeline.Item:
		if k == storeline.SKUKey(r.SKU) {
			return "sku"
		}
		for i, b := range r.Barcodes {
			if k == storeline.BarcodeKey(b.Code) {
				return fmt.Sprintf("barcodes[%d].code", i)
			}
		}
	case *storeline.CardRecord:
		return "code"
	}
	return ""
}

// joinField names field inside the record at path ("items[3]" and "sku":
// "items[3].sku"); either may be empty.
func joinField(path, field string) string {
	switch {
	case path == "":
		return field
	case field == "":
		return path
	}
	return path + "." + field
}

func setID(rec storeline.Record, id string) error {
	f := reflect.ValueOf(rec).Elem().FieldByName("ID")
	if !f.IsValid() {
		return nil
	}
	if f.String() != "" && f.String() != id {
		return errMalformed("id", "%q differs from the path's %q", f.String(), id)
	}
	f.SetString(id)
	return nil
}

type putAnswer struct {
	Version   Version `json:"version"`
	Duplicate bool    `json:"duplicate,omitempty"`
	Record    any     `json:"record"`
	Token     string  `json:"token,omitempty"`
}

func (n *Node) put(w http.ResponseWriter, r *http.Request, res resource) error {
	id := r.PathValue("id")
	if err := storeline.CheckID("id", id); err != nil {
		return err
	}
	body, err := n.readBody(w, r)
	if err != nil {
		return err
	}
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	rec, _ := storeline.NewRecord(res.Kind)
	var token string
	switch res.Kind {
	case storeline.KindSeller:
		token, err = n.decodeSeller(body, key, id, rec.(*storeline.Seller))
	case storeline.KindTerminal:
		token, err = n.decodeTerminal(body, key, id, rec.(*storeline.Terminal))
	default:
		if err = decodeWire(body, rec); err == nil {
			err = setID(rec, id)
		}
	}
	if err != nil {
		return err
	}
	unlock, err := n.serializeRules(r.Context(), []storeline.Record{rec}) // pricing_api.go
	if err != nil {
		return err
	}
	defer unlock()
	if err := n.precheck(r.Context(), []storeline.Record{rec}, []string{""}); err != nil {
		return err
	}
	result, err := n.submitOne(r.Context(), key, rec)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, putAnswer{Version: result.Version, Duplicate: result.Duplicate, Record: apiRecord(rec), Token: token})
	return nil
}

// apiRecord is a record as the head-office API answers it. A seller's
// PIN hash is left out: a PIN is a few digits, so whoever reads its hash
// finds the PIN offline in seconds. Shops get it by replication, to log
// sellers in; no API client needs it (a PIN is set with "pin").
func apiRecord(rec any) any {
	m := encodeWire(rec)
	if _, ok := rec.(*storeline.Seller); ok {
		if mm, ok := m.(map[string]any); ok {
			delete(mm, "pin_hash")
		}
	}
	return m
}

func (n *Node) submitOne(ctx context.Context, key string, rec storeline.Record) (*Result, error) {
	wr, err := encodeRecord(rec, "")
	if err != nil {
		return nil, storeline.E("central.put", storeline.Internal, err)
	}
	body, _ := msgpack.Marshal(&putPayload{Records: []wireRecord{wr}})
	res, err := n.Submit(ctx, OpMasterPut, key, body)
	if err != nil {
		return nil, err
	}
	return res, res.Err()
}

// checkPIN accepts 4 to 12 digits.
func checkPIN(field, pin string) error {
	if len(pin) < 4 || len(pin) > 12 || strings.Trim(pin, "0123456789") != "" {
		return storeline.Invalidf(field, "a PIN is 4-12 digits")
	}
	return nil
}

// hashPIN hashes a seller's PIN with a salt drawn from the request's
// idempotency key (random when the client sent none), so a retry with the
// same key and body submits the same record and gets the first outcome
// instead of a 409 for "another request". A salt need be unique, not
// secret: a key is used once.
func hashPIN(key, id, pin string) string {
	sum := sha256.Sum256([]byte("storeline/pin-salt\x00" + key + "\x00" + id))
	return storeline.HashPIN(pin, sum[:16])
}

// decodeSeller decodes a seller; its PIN comes as "pin" and is stored
// hashed. Without a pin an existing seller keeps its hash.
func (n *Node) decodeSeller(body []byte, key, id string, s *storeline.Seller) (string, error) {
	var extra struct {
		PIN     json.RawMessage `json:"pin"`
		PINHash json.RawMessage `json:"pin_hash"`
	}
	_ = json.Unmarshal(body, &extra)
	if extra.PINHash != nil {
		return "", errMalformed("pin_hash", "set by the server; send pin")
	}
	var pin *string
	if extra.PIN != nil && string(extra.PIN) != "null" {
		if err := json.Unmarshal(extra.PIN, &pin); err != nil {
			return "", errMalformed("pin", "want a string of 4-12 digits")
		}
	}
	if err := decodeWire(body, s, "pin"); err != nil {
		return "", err
	}
	if err := setID(s, id); err != nil {
		return "", err
	}
	if pin != nil {
		if err := checkPIN("pin", *pin); err != nil {
			return "", err
		}
		s.PINHash = hashPIN(key, id, *pin)
		return "", nil
	}
	var old storeline.Seller
	if err := n.rep.GetMaster(storeline.KindSeller, id, &old); err != nil {
		if storeline.KindOf(err) == storeline.NotFound {
			return "", storeline.Invalidf("pin", "a new seller needs a PIN")
		}
		return "", err
	}
	s.PINHash = old.PINHash
	return "", nil
}

// processTokenKey keys terminalToken on a node without a cluster secret
// (a single node): a retry reaching this process gets the same token.
var processTokenKey = sync.OnceValue(func() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
})

// terminalToken is the token a request keyed key issues terminal id,
// and its hash: an HMAC under the cluster secret (the same on every
// node), so a retry with the same key, through any node, submits the
// same record, gets the first outcome, and is answered the same token
// instead of a 409 while a token nobody holds was minted. The key is
// random when the client sent none; whoever can compute a token holds
// the cluster secret or is an admin who could issue one anyway.
func (n *Node) terminalToken(key, id string) (string, string) {
	secret := []byte(n.cfg.ClusterSecret)
	if len(secret) == 0 {
		secret = processTokenKey()
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("storeline/terminal-token\x00" + key + "\x00" + id))
	tok := hex.EncodeToString(m.Sum(nil))
	return tok, storeline.TokenHash(tok)
}

// decodeTerminal decodes a terminal; a new one is issued a token, which
// is answered once (and again to a retry with the same key) and stored
// only as its hash.
func (n *Node) decodeTerminal(body []byte, key, id string, t *storeline.Terminal) (string, error) {
	var extra struct {
		TokenHash json.RawMessage `json:"token_hash"`
	}
	_ = json.Unmarshal(body, &extra)
	if extra.TokenHash != nil {
		return "", errMalformed("token_hash", "set by the server")
	}
	if err := decodeWire(body, t); err != nil {
		return "", err
	}
	if err := setID(t, id); err != nil {
		return "", err
	}
	tok, h := n.terminalToken(key, id)
	var old storeline.Terminal
	err := n.rep.GetMaster(storeline.KindTerminal, id, &old)
	switch {
	case err == nil && old.TokenHash == h:
		// A retry of the request that issued it: the same record, so
		// put answers the token only if the FSM finds it a duplicate.
		t.TokenHash = h
		return tok, nil
	case err == nil:
		t.TokenHash = old.TokenHash
		return "", nil
	case storeline.KindOf(err) == storeline.NotFound:
		t.TokenHash = h
		return tok, nil
	}
	return "", err
}

func (n *Node) postSellerPIN(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	body, err := n.readBody(w, r)
	if err != nil {
		return err
	}
	var p struct {
		PIN string
	}
	if err := decodeWire(body, &p); err != nil {
		return err
	}
	if err := checkPIN("pin", p.PIN); err != nil {
		return err
	}
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	var s storeline.Seller
	if err := n.rep.GetMaster(storeline.KindSeller, id, &s); err != nil {
		return err
	}
	s.PINHash = hashPIN(key, id, p.PIN)
	res, err := n.submitOne(r.Context(), key, &s)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, putAnswer{Version: res.Version, Duplicate: res.Duplicate, Record: apiRecord(&s)})
	return nil
}

func (n *Node) postTerminalToken(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	var t storeline.Terminal
	if err := n.rep.GetMaster(storeline.KindTerminal, id, &t); err != nil {
		return err
	}
	tok, h := n.terminalToken(key, id)
	t.TokenHash = h
	res, err := n.submitOne(r.Context(), key, &t)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, putAnswer{Version: res.Version, Duplicate: res.Duplicate, Record: encodeWire(&t), Token: tok})
	return nil
}

func (n *Node) get(w http.ResponseWriter, r *http.Request, res resource) error {
	if err := n.readConsistency(r); err != nil {
		return err
	}
	rec, _ := storeline.NewRecord(res.Kind)
	if err := n.rep.GetMaster(res.Kind, r.PathValue("id"), rec); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, apiRecord(rec))
	return nil
}

func queryLimit(r *http.Request) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return DefaultFeedLimit, nil
	}
	l, err := strconv.Atoi(s)
	if err != nil || l < 1 || l > MaxFeedLimit {
		return 0, errMalformed("limit", "%q: want 1-%d", s, MaxFeedLimit)
	}
	return l, nil
}

func (n *Node) list(w http.ResponseWriter, r *http.Request, res resource) error {
	if err := n.readConsistency(r); err != nil {
		return err
	}
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	out, next, err := pageOf(limit, n.mastersUnder(res.Kind, "", r.URL.Query().Get("after")),
		func(_ string, rec storeline.Record) any { return apiRecord(rec) })
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"records": out, "next": next})
	return nil
}

func (n *Node) del(w http.ResponseWriter, r *http.Request, res resource) error {
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	body, _ := msgpack.Marshal(&deletePayload{Kind: res.Kind, ID: r.PathValue("id")})
	result, err := n.Submit(r.Context(), OpMasterDelete, key, body)
	if err != nil {
		return err
	}
	if err := result.Err(); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"version": result.Version, "duplicate": result.Duplicate})
	return nil
}

// decodeList decodes a JSON array of records of kind, naming each by
// field[i].
func decodeList(raw json.RawMessage, kind storeline.MasterKind, field string) ([]storeline.Record, []string, error) {
	var arr []json.RawMessage
	if err := json.Unmarshal(raw, &arr); err != nil {
		return nil, nil, errMalformed(field, "want an array")
	}
	recs := make([]storeline.Record, len(arr))
	fields := make([]string, len(arr))
	for i, a := range arr {
		rec, _ := storeline.NewRecord(kind)
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := decodeWire(a, rec); err != nil {
			return nil, nil, prefixed(f, err)
		}
		recs[i], fields[i] = rec, f
	}
	return recs, fields, nil
}

type importAnswer struct {
	Version Version `json:"version"`
	Records int     `json:"records"`
	Entries int     `json:"entries"`
}

// postImport takes {"groups": [...], "items": [...], ...} and writes it
// in bounded entries, kinds in dependency order.
func (n *Node) postImport(w http.ResponseWriter, r *http.Request) error {
	body, err := n.readBody(w, r)
	if err != nil {
		return err
	}
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return errMalformed("", "want a JSON object of collections")
	}
	var recs []storeline.Record
	var fields []string
	for _, res := range resources {
		raw, ok := m[res.Path]
		if !ok {
			continue
		}
		if !importable(res) {
			return errMalformed(res.Path, "%s are not imported in bulk (PUT /v1/%s/{id})", res.Path, res.Path)
		}
		delete(m, res.Path)
		rs, fs, err := decodeList(raw, res.Kind, res.Path)
		if err != nil {
			return err
		}
		recs, fields = append(recs, rs...), append(fields, fs...)
	}
	for k := range m {
		return errMalformed(k, "unknown collection")
	}
	return n.writeBulk(w, r, key, recs, fields)
}

func (n *Node) writeBulk(w http.ResponseWriter, r *http.Request, key string, recs []storeline.Record, fields []string) error {
	if len(recs) == 0 {
		return storeline.Invalidf("", "nothing to import")
	}
	unlock, err := n.serializeRules(r.Context(), recs) // pricing_api.go
	if err != nil {
		return err
	}
	defer unlock()
	if err := n.precheck(r.Context(), recs, fields); err != nil {
		return err
	}
	v, entries, err := n.submitRecords(r.Context(), key, recs, fields)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, importAnswer{Version: v, Records: len(recs), Entries: entries})
	return nil
}

// postPrices takes {"prices": [{list, item, from, price}, ...]}.
func (n *Node) postPrices(w http.ResponseWriter, r *http.Request) error {
	body, err := n.readBody(w, r)
	if err != nil {
		return err
	}
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return errMalformed("", "want {\"prices\": [...]}")
	}
	for k := range m {
		if k != "prices" {
			return errMalformed(k, "unknown field")
		}
	}
	recs, fields, err := decodeList(m["prices"], storeline.KindPrice, "prices")
	if err != nil {
		return err
	}
	return n.writeBulk(w, r, key, recs, fields)
}

func (n *Node) getPrices(w http.ResponseWriter, r *http.Request) error {
	if err := n.readConsistency(r); err != nil {
		return err
	}
	q := r.URL.Query()
	list, item := q.Get("list"), q.Get("item")
	if err := storeline.CheckID("list", list); err != nil {
		return errMalformed("list", "%v", errMessage(err))
	}
	prefix := string(list) + "/"
	if item != "" {
		prefix = storeline.PricePrefix(storeline.PriceListID(list), storeline.ItemID(item))
	}
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	// Pages in ID order: a list of a chain's goods runs to six figures,
	// and a page that stopped at a bound without saying so read as the
	// whole list.
	after := q.Get("after")
	if after != "" && !strings.HasPrefix(after, prefix) {
		return errMalformed("after", "%q is not a price of the list (and item) asked for", after)
	}
	out, next, err := pageOf(limit, n.mastersUnder(storeline.KindPrice, prefix, after),
		func(_ string, rec storeline.Record) any { return encodeWire(rec) })
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"prices": out, "next": next})
	return nil
}

func (n *Node) getCluster(w http.ResponseWriter, r *http.Request) error {
	leader, members, err := n.Cluster(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"node": n.cfg.NodeID, "leader": leader, "members": members})
	return nil
}

func storeParam(r *http.Request) (storeline.StoreID, error) {
	s := r.URL.Query().Get("store")
	if err := storeline.CheckID("store", s); err != nil {
		return "", errMalformed("store", "%v", errMessage(err))
	}
	return storeline.StoreID(s), nil
}

func (n *Node) getChanges(w http.ResponseWriter, r *http.Request) error {
	store, err := storeParam(r)
	if err != nil {
		return err
	}
	after, err := ParseVersion("after", r.URL.Query().Get("after"))
	if err != nil {
		return errMalformed("after", "%v", errMessage(err))
	}
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	if err := n.readConsistency(r); err != nil {
		return err
	}
	p, err := n.Changes(store, after, limit)
	if err != nil {
		return err
	}
	cs := make([]map[string]any, len(p.Changes))
	for i, c := range p.Changes {
		cs[i] = map[string]any{"version": c.Version, "kind": c.Kind, "id": c.ID, "deleted": c.Deleted}
		if c.Record != nil {
			cs[i]["record"] = apiRecord(c.Record)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"changes": cs, "next": p.Next, "more": p.More, "resync": p.Resync})
	return nil
}

func (n *Node) getSnapshot(w http.ResponseWriter, r *http.Request) error {
	store, err := storeParam(r)
	if err != nil {
		return err
	}
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	p, err := n.Snapshot(store, r.URL.Query().Get("page"), limit)
	if err != nil {
		return err
	}
	recs := make([]map[string]any, len(p.Records))
	for i, rec := range p.Records {
		recs[i] = map[string]any{"kind": rec.MasterKind(), "id": rec.MasterID(), "record": apiRecord(rec)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"records": recs, "as_of": p.AsOf, "next": p.Next})
	return nil
}
