package central

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// MaxExpiryDays bounds ?expiring_within_days=.
const MaxExpiryDays = 3660

// backOfficeRoutes adds the back-office endpoints to the head-office API
// (openapi.yaml, tag backoffice). h is apiHandler's route helper.
func (n *Node) backOfficeRoutes(h func(string, bool, func(http.ResponseWriter, *http.Request) error)) {
	h("PUT /v1/documents/{id}", true, n.putDocument)
	h("GET /v1/documents/{id}", false, n.getDocument)
	h("GET /v1/documents", false, n.listDocuments)
	h("POST /v1/documents/{id}/post", true, func(w http.ResponseWriter, r *http.Request) error {
		return n.docAction(w, r, OpDocPost)
	})
	h("POST /v1/documents/{id}/cancel", true, func(w http.ResponseWriter, r *http.Request) error {
		return n.docAction(w, r, OpDocCancel)
	})
	h("PUT /v1/recipes/{item}", true, n.putRecipe)
	h("GET /v1/recipes/{item}", false, n.getRecipe)
	h("GET /v1/stock", false, n.getStock)
	h("GET /v1/reservations", false, n.getReservations) // reservations.go
	h("GET /v1/balances", false, n.getBalances)
	h("GET /v1/batches", false, n.getBatches)
	h("GET /v1/drafts", false, n.getDrafts)
	h("PUT /v1/reprice_rules/{id}", true, n.putRule)
	h("GET /v1/reprice_rules", false, n.listRules)
	h("POST /v1/repricing/auto", true, n.postAutoReprice)
	h("POST /v1/cost_of_sales", true, n.postCostOfSales)
	n.backOfficeReportRoutes(h)
	n.settlementRoutes(h) // settlements.go
	n.orderRoutes(h)      // orders.go
	n.receivableRoutes(h) // receivables.go
}

// compact drops nil, empty strings, empty lists, zero times and zero
// amounts other than a quantity from a wire map, so a document shows the
// fields its type uses (a stocktake's counted zero stays).
func compact(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if isEmpty(k, e) {
				delete(x, k)
				continue
			}
			x[k] = compact(e)
		}
	case []any:
		for i := range x {
			x[i] = compact(x[i])
		}
	}
	return v
}

func isEmpty(key string, e any) bool {
	switch ev := e.(type) {
	case nil:
		return true
	case time.Time:
		return ev.IsZero()
	case decimal.Decimal:
		// A zero quantity is a count; a zero vat_rate, only there when
		// given (a nil one is nil), is a zero-rated line.
		return key != "qty" && key != "vat_rate" && ev.IsZero()
	case []any:
		return len(ev) == 0
	}
	rv := reflect.ValueOf(e)
	return rv.Kind() == reflect.String && rv.Len() == 0
}

func docJSON(rec *docRecord, dup bool) map[string]any {
	m := compact(encodeWire(&rec.Doc)).(map[string]any)
	m["status"] = rec.Status
	ps := make([]any, len(rec.Postings))
	for i, p := range rec.Postings {
		ps[i] = map[string]any{"account": p.Account, "asset": p.Asset, "amount": p.Amount}
	}
	m["postings"] = ps
	if len(rec.CancelPostings) > 0 {
		cps := make([]any, len(rec.CancelPostings))
		for i, p := range rec.CancelPostings {
			cps[i] = map[string]any{"account": p.Account, "asset": p.Asset, "amount": p.Amount}
		}
		m["cancel_postings"] = cps
	}
	m["created_at"] = time.UnixMilli(rec.CreatedMs).UTC()
	if rec.PostedMs != 0 {
		m["posted_at"] = time.UnixMilli(rec.PostedMs).UTC()
	}
	if rec.CancelledMs != 0 {
		m["cancelled_at"] = time.UnixMilli(rec.CancelledMs).UTC()
	}
	if rec.ReceivedBy != "" {
		m["received_by"] = rec.ReceivedBy
	}
	if dup {
		m["duplicate"] = true
	}
	return m
}

// submitDoc submits a document op under the request's idempotency key
// (with suffix, for a second attempt after the first's outcome is known).
func (n *Node) submitDoc(r *http.Request, op string, payload any, suffix ...string) (*docAnswer, error) {
	key, err := idempotencyKey(r)
	if err != nil {
		return nil, err
	}
	for _, s := range suffix {
		key += "/" + s
	}
	body, err := msgpack.Marshal(payload)
	if err != nil {
		return nil, storeline.E("central.document", storeline.Internal, err)
	}
	res, err := n.Submit(r.Context(), op, key, body)
	if err != nil {
		return nil, err
	}
	if err := res.Err(); err != nil {
		return nil, err
	}
	var a docAnswer
	if err := msgpack.Unmarshal(res.Body, &a); err != nil {
		return nil, storeline.E("central.document", storeline.Internal, err)
	}
	a.Duplicate = a.Duplicate || res.Duplicate
	return &a, nil
}

func (n *Node) putDocument(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := storeline.CheckID("id", id); err != nil {
		return err
	}
	body, err := n.readBody(w, r)
	if err != nil {
		return err
	}
	var d storeline.Document
	if err := decodeWire(body, &d, "position", "draft"); err != nil {
		return err
	}
	// decodeWire maps snake_case into structs, not through pointers: the
	// optional parts are decoded on their own, as strictly.
	var opt map[string]json.RawMessage
	_ = json.Unmarshal(body, &opt)
	if raw, ok := opt["position"]; ok && string(raw) != "null" {
		d.Position = &storeline.JournalPosition{}
		if err := decodeWire(raw, d.Position); err != nil {
			return prefixed("position", err)
		}
	}
	if raw, ok := opt["draft"]; ok && string(raw) != "null" {
		d.Draft = &storeline.DraftRef{}
		if err := decodeWire(raw, d.Draft); err != nil {
			return prefixed("draft", err)
		}
	}
	if d.ID != "" && d.ID != id {
		return errMalformed("id", "%q differs from the path's %q", d.ID, id)
	}
	d.ID = id
	if d.Draft != nil && (d.Type != "" || len(d.Lines) > 0) {
		// Typed by hand naming a till's draft: not one of a request
		// (orders.go, invariant 6). What else it names is left as it
		// always was (the entry checks only that a draft backs one
		// document).
		dr, err := n.tillDraft(d.Draft.Store, d.Draft.Event)
		switch k := storeline.KindOf(err); {
		case err == nil:
			if err := n.refuseRequestDraft(d.Draft, dr); err != nil {
				return err
			}
		case k != storeline.NotFound && k != storeline.Invalid:
			return err
		}
	}
	if d.Draft != nil && d.Type == "" && len(d.Lines) == 0 {
		// Made from a till's draft: its content is the draft's, copied
		// here (the draft is never edited) and carried in the entry.
		dr, err := n.tillDraft(d.Draft.Store, d.Draft.Event)
		if err != nil {
			return err
		}
		if err := n.refuseRequestDraft(d.Draft, dr); err != nil {
			return err
		}
		ref := *d.Draft
		// The draft's prices are in the currency its shop kept when the
		// till made it; booked in another (the shop has changed currency
		// since) they would be wrong by the rate between the two.
		var st storeline.Store
		if err := n.rep.GetMaster(storeline.KindStore, string(ref.Store), &st); err == nil && dr.Currency != st.Currency {
			return storeline.Invalidf("draft.event", "draft %s is priced in %s and store %q keeps its books in %s: make the document by hand",
				ref.Event, dr.Currency, ref.Store, st.Currency)
		} else if err != nil && storeline.KindOf(err) != storeline.NotFound {
			return err
		}
		// The order it fulfils: the one head office names in the
		// request, else the one the till's draft names (the shop was
		// told of it: shop_orders.go). Either is checked as a typed
		// document's is, when created and when posted.
		order := d.Order
		if order == "" {
			order = dr.Order
		}
		invoice := d.Invoice // kept, so a draft's type that names none refuses it
		d = *storeline.FromDraft(id, ref.Store, ref.Event, dr)
		d.Order, d.Invoice = order, invoice
	}
	// Packs counted by barcode take their factor from the item here too,
	// so Validate can check the quantities before anything is submitted
	// (the FSM resolves again from its own state).
	d.ResolvePacks(func(id storeline.ItemID) (*storeline.Item, bool) {
		var it storeline.Item
		return &it, n.rep.GetMaster(storeline.KindItem, string(id), &it) == nil
	})
	if err := d.Validate(); err != nil {
		return err
	}
	if err := unusedDepts(&d); err != nil {
		return err
	}
	if err := n.checkDocOrderLevel(&d); err != nil { // orders.go, invariant 4
		return err
	}
	if err := n.checkBuyerDocLevel(&d); err != nil { // receivables.go, invariant 4
		return err
	}
	if err := n.checkReturnInvoiceLevel(&d); err != nil { // backoffice_batches.go
		return err
	}
	// A fraction of a piece would be refused at every post (docpost.go):
	// refused now, while the document is being typed.
	if d.Type != storeline.DocRepricing {
		for i, l := range d.Lines {
			var it storeline.Item
			if n.rep.GetMaster(storeline.KindItem, string(l.Item), &it) == nil && !it.Unit.Fractional() && !l.Qty.IsInteger() {
				return storeline.Invalidf(fmt.Sprintf("lines[%d].qty", i), "quantity %s of a %s item must be whole", l.Qty, it.Unit)
			}
		}
	}
	a, err := n.submitDoc(r, OpDocCreate, &d)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, docJSON(&a.Record, a.Duplicate))
	return nil
}

// unusedDepts refuses a from_dept or to_dept on a kind of document that
// has no use for it, rather than dropping it without a word: a document
// leaves (or counts) stock by from_dept only as a transfer, supplier
// return, write-off or stocktake, and lands it by to_dept only as a
// transfer or transfer receipt. Checked here, not in the FSM, so entries
// already in the log still apply as they did.
func unusedDepts(d *storeline.Document) error {
	t := d.Type
	if d.FromDept != "" {
		switch t {
		case storeline.DocTransfer, storeline.DocSupplierReturn, storeline.DocWriteOff, storeline.DocStocktake,
			storeline.DocOutgoingInvoice, storeline.DocBuyerReturn:
		default:
			return storeline.Invalidf("from_dept", "a document of type %s has no use for from_dept%s", t, fromDraft(d))
		}
	}
	if d.ToDept != "" {
		switch t {
		case storeline.DocTransfer, storeline.DocTransferReceipt:
		default:
			return storeline.Invalidf("to_dept", "a document of type %s has no use for to_dept%s", t, fromDraft(d))
		}
	}
	return nil
}

// fromDraft says, for a refusal of a document made from a till's draft,
// that the field is the draft's.
func fromDraft(d *storeline.Document) string {
	if d.Draft == nil {
		return ""
	}
	return fmt.Sprintf("; the till's draft %s names it: make the document by hand", d.Draft.Event)
}

func (n *Node) docAction(w http.ResponseWriter, r *http.Request, op string) error {
	id := r.PathValue("id")
	if err := storeline.CheckID("id", id); err != nil {
		return err
	}
	a, err := n.submitDoc(r, op, &docIDPayload{ID: id})
	if storeline.KindOf(err) == storeline.Conflict && storeline.FieldOf(err) == "store" {
		// The shop has more sales to cost than one entry takes: cost them
		// in passes, then post (backoffice_cogs.go, invariant 3).
		var store storeline.StoreID
		if err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
			rec, ok, err := getDoc(rt, id)
			if ok {
				store = rec.Doc.Store
			}
			return err
		}); err != nil {
			return err
		}
		if _, _, err := n.catchUpCosts(r, store); err != nil {
			return err
		}
		// The key's first outcome (this conflict) is remembered: the
		// second attempt has a key of its own, derived so a client's
		// retry of the whole request lands on it too.
		a, err = n.submitDoc(r, op, &docIDPayload{ID: id}, "after-costing")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, docJSON(&a.Record, a.Duplicate))
	return nil
}

// maxCostPasses bounds the passes one request runs (each costs up to
// MaxCostedPerEntry events).
const maxCostPasses = 1000

// catchUpCosts runs cost-of-sales passes for store until it is caught up.
func (n *Node) catchUpCosts(r *http.Request, store storeline.StoreID) (costed, passes int, err error) {
	body, _ := msgpack.Marshal(&catchUpPayload{Store: store})
	for passes < maxCostPasses {
		res, err := n.Submit(r.Context(), OpCostCatchUp, "", body)
		if err != nil {
			return costed, passes, err
		}
		if err := res.Err(); err != nil {
			return costed, passes, err
		}
		var a catchUpAnswer
		if err := msgpack.Unmarshal(res.Body, &a); err != nil {
			return costed, passes, storeline.E("central.cost_of_sales", storeline.Internal, err)
		}
		costed += a.Costed
		passes++
		if a.Done {
			return costed, passes, nil
		}
	}
	return costed, passes, storeline.Errorf(storeline.Unavailable, "central.cost_of_sales", "%s still has sales to cost after %d passes; retry", store, passes)
}

// unknownStore is the answer of a store-scoped back-office request for a
// store head office does not know: 404 naming the store parameter.
func unknownStore(op string, store storeline.StoreID) error {
	return &storeline.Error{Op: op, Kind: storeline.NotFound, Field: "store", Err: fmt.Errorf("unknown store %q", store)}
}

// postCostOfSales costs a store's sales central holds and has not costed.
func (n *Node) postCostOfSales(w http.ResponseWriter, r *http.Request) error {
	store, err := storeParam(r)
	if err != nil {
		return err
	}
	costed, passes, err := n.catchUpCosts(r, store)
	if storeline.KindOf(err) == storeline.Invalid && storeline.FieldOf(err) == "store" && passes == 0 {
		// The FSM refuses a store not in the master data: unknown to
		// head office, as the stock and margin reports answer it (404),
		// not a rule broken by the request (422).
		return unknownStore("central.cost_of_sales", store)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"store": store, "costed": costed, "passes": passes})
	return nil
}

func (n *Node) getDocument(w http.ResponseWriter, r *http.Request) error {
	if err := n.readConsistency(r); err != nil {
		return err
	}
	id := r.PathValue("id")
	var rec *docRecord
	err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		var ok bool
		var err error
		rec, ok, err = getDoc(rt, id)
		if err == nil && !ok {
			err = storeline.Errorf(storeline.NotFound, "central.document", "no document %q", id)
		}
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, docJSON(rec, false))
	return nil
}

// listDocuments pages through documents in ID order, optionally of one
// store, type or status.
func (n *Node) listDocuments(w http.ResponseWriter, r *http.Request) error {
	if err := n.readConsistency(r); err != nil {
		return err
	}
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	store, typ, status, after := q.Get("store"), q.Get("type"), q.Get("status"), q.Get("after")
	if typ != "" && !slices.Contains(boDocTypes, storeline.DocType(typ)) {
		return errMalformed("type", "%q is not a document type", typ)
	}
	switch storeline.DocStatus(status) {
	case "", storeline.DocDraft, storeline.DocPosted, storeline.DocCancelled:
	default:
		return errMalformed("status", "%q: want draft, posted or cancelled", status)
	}
	return servePage(n, w, "documents", boDoc, "document", after, limit, func(id string, rec *docRecord) (any, bool) {
		if (store != "" && string(rec.Doc.Store) != store) || (typ != "" && string(rec.Doc.Type) != typ) ||
			(status != "" && string(rec.Status) != status) {
			return nil, false
		}
		return map[string]any{"id": id, "type": rec.Doc.Type, "store": rec.Doc.Store, "status": rec.Status,
			"lines": len(rec.Doc.Lines), "created_at": time.UnixMilli(rec.CreatedMs).UTC()}, true
	})
}

// serveRecord answers a GET of the record whose id the path names, as
// show makes it: get reads it (found or not) in one view of the replica,
// missing is the error for an id it does not find.
func serveRecord[T any](n *Node, w http.ResponseWriter, r *http.Request, get func(*ledger.ReplicaTxn, string) (*T, bool, error),
	missing func(id string) error, show func(*T) any) error {
	id := r.PathValue("id")
	if err := storeline.CheckID("id", id); err != nil {
		return err
	}
	if err := n.readConsistency(r); err != nil {
		return err
	}
	var rec *T
	err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		var ok bool
		var err error
		if rec, ok, err = get(rt, id); err == nil && !ok {
			err = missing(id)
		}
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, show(rec))
	return nil
}

// pageRecords reads a page of the msgpack records under prefix in ID
// order, from after on: each one that show takes (ok) is answered as it
// makes it, at most limit of them, examining maxReportScan records at
// most (a filter that matches few must not read every record). next is
// given only when the page stops before the end: at a match beyond a
// full page, or at the scan's bound.
func pageRecords[T any](rt *ledger.ReplicaTxn, prefix, what, after string, limit int, show func(id string, rec *T) (any, bool)) (out []any, next string, err error) {
	return pageKeys(rt, prefix, after, limit, maxReportScan, func(id string, v []byte) (any, bool, error) {
		var rec T
		if err := msgpack.Unmarshal(v, &rec); err != nil {
			return nil, false, fmt.Errorf("%s %s: %w", what, id, err)
		}
		row, ok := show(id, &rec)
		return row, ok, nil
	})
}

// pageKeys is pageRecords over the raw values under prefix, keyed by ID,
// examining bound keys at most: pick makes a key's row, or skips it.
func pageKeys(rt *ledger.ReplicaTxn, prefix, after string, limit, bound int,
	pick func(id string, v []byte) (any, bool, error)) (out []any, next string, err error) {
	out = []any{}
	last, scanned := after, 0
	err = rt.ScanMetaFrom(prefix, after, func(k string, v []byte) (bool, error) {
		id := k[len(prefix):]
		if after != "" && id <= after {
			return true, nil
		}
		if scanned++; scanned > bound {
			next = last
			return false, nil
		}
		row, ok, err := pick(id, v)
		if err != nil {
			return false, err
		}
		if !ok {
			last = id
			return true, nil
		}
		if len(out) == limit {
			next = last
			return false, nil
		}
		out = append(out, row)
		last = id
		return true, nil
	})
	return out, next, err
}

func (n *Node) putRecipe(w http.ResponseWriter, r *http.Request) error {
	item := r.PathValue("item")
	if err := storeline.CheckID("item", item); err != nil {
		return err
	}
	body, err := n.readBody(w, r)
	if err != nil {
		return err
	}
	var rc storeline.Recipe
	if err := decodeWire(body, &rc); err != nil {
		return err
	}
	if rc.Item != "" && string(rc.Item) != item {
		return errMalformed("item", "%q differs from the path's %q", rc.Item, item)
	}
	rc.Item = storeline.ItemID(item)
	if err := rc.Validate(); err != nil {
		return err
	}
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	enc, _ := msgpack.Marshal(&rc)
	res, err := n.Submit(r.Context(), OpRecipePut, key, enc)
	if err != nil {
		return err
	}
	if err := res.Err(); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, encodeWire(&rc))
	return nil
}

func (n *Node) getRecipe(w http.ResponseWriter, r *http.Request) error {
	if err := n.readConsistency(r); err != nil {
		return err
	}
	item := storeline.ItemID(r.PathValue("item"))
	var rc *storeline.Recipe
	err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		b := &txBook{rt: rt}
		var ok bool
		rc, ok = b.Recipe(item)
		if b.err != nil {
			return b.err
		}
		if !ok {
			return storeline.Errorf(storeline.NotFound, "central.recipe", "item %q has no recipe", item)
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, encodeWire(rc))
	return nil
}

// balanceRow is one (account, asset) balance.
type balanceRow struct {
	Account string
	Asset   storeline.Asset
	Amount  decimal.Decimal
}

// scanBalances calls fn with the balances of the accounts under prefix,
// in key order from the key prefix+from on: a page seeks to its cursor
// rather than re-reading every key the pages before it read.
func scanBalances(rt *ledger.ReplicaTxn, prefix, from string, fn func(balanceRow) bool) error {
	return rt.ScanMetaFrom(rpBal+prefix, from, func(k string, v []byte) (bool, error) {
		acct, asset, ok := strings.Cut(k[len(rpBal):], "\x00")
		if !ok {
			return true, nil
		}
		amt, err := decimal.NewFromString(string(v))
		if err != nil {
			return false, fmt.Errorf("balance %q: %w", k, err)
		}
		return fn(balanceRow{acct, storeline.Asset(asset), amt}), nil
	})
}

// balanceParts returns the distinct first path segments of the accounts
// under prefix holding a balance ("stock/<store>/": the departments with
// stock), seeking from one to the next instead of reading every balance.
func balanceParts(rt *ledger.ReplicaTxn, prefix string) ([]string, error) {
	keys := rt.MetaKeys(rpBal + prefix)
	defer keys.Close()
	var parts []string
	for from := ""; ; {
		k, found := keys.Seek(from)
		if !found {
			return parts, nil
		}
		rest := k[len(rpBal)+len(prefix):]
		end := strings.IndexAny(rest, "/\x00")
		if end < 0 {
			end = len(rest)
		}
		part := rest[:end]
		if !slices.Contains(parts, part) {
			parts = append(parts, part)
		}
		// Past the part's keys: an account ending at the part (0
		// follows) sorts before those extending it below '/'.
		if end < len(rest) && rest[end] == 0 {
			from = part + "\x01"
		} else {
			from = part + "0" // '/' + 1
		}
	}
}

// getStock answers a store's stock per department and item, a page at a
// time in account order: units, and value at cost in the store's
// currency. The cursor is dept/item.
func (n *Node) getStock(w http.ResponseWriter, r *http.Request) error {
	store, err := storeParam(r)
	if err != nil {
		return err
	}
	item := r.URL.Query().Get("item")
	if item != "" && !storeline.ValidID(item) {
		return errMalformed("item", "%q is not an item ID", item)
	}
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	after := r.URL.Query().Get("after")
	if d, it, ok := strings.Cut(after, "/"); after != "" && (!ok || !storeline.ValidID(d) || !storeline.ValidID(it)) {
		return errMalformed("after", "%q: want dept/item, as a page's next gives it", after)
	}
	if err := n.readConsistency(r); err != nil {
		return err
	}
	type row struct {
		Dept  string          `json:"dept"`
		Item  string          `json:"item"`
		Qty   decimal.Decimal `json:"qty"`
		Value decimal.Decimal `json:"value"`
		// Reserved is the units of the item held for customers at the
		// store (reservations.go): still in stock, and in Qty.
		Reserved *decimal.Decimal `json:"reserved,omitempty"`
	}
	var rows []*row
	var cur storeline.Currency
	next := ""
	err = n.rep.View(func(rt *ledger.ReplicaTxn) error {
		var st storeline.Store
		ok, err := rt.GetMaster(storeline.KindStore, string(store), &st)
		if err != nil {
			return err
		}
		if !ok {
			return unknownStore("central.stock", store)
		}
		cur = st.Currency
		prefix := "stock/" + string(store) + "/"
		// One item's rows are read department by department, not found
		// among every balance of the store: each department holding any
		// stock, the store record's or not (one dropped from the record
		// keeps its stock until it is moved), found by a seek.
		scans := []string{prefix}
		if item != "" {
			depts, err := balanceParts(rt, prefix)
			if err != nil {
				return err
			}
			scans = scans[:0]
			for _, d := range depts {
				scans = append(scans, prefix+d+"/"+item)
			}
			sort.Strings(scans) // the store's order of keys: dept "a/" after "a-b/"
		}
		var last *row
		scanned := 0
		stopped := false
		visit := func(b balanceRow) bool {
			rest := strings.TrimPrefix(b.Account, prefix)
			dept, it, ok := strings.Cut(rest, "/")
			if !ok || rest <= after || (item != "" && it != item) {
				return true
			}
			if last == nil || last.Dept != dept || last.Item != it {
				if scanned++; len(rows) == limit || scanned > maxReportScan {
					if last != nil {
						next = last.Dept + "/" + last.Item
					} else {
						next = after
					}
					stopped = true
					return false
				}
				last = &row{Dept: dept, Item: it}
				rows = append(rows, last)
			}
			switch b.Asset {
			case storeline.ItemAsset(storeline.ItemID(it)):
				last.Qty = b.Amount
			case storeline.MoneyAsset(st.Currency):
				last.Value = b.Amount
			}
			return true
		}
		for _, p := range scans {
			from := after // the cursor's own rows: skipped by visit
			if item != "" {
				if p[len(prefix):] <= after {
					continue // one account, a page before this one's
				}
				from = ""
			}
			if err := scanBalances(rt, p, from, visit); err != nil || stopped {
				return err
			}
		}
		if len(rows) > 0 {
			// One scan of the store's reserved accounts for the page,
			// rather than a read per row.
			held := storeline.ReservedAccount(store, "")
			scan := held
			if item != "" {
				scan = storeline.ReservedAccount(store, storeline.ItemID(item)) + "\x00"
			}
			reserved := map[string]decimal.Decimal{}
			if err := scanBalances(rt, scan, "", func(b balanceRow) bool {
				it := strings.TrimPrefix(b.Account, held)
				if b.Asset == storeline.ItemAsset(storeline.ItemID(it)) {
					reserved[it] = b.Amount
				}
				return true
			}); err != nil {
				return err
			}
			for _, r := range rows {
				if q, ok := reserved[r.Item]; ok {
					r.Reserved = &q
				}
			}
		}
		if item != "" && len(rows) == 0 && after == "" {
			// No stock of an item the master data does not hold either
			// (a mistyped ID) is not "none in stock". One deleted with
			// stock left still has its rows.
			known, err := rt.HasMaster(storeline.KindItem, item)
			if err != nil {
				return err
			}
			if !known {
				return &storeline.Error{Op: "central.stock", Kind: storeline.NotFound, Field: "item", Err: fmt.Errorf("unknown item %q", item)}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if rows == nil {
		rows = []*row{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"store": store, "currency": cur, "stock": rows, "next": next})
	return nil
}

// getBalances answers the balances of the accounts under a prefix, a
// page at a time in (account, asset) order; the cursor is "account asset".
func (n *Node) getBalances(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	after := ""
	if s := r.URL.Query().Get("after"); s != "" {
		acct, asset, ok := strings.Cut(s, " ")
		if !ok || acct == "" || asset == "" {
			return errMalformed("after", "%q: want \"account asset\", as a page's next gives it", s)
		}
		after = acct + "\x00" + asset
	}
	if err := n.readConsistency(r); err != nil {
		return err
	}
	prefix := r.URL.Query().Get("prefix")
	out := []any{}
	next := ""
	err = n.rep.View(func(rt *ledger.ReplicaTxn) error {
		// Seek to the cursor. One outside the prefix is before all of
		// its keys or after all of them.
		from := ""
		if rest, ok := strings.CutPrefix(after, prefix); ok {
			from = rest
		} else if after > prefix {
			return nil
		}
		last := ""
		return scanBalances(rt, prefix, from, func(b balanceRow) bool {
			k := b.Account + "\x00" + string(b.Asset)
			if k <= after {
				return true
			}
			if len(out) == limit {
				next = strings.Replace(last, "\x00", " ", 1)
				return false
			}
			out = append(out, map[string]any{"account": b.Account, "asset": b.Asset, "amount": b.Amount})
			last = k
			return true
		})
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"balances": out, "more": next != "", "next": next})
	return nil
}

// getBatches answers a store's batches with stock left, optionally only
// those expiring within N days of today in the store's time zone.
func (n *Node) getBatches(w http.ResponseWriter, r *http.Request) error {
	store, err := storeParam(r)
	if err != nil {
		return err
	}
	var within = -1
	if s := r.URL.Query().Get("expiring_within_days"); s != "" {
		if within, err = strconv.Atoi(s); err != nil || within < 0 || within > MaxExpiryDays {
			return errMalformed("expiring_within_days", "%q: want 0-%d", s, MaxExpiryDays)
		}
	}
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	// The cursor is item/expiry/batch (the batch may hold "/"; an item
	// and a date cannot), compared as the key it names.
	after := ""
	if s := r.URL.Query().Get("after"); s != "" {
		parts := strings.SplitN(s, "/", 3)
		if len(parts) != 3 || !storeline.ValidID(parts[0]) {
			return errMalformed("after", "%q: want item/expiry/batch, as a page's next gives it", s)
		}
		after = strings.Join(parts, "\x00")
	}
	if err := n.readConsistency(r); err != nil {
		return err
	}
	out := []any{}
	next := ""
	err = n.rep.View(func(rt *ledger.ReplicaTxn) error {
		var st storeline.Store
		ok, err := rt.GetMaster(storeline.KindStore, string(store), &st)
		if err != nil {
			return err
		}
		if !ok {
			return unknownStore("central.batches", store)
		}
		var until storeline.Date
		if within >= 0 {
			loc, err := st.Location()
			if err != nil {
				return err
			}
			until = daysAhead(n.now(), loc, within)
		}
		prefix := boBatch + string(store) + "\x00"
		// Used-up batches stay stored: a next is given only at a batch
		// the page would list beyond a full one, or at the scan's bound.
		last, scanned := after, 0
		return rt.ScanMetaFrom(prefix, after, func(k string, v []byte) (bool, error) {
			if after != "" && k[len(prefix):] <= after {
				return true, nil
			}
			if scanned++; scanned > maxReportScan {
				next = strings.ReplaceAll(last, "\x00", "/")
				return false, nil
			}
			var b storeline.Batch
			if err := msgpack.Unmarshal(v, &b); err != nil {
				return false, err
			}
			if !b.Qty.IsPositive() || (within >= 0 && (b.Expiry == "" || b.Expiry > until)) {
				last = k[len(prefix):]
				return true, nil
			}
			if len(out) == limit {
				next = strings.ReplaceAll(last, "\x00", "/")
				return false, nil
			}
			out = append(out, compact(encodeWire(&b)))
			last = k[len(prefix):]
			return true, nil
		})
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"batches": out, "next": next})
	return nil
}

// refuseRequestDraft refuses making a document of a till's request for
// goods, naming the order answering it if any (orders.go, invariant 6).
func (n *Node) refuseRequestDraft(ref *storeline.DraftRef, dr *storeline.DocumentDraft) error {
	if dr.Type != storeline.DocRequest {
		return nil
	}
	var order string
	if err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		var err error
		order, err = answeringOrder(rt, ref.Store, ref.Event)
		return err
	}); err != nil {
		return err
	}
	return errRequestDraft(ref.Event, order)
}

// tillDraft finds the document draft event id of store among the events
// central holds.
func (n *Node) tillDraft(store storeline.StoreID, id storeline.EventID) (*storeline.DocumentDraft, error) {
	var dr *storeline.DocumentDraft
	var kind storeline.EventKind
	err := n.ScanEvents(store, func(ev storeline.Event) bool {
		if ev.ID != id {
			return true
		}
		kind = ev.Kind
		dr, _ = ev.Body.(*storeline.DocumentDraft)
		return false
	})
	switch {
	case err != nil:
		return nil, err
	case kind == "":
		return nil, &storeline.Error{Kind: storeline.NotFound, Field: "draft.event", Err: fmt.Errorf("store %q has sent no event %s", store, id)}
	case dr == nil:
		return nil, storeline.Invalidf("draft.event", "event %s of %q is a %s, not a document draft", id, store, kind)
	}
	return dr, nil
}

// getDrafts lists the document drafts a store's tills made, with the
// document made of each (if any) or, for a request, the purchase order
// answering it (orders.go, invariant 6), a page at a time in journal
// order; the cursor is the last event's epoch/seq. A store head office does not know
// is a 404 naming store, not an empty list.
func (n *Node) getDrafts(w http.ResponseWriter, r *http.Request) error {
	store, err := storeParam(r)
	if err != nil {
		return err
	}
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	after, err := positionParam(r, "after")
	if err != nil {
		return err
	}
	if err := n.readConsistency(r); err != nil {
		return err
	}
	out := []any{}
	var last replication.Position
	more := false
	err = n.rep.View(func(rt *ledger.ReplicaTxn) error {
		// A store head office knows: in the master data, or one that
		// pushed (its drafts are listed), as for the margin report.
		ok, err := rt.HasMaster(storeline.KindStore, string(store))
		if err != nil {
			return err
		}
		if !ok {
			ms, err := marks(rt, store)
			if err != nil {
				return err
			}
			if len(ms) == 0 {
				return unknownStore("central.drafts", store)
			}
		}
		budget := maxReportScan
		last, more, err = walkEvents(rt, store, after, &budget, func(ev storeline.Event) (bool, error) {
			dr, ok := ev.Body.(*storeline.DocumentDraft)
			if !ok {
				return true, nil
			}
			if len(out) == limit {
				return false, nil
			}
			m := compact(encodeWire(dr)).(map[string]any)
			m["event"] = ev.ID
			m["occurred_at"] = ev.OccurredAt
			m["seq"] = ev.Seq
			v, err := rt.Meta(boDraft + string(store) + "\x00" + string(ev.ID[:]))
			if err != nil {
				return false, err
			}
			if v != nil {
				m["document"] = string(v)
			}
			if dr.Type == storeline.DocRequest {
				o, err := answeringOrder(rt, store, ev.ID)
				if err != nil {
					return false, err
				}
				if o != "" {
					m["order"] = o
				}
			}
			out = append(out, m)
			return true, nil
		})
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"drafts": out, "next": positionCursor(last, more)})
	return nil
}

func (n *Node) putRule(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := storeline.CheckID("id", id); err != nil {
		return err
	}
	body, err := n.readBody(w, r)
	if err != nil {
		return err
	}
	var rule storeline.RepriceRule
	if err := decodeWire(body, &rule); err != nil {
		return err
	}
	if rule.ID != "" && rule.ID != id {
		return errMalformed("id", "%q differs from the path's %q", rule.ID, id)
	}
	rule.ID = id
	if err := rule.Validate(); err != nil {
		return err
	}
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	enc, _ := msgpack.Marshal(&rule)
	res, err := n.Submit(r.Context(), OpRulePut, key, enc)
	if err != nil {
		return err
	}
	if err := res.Err(); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, compact(encodeWire(&rule)))
	return nil
}

func (n *Node) listRules(w http.ResponseWriter, r *http.Request) error {
	if err := n.readConsistency(r); err != nil {
		return err
	}
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	// Pages in ID order, next empty on the last: a list that stopped at
	// a bound without saying so read as every rule.
	after := r.URL.Query().Get("after")
	return servePage(n, w, "rules", boRule, "reprice rule", after, limit,
		func(_ string, rule *storeline.RepriceRule) (any, bool) { return compact(encodeWire(rule)), true })
}

// postAutoReprice drafts a repricing of a store's goods in a price list
// by the rules, from their last purchase costs, for review.
func (n *Node) postAutoReprice(w http.ResponseWriter, r *http.Request) error {
	body, err := n.readBody(w, r)
	if err != nil {
		return err
	}
	var req struct {
		ID        string
		Store     storeline.StoreID
		PriceList storeline.PriceListID
		Items     []storeline.ItemID
	}
	if err := decodeWire(body, &req); err != nil {
		return err
	}
	for i, it := range req.Items {
		if err := storeline.CheckID(fmt.Sprintf("items[%d]", i), string(it)); err != nil {
			return err
		}
	}
	a, err := n.submitDoc(r, OpReprice, &repricePayload{ID: req.ID, Store: req.Store, PriceList: req.PriceList, Items: req.Items})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, docJSON(&a.Record, a.Duplicate))
	return nil
}
