package central

// Loyalty rights at head office. A customer's points are a bounded counter
// split into holders' accounts (storeline.PointsAccount): each shop's
// rights, and central's, which grow when shops hand rights back
// (storeline.PointsHandback events, ingested like any push). Central moves
// its rights to a shop by a central-authored transfer, committed through
// Raft by OpLoyaltyRights:
//
//   - a reservation: a shop online whose own rights fall short of a points
//     payment asks for the shortfall, keyed by its receipt's ID;
//   - a pre-grant: head office gives rights to a shop
//     (POST /v1/loyalty/grants), keyed by the grant's ID;
//   - automatic pre-grants to a customer's usual shops, and debts netted
//     against central's rights, decided by central's sweep
//     (loyalty_auto.go).
//
// Invariants:
//
//  1. The op reads central's rights and writes the transfer in the same
//     FSM transaction, so two reservations racing at different nodes are
//     ordered by Raft and never both take the same rights: central's
//     account never goes below zero.
//  2. The answer to (store, key) is stored with the transfer: asking again
//     (the shop's answer was lost, the till retried) returns the first
//     answer and moves nothing, for LoyaltyConfig.AnswerRetention. A
//     refusal writes nothing, so a later ask with the same key is decided
//     afresh, and so is an ask after its answer was pruned: a new
//     transfer under a new event ID (a move between holders, never a
//     spend).
//  3. The transfer is an ordinary central event touching the shop's
//     account, so it also reaches the shop through its feed: a granted
//     reservation whose answer never arrived still lands at the shop.
//  4. A pre-grant's id names one grant, whatever its store: once the
//     cluster runs FSM level 2 (levels.go; nodes of an older version
//     apply the entry too, and would grant again), the op records what
//     it granted by id (rpGrant) beside the answer, and the same id
//     asking anything else (other points, store, programme or customer)
//     is a Conflict naming id that moves nothing, decided in the FSM so
//     every replica answers alike. A reservation's key is its receipt's,
//     which no other request reuses: asked again it answers the first.
//     The record goes with the answer (applyLoyaltyPrune).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// OpLoyaltyRights moves a customer's rights from central to a store.
const OpLoyaltyRights = "loyalty.rights"

// rpRights keys the stored answer of a rights move: store \0 key.
const rpRights = "loy/r/"

// rpGrant keys what a pre-grant granted: grant id → msgpack grantRecord
// (invariant 4).
const rpGrant = "loy/g/"

// grantKey prefixes a pre-grant's id in its rights move's key.
const grantKey = "grant/"

// rpDebtOwed is the running total of the points customers owe, all
// programmes and shops (what storeline_loyalty_debt_points reports): minus
// the sum, over every balance of a debt account (debtBalances), of the
// integer part of the balance, as an int64 (two's complement, 8 bytes). A
// scrape reads it rather than every debt record of the chain.
//
// Every balance is written by applier.flush (replication.go), which moves
// the total in the same entry by what the integer part of each debt
// balance it writes moved (debtMoves), so the total is a function of the
// state at every index, the same on every replica. State written before
// the total existed has none: the first entry that moves a debt balance,
// or applies a loyalty sweep, writes it from a scan of the debt balances
// as the entry leaves them (addDebtOwed); until then LoyaltyDebt scans.
const rpDebtOwed = "loy/debt"

// debtBalances prefixes the balances of the debt accounts
// (storeline.PointsDebtAccount).
const debtBalances = rpBal + "points-debt/"

// debtMoves is what one flush did to debt balances: whether it wrote any,
// and by how much the points owed moved.
type debtMoves struct {
	moved bool
	owed  int64
}

// note records balance k moved from was to now (each as a scan parses
// the stored value), if k is a debt balance.
func (d *debtMoves) note(k string, was, now decimal.Decimal) {
	if strings.HasPrefix(k, debtBalances) {
		d.moved = true
		d.owed -= now.IntPart() - was.IntPart()
	}
}

// write moves the total by what flush noted, after flush wrote the
// balances.
func (d *debtMoves) write(rt *ledger.ReplicaTxn) error {
	if !d.moved {
		return nil
	}
	return addDebtOwed(rt, d.owed)
}

// addDebtOwed moves the total of points owed by delta, or, in state that
// has no total yet, writes it from a scan of the debt balances as they
// stand in rt (whatever moved them in this entry included, so delta is
// not added).
func addDebtOwed(rt *ledger.ReplicaTxn, delta int64) error {
	v, err := rt.Meta(rpDebtOwed)
	if err != nil {
		return err
	}
	var owed int64
	switch {
	case v == nil:
		if owed, err = scanDebtOwed(rt); err != nil {
			return err
		}
	case len(v) != 8:
		return fmt.Errorf("central: points owed: a record of %d bytes", len(v))
	case delta == 0:
		return nil
	default:
		owed = int64(ledger.U64(v)) + delta
	}
	return rt.SetMeta(rpDebtOwed, ledger.PutU64(uint64(owed)))
}

// scanDebtOwed sums the points owed over every debt balance: one read
// per debt account of the chain. A balance that does not parse counts
// for nothing (no entry can move it: applier.flush refuses to read it),
// rather than stopping every replica's FSM on an entry that moves another
// customer's debt.
func scanDebtOwed(rt *ledger.ReplicaTxn) (int64, error) {
	var owed int64
	err := rt.ScanMeta(debtBalances, func(_ string, v []byte) (bool, error) {
		if d, err := decimal.NewFromString(string(v)); err == nil {
			owed -= d.IntPart()
		}
		return true, nil
	})
	if err != nil {
		return 0, fmt.Errorf("central: points owed: %w", err)
	}
	return owed, nil
}

// grantRecord is what a pre-grant granted.
type grantRecord struct {
	Store     storeline.StoreID     `msgpack:"s"`
	Programme storeline.ProgrammeID `msgpack:"p"`
	Customer  storeline.CustomerID  `msgpack:"c"`
	Points    int64                 `msgpack:"n"`
}

// maxRightsKey bounds the idempotency key of a rights move.
const maxRightsKey = 100

// maxLoyaltyBody bounds a loyalty request body on the replication listener.
const maxLoyaltyBody = 4 << 10

func loyaltyOps() []Op { return append([]Op{{OpLoyaltyRights, applyRights}}, loyaltyAutoOps()...) }

// rightsPayload asks to move Points of the customer's rights from central
// to Store; Key makes it idempotent per store.
type rightsPayload struct {
	Store     storeline.StoreID     `msgpack:"s"`
	Programme storeline.ProgrammeID `msgpack:"p"`
	Customer  storeline.CustomerID  `msgpack:"c"`
	Points    int64                 `msgpack:"n"`
	Key       string                `msgpack:"k"`
	Why       string                `msgpack:"w"`
}

func (p *rightsPayload) check() error {
	for _, f := range []struct{ name, v string }{{"store", string(p.Store)}, {"programme", string(p.Programme)}, {"customer", string(p.Customer)}} {
		if err := storeline.CheckID(f.name, f.v); err != nil {
			return err
		}
	}
	if p.Store == storeline.Central {
		return storeline.Invalidf("store", "rights move from central to a store")
	}
	if p.Points <= 0 || p.Points > storeline.MaxPoints {
		return storeline.Invalidf("points", "points %d out of [1, %d]", p.Points, int64(storeline.MaxPoints))
	}
	if p.Key == "" || len(p.Key) > maxRightsKey || strings.ContainsRune(p.Key, 0) {
		return storeline.Invalidf("id", "a rights move needs a key of 1 to %d bytes", maxRightsKey)
	}
	return nil
}

// RightsAnswer is the outcome of a rights move. Granted is the points moved
// to the store (0: refused, central holds too few); Available is central's
// rights for the customer after the move; Seq the position of the transfer
// event (origin central, epoch 1); Event the event itself, for the shop
// to apply at once (filled by the answering node, not stored).
type RightsAnswer struct {
	Granted   int64                  `msgpack:"g"`
	Available int64                  `msgpack:"a"`
	Seq       uint64                 `msgpack:"q,omitempty"`
	Event     *replication.WireEvent `msgpack:"e,omitempty"`
}

// rightsEventID is the transfer's event ID: a function of (store, key), so
// every replica derives the same one. A reservation's key carries the Raft
// index it was applied at (applyRights), so a retry whose stored answer was
// pruned moves the rights afresh under a new ID instead of colliding with
// the first transfer's, which the shop holds and would drop as a copy.
func rightsEventID(store storeline.StoreID, key string) storeline.EventID {
	return storeline.DerivedEventID("loyalty-rights\x00" + string(store) + "\x00" + key)
}

func pointsBalance(tx *Tx, account string, asset storeline.Asset) (int64, error) {
	v, err := tx.Meta(balKey(account, asset))
	if err != nil || v == nil {
		return 0, err
	}
	d, err := decimal.NewFromString(string(v))
	if err != nil {
		return 0, fmt.Errorf("balance %s: %w", account, err)
	}
	return d.IntPart(), nil
}

func applyRights(tx *Tx, payload []byte) ([]byte, error) {
	var p rightsPayload
	if err := msgpack.Unmarshal(payload, &p); err != nil {
		return nil, storeline.Invalidf("", "undecodable rights move: %v", err)
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	grant, isGrant := strings.CutPrefix(p.Key, grantKey)
	if isGrant {
		lv, err := readClusterLevel(tx.ReplicaTxn)
		if err != nil {
			return nil, err
		}
		isGrant = lv >= levelGrantCheck
	}
	asked := grantRecord{Store: p.Store, Programme: p.Programme, Customer: p.Customer, Points: p.Points}
	if isGrant {
		had, ok, err := getMetaRecord[grantRecord](tx.ReplicaTxn, rpGrant+grant, "grant "+grant)
		if err != nil {
			return nil, err
		}
		if ok && *had != asked {
			return nil, &storeline.Error{Kind: storeline.Conflict, Field: "id", Err: fmt.Errorf(
				"grant %q gave %d points of %s's rights in %s to %s; this asks for another grant under its id",
				grant, had.Points, had.Customer, had.Programme, had.Store)}
		}
	}
	key := rpRights + string(p.Store) + "\x00" + p.Key
	if prior, err := tx.Meta(key); err != nil || prior != nil {
		return prior, err // asked before: the same answer (invariant 2)
	}
	ok, err := tx.GetMaster(storeline.KindStore, string(p.Store), nil)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &storeline.Error{Kind: storeline.NotFound, Field: "store", Err: fmt.Errorf("no store %q", p.Store)}
	}
	asset := storeline.PointsAsset(p.Programme)
	from := storeline.PointsAccount(p.Programme, p.Customer, storeline.Central)
	have, err := pointsBalance(tx, from, asset)
	if err != nil {
		return nil, err
	}
	if have < p.Points {
		return msgpack.Marshal(&RightsAnswer{Available: have}) // nothing written
	}
	seq, err := centralTransfer(tx, rightsEventID(p.Store, fmt.Sprintf("%s\x00%d", p.Key, tx.Index)), p.Why, p.Key, from,
		storeline.PointsAccount(p.Programme, p.Customer, p.Store), asset, p.Points)
	if err != nil {
		return nil, err
	}
	ans, err := msgpack.Marshal(&RightsAnswer{Granted: p.Points, Available: have - p.Points, Seq: seq})
	if err != nil {
		return nil, err
	}
	// Indexed by age, so it is pruned after AnswerRetention
	// (loyalty_auto.go).
	if err := tx.SetMeta(rightsAgeKey(tx.At, key), []byte{1}); err != nil {
		return nil, err
	}
	if isGrant {
		if err := putMetaRecord(tx.ReplicaTxn, rpGrant+grant, "grant "+grant, &asked); err != nil {
			return nil, err
		}
	}
	return ans, tx.SetMeta(key, ans)
}

// MoveRights moves points of the customer's rights from central to store,
// through Raft, idempotently by key (see the invariants above). A granted
// answer carries the transfer event. If it fails with Unavailable the
// outcome is unknown; asking again with the same key is safe.
func (n *Node) MoveRights(ctx context.Context, store storeline.StoreID, prog storeline.ProgrammeID, cust storeline.CustomerID, points int64, key, why string) (RightsAnswer, error) {
	const op = "central.MoveRights"
	p := rightsPayload{Store: store, Programme: prog, Customer: cust, Points: points, Key: key, Why: why}
	if err := p.check(); err != nil {
		return RightsAnswer{}, err
	}
	body, err := msgpack.Marshal(&p)
	if err != nil {
		return RightsAnswer{}, storeline.E(op, storeline.Internal, err)
	}
	res, err := n.Submit(ctx, OpLoyaltyRights, "", body)
	if err != nil {
		return RightsAnswer{}, err
	}
	if err := res.Err(); err != nil {
		return RightsAnswer{}, err
	}
	var ans RightsAnswer
	if err := msgpack.Unmarshal(res.Body, &ans); err != nil {
		return ans, storeline.E(op, storeline.Internal, err)
	}
	n.loy.moved(ans.Granted > 0)
	if ans.Granted == 0 {
		return ans, nil
	}
	// The entry may have been applied at the leader only: read the event
	// once this node has applied it too.
	if err := n.waitApplied(ctx, res.Index, op); err != nil {
		return ans, err
	}
	raw, err := n.rep.Meta(eventKey(storeline.Central, 1, ans.Seq))
	if err != nil || raw == nil {
		return ans, storeline.E(op, storeline.Internal, fmt.Errorf("transfer %d not found: %v", ans.Seq, err))
	}
	var w replication.WireEvent
	if err := msgpack.Unmarshal(raw, &w); err != nil {
		return ans, storeline.E(op, storeline.Internal, err)
	}
	ans.Event = &w
	return ans, nil
}

// PointsStatus is central's view of a customer's points in a programme:
// Balance, the sum of every holder's rights; Rights by holder (stores and
// "central"); Debt, points owed for returns of goods paid with spent
// points (positive).
type PointsStatus struct {
	Balance int64            `msgpack:"b" json:"balance"`
	Debt    int64            `msgpack:"d" json:"debt"`
	Rights  map[string]int64 `msgpack:"r" json:"rights"`
	Debts   map[string]int64 `msgpack:"x,omitempty" json:"debts,omitempty"`
	// Usual is the stores where the customer earned or paid points,
	// latest first, as central's sweep saw them (loyalty_auto.go).
	Usual []storeline.StoreID `msgpack:"u,omitempty" json:"usual_shops,omitempty"`
}

// Points returns central's view of a customer's points, from this node's
// state (a follower may lag the leader by what it has not yet applied).
func (n *Node) Points(prog storeline.ProgrammeID, cust storeline.CustomerID) (PointsStatus, error) {
	st := PointsStatus{Rights: map[string]int64{}}
	asset := storeline.PointsAsset(prog)
	bs, err := n.Balances(storeline.PointsAccountPrefix(prog, cust))
	if err != nil {
		return st, err
	}
	for _, b := range bs {
		if b.Asset != asset {
			continue
		}
		holder := b.Account[strings.LastIndexByte(b.Account, '/')+1:]
		st.Rights[holder] += b.Amount.IntPart()
		st.Balance += b.Amount.IntPart()
	}
	if v, err := n.rep.Meta(usualKey(prog, cust)); err != nil {
		return st, err
	} else if v != nil {
		var u usualRecord
		if err := msgpack.Unmarshal(v, &u); err != nil {
			return st, fmt.Errorf("usual shops of %s: %w", cust, err)
		}
		for _, s := range u.Shops {
			st.Usual = append(st.Usual, s.Store)
		}
	}
	debts, err := n.pointsDebts(prog, cust)
	if err != nil {
		return st, err
	}
	for store, owed := range debts {
		if st.Debts == nil {
			st.Debts = map[string]int64{}
		}
		st.Debts[store] = owed
		st.Debt += owed
	}
	return st, nil
}

// pointsDebts returns the points the customer owes by shop (positive),
// reading the customer's own debt accounts only: a shop asks at every
// card scan, under a short timeout, and the chain's other customers'
// debts are no concern of it. Debt accounts are named shop first
// (points-debt/<store>/<prog>/<cust>), so it seeks from one shop's
// accounts to the next shop's and reads the customer's account there:
// one seek and one read per shop holding any debt, whatever the number
// of customers who owe.
func (n *Node) pointsDebts(prog storeline.ProgrammeID, cust storeline.CustomerID) (map[string]int64, error) {
	const base = rpBal + "points-debt/"
	asset := storeline.PointsAsset(prog)
	out := map[string]int64{}
	err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		keys := rt.MetaKeys(base)
		defer keys.Close()
		for from := ""; ; {
			k, found := keys.Seek(from)
			if !found {
				return nil
			}
			store := k[len(base):]
			s, _, ok := strings.Cut(store, "/")
			if !ok {
				// Not an account of a shop's: step over this key.
				from = store + "\x00"
				continue
			}
			// '0' follows '/': every account of shop s sorts before it.
			from = s + "0"
			v, err := rt.Meta(base + storeline.PointsDebtAccount(prog, cust, storeline.StoreID(s))[len("points-debt/"):] + "\x00" + string(asset))
			if err != nil {
				return err
			}
			if v == nil {
				continue // the customer owes nothing at s
			}
			d, err := decimal.NewFromString(string(v))
			if err != nil {
				return fmt.Errorf("central: debt of %s at %s: %w", cust, s, err)
			}
			out[s] -= d.IntPart() // a settled debt (0) is listed, as before
		}
	})
	return out, err
}

// Requests and answers of the loyalty calls on the replication listener
// (msgpack, like the rest of that listener).
type (
	// ReserveRequest asks for Points of the customer's rights for the
	// receipt Receipt, at the calling store.
	ReserveRequest struct {
		Programme storeline.ProgrammeID `msgpack:"p"`
		Customer  storeline.CustomerID  `msgpack:"c"`
		Points    int64                 `msgpack:"n"`
		Receipt   storeline.EventID     `msgpack:"r"`
	}
	// PointsRequest asks for central's view of a customer's points.
	PointsRequest struct {
		Programme storeline.ProgrammeID `msgpack:"p"`
		Customer  storeline.CustomerID  `msgpack:"c"`
	}
)

// Loyalty paths on the replication listener.
const (
	PathLoyaltyReserve = "/v1/loyalty/reserve"
	PathLoyaltyPoints  = "/v1/loyalty/points"
)

// loyaltyHandler serves the loyalty calls beside the replication server's
// own, authenticated as it authenticates shops.
func (n *Node) loyaltyHandler(srv *replication.Server) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", srv.Handler())
	serve := func(path string, fn func(r *http.Request, caller storeline.StoreID, body []byte) (any, error)) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			caller, err := srv.Authenticate(r)
			var out any
			if err == nil {
				var body []byte
				if body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxLoyaltyBody)); err != nil {
					err = storeline.Errorf(storeline.TooLarge, "central.loyalty", "body over %d bytes", maxLoyaltyBody)
				} else {
					out, err = fn(r, caller, body)
				}
			}
			if err == nil {
				var b []byte
				if b, err = replication.Encode(out); err == nil {
					w.Header().Set("Content-Type", "application/msgpack")
					_, _ = w.Write(b)
					return
				}
			}
			n.problem(w, r, err)
		})
	}
	serve(PathLoyaltyReserve, func(r *http.Request, caller storeline.StoreID, body []byte) (any, error) {
		var q ReserveRequest
		if err := replication.Decode(body, &q); err != nil {
			return nil, err
		}
		if q.Receipt.IsZero() {
			return nil, storeline.Invalidf("receipt", "a reservation names its receipt")
		}
		return n.MoveRights(r.Context(), caller, q.Programme, q.Customer, q.Points, "reserve/"+q.Receipt.String(), "loyalty reservation")
	})
	serve(PathLoyaltyPoints, func(_ *http.Request, _ storeline.StoreID, body []byte) (any, error) {
		var q PointsRequest
		if err := replication.Decode(body, &q); err != nil {
			return nil, err
		}
		if err := storeline.CheckID("programme", string(q.Programme)); err != nil {
			return nil, err
		}
		if err := storeline.CheckID("customer", string(q.Customer)); err != nil {
			return nil, err
		}
		return n.Points(q.Programme, q.Customer)
	})
	serve(replication.PathShopOrders, n.serveShopOrders) // shop_orders.go
	return mux
}

// grantIn is a pre-grant on the head-office API: ID makes it idempotent.
type grantIn struct {
	ID        string                `json:"id"`
	Programme storeline.ProgrammeID `json:"programme"`
	Customer  storeline.CustomerID  `json:"customer"`
	Store     storeline.StoreID     `json:"store"`
	Points    int64                 `json:"points"`
}

type grantOut struct {
	Granted   int64 `json:"granted"`
	Available int64 `json:"available"`
}

// postLoyaltyGrant pre-grants rights to a store (POST /v1/loyalty/grants):
// 200 with the grant (the first one again for its id asked again alike),
// 409 naming points if central holds too few, 409 naming id if the id
// granted something else (invariant 4).
func (n *Node) postLoyaltyGrant(w http.ResponseWriter, r *http.Request) error {
	body, err := n.readBody(w, r)
	if err != nil {
		return err
	}
	var in grantIn
	if err := strictJSON(body, &in); err != nil {
		return err
	}
	if err := storeline.CheckID("id", in.ID); err != nil {
		return err
	}
	ans, err := n.MoveRights(r.Context(), in.Store, in.Programme, in.Customer, in.Points, grantKey+in.ID, "loyalty pre-grant")
	if err != nil {
		return err
	}
	if ans.Granted == 0 {
		return &storeline.Error{Kind: storeline.Conflict, Field: "points",
			Err: fmt.Errorf("central holds %d of the customer's points, %d asked", ans.Available, in.Points)}
	}
	writeJSON(w, http.StatusOK, grantOut{Granted: ans.Granted, Available: ans.Available})
	return nil
}

// getLoyaltyPoints shows central's view of a customer's points (GET
// /v1/loyalty/points/{programme}/{customer}).
func (n *Node) getLoyaltyPoints(w http.ResponseWriter, r *http.Request) error {
	prog, cust := r.PathValue("programme"), r.PathValue("customer")
	if err := storeline.CheckID("programme", prog); err != nil {
		return err
	}
	if err := storeline.CheckID("customer", cust); err != nil {
		return err
	}
	st, err := n.Points(storeline.ProgrammeID(prog), storeline.CustomerID(cust))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// loyaltyRoutes registers the head-office API's loyalty routes.
func (n *Node) loyaltyRoutes(h func(string, bool, func(http.ResponseWriter, *http.Request) error)) {
	h("POST /v1/loyalty/grants", true, n.postLoyaltyGrant)
	h("GET /v1/loyalty/points/{programme}/{customer}", false, n.getLoyaltyPoints)
}

// LoyaltyDebt is the points owed for returns over every customer and
// programme (what storeline_loyalty_debt_points reports), from this
// node's state: the running total (rpDebtOwed), one read. State written
// before the total existed, until an entry writes it, is scanned.
func (n *Node) LoyaltyDebt() (int64, error) {
	var owed int64
	err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		v, err := rt.Meta(rpDebtOwed)
		switch {
		case err != nil:
			return err
		case v == nil:
			owed, err = scanDebtOwed(rt)
			return err
		case len(v) != 8:
			return fmt.Errorf("central: points owed: a record of %d bytes", len(v))
		}
		owed = int64(ledger.U64(v))
		return nil
	})
	return owed, err
}

// strictJSON decodes one JSON object, refusing unknown fields and names
// in another case than v's (400 naming the field where the decoder says
// which).
func strictJSON(body []byte, v any) error {
	if err := checkShape(body, reflect.TypeOf(v)); err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return errMalformed(te.Field, "want a %s", te.Type)
		}
		return errMalformed("", "%v", err)
	}
	if d.More() {
		return errMalformed("", "one JSON object expected")
	}
	return nil
}

// loyaltyMetrics counts this node's rights moves and reports the points
// owed for returns, from FSM state (the same on every node).
type loyaltyMetrics struct {
	n                *Node
	granted, refused atomic.Uint64
	moves, debt      *prometheus.Desc

	// The sweep's memory of events read with nothing of loyalty
	// (loyalty_auto.go): per store, so it submits no entry for them.
	mu    sync.Mutex
	skips map[storeline.StoreID]sweepSkip
}

func newLoyaltyMetrics(n *Node) *loyaltyMetrics {
	l := prometheus.Labels{"node": n.cfg.NodeID}
	return &loyaltyMetrics{
		n: n,
		moves: prometheus.NewDesc("storeline_loyalty_reservations_total",
			"Rights moves (shops' reservations and pre-grants) this node submitted, by outcome (ok: granted, refused: central held too few).", []string{"outcome"}, l),
		debt: prometheus.NewDesc("storeline_loyalty_debt_points",
			"Points customers owe for returns of goods whose points were already spent, all programmes.", nil, l),
	}
}

func (m *loyaltyMetrics) moved(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.granted.Add(1)
	} else {
		m.refused.Add(1)
	}
}

func (m *loyaltyMetrics) Describe(ch chan<- *prometheus.Desc) { ch <- m.moves; ch <- m.debt }

func (m *loyaltyMetrics) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(m.moves, prometheus.CounterValue, float64(m.granted.Load()), "ok")
	ch <- prometheus.MustNewConstMetric(m.moves, prometheus.CounterValue, float64(m.refused.Load()), "refused")
	if d, err := m.n.LoyaltyDebt(); err == nil {
		ch <- prometheus.MustNewConstMetric(m.debt, prometheus.GaugeValue, float64(d))
	}
}
