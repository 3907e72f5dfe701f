package central

// Head office's own loyalty moves, decided without a head-office call: a
// leader loop (loyaltyLoop) reads, per store, the events central has
// ingested since that store's cursor and submits what it saw of loyalty
// (OpLoyaltySweep). The op, in one FSM transaction:
//
//  1. advances the store's cursor only if it still is where the leader read
//     from (a resubmitted or stale sweep writes nothing): the same events
//     are never counted twice;
//  2. notes the customer's usual shops: those where the customer earned or
//     paid points (a receipt in the programme), with the latest business
//     date seen at each, believed at most up to the entry's date plus a day
//     (a till's clock ahead must not rank its shop first until that date);
//  3. nets debt: a return whose points were already spent left a debt at
//     its store (noted when the sweep reads the return, or found on the
//     debt account of one of the customer's shops); central's rights for
//     the customer (earnings handed back by any shop) pay it first, by a
//     transfer from central's rights to the debt account;
//  4. pre-grants: tops each usual shop's rights up to an equal part of
//     Share percent of the customer's balance, from central's rights and
//     never beyond them.
//
// Every move takes from central's account, read in the same transaction,
// and never more than it holds: grants and netting never exceed what the
// customer has (central's rights are a part of the balance). Each is an
// ordinary central transfer, fed to the store whose account it moves, like
// a reservation or a head-office pre-grant.
//
// A shop is usual for a customer while it saw them within WindowDays, the
// Shops most recent of them, and while its store exists. The leader's
// configuration decides the policy and sends it in the entry, so every
// replica applies the same.
//
// Events with nothing of loyalty cost no entry: the leader remembers how
// far past the stored cursor it read them, and the next entry that has
// something covers the whole range. The cursor follows the key order of
// stored events (epoch, seq): events of an older epoch that arrive after
// a newer one (a shop restored from a backup that still pushes its old
// tail) are not swept.

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// The ops of head office's own loyalty moves.
const (
	OpLoyaltySweep = "loyalty.sweep"
	OpLoyaltyPrune = "loyalty.prune"
)

// Meta keys: a store's sweep cursor (the event key last read), a
// customer's usual shops and debts, and the age index of stored
// reservation answers (ms since the epoch, big-endian, then store \0 key).
const (
	rpLoyCursor = "loy/t/"
	rpLoyUsual  = "loy/u/"
	rpRightsAge = "loy/ra/"
)

const (
	// maxSweepEvents bounds the events one sweep entry covers (and so its
	// transfers: a few per customer seen).
	maxSweepEvents = 256
	// maxUsualKept bounds the shops remembered per customer.
	maxUsualKept = 16
	// maxPruneAnswers bounds the answers one prune entry deletes.
	maxPruneAnswers = 2000
)

// LoyaltyConfig is head office's automatic loyalty policy.
type LoyaltyConfig struct {
	// SweepInterval is how often the leader reads newly ingested events
	// for usual shops, debts to net and pre-grants; 0 turns the sweep
	// (and so automatic pre-grants and netting) off.
	SweepInterval time.Duration
	// UsualShops is how many of the customer's most recent shops are
	// usual; UsualWindow how recent a visit must be.
	UsualShops  int
	UsualWindow time.Duration
	// GrantShare is the percent of a customer's balance pre-granted, in
	// equal parts, to the usual shops (0: none, netting only).
	GrantShare int
	// AnswerRetention is how long central keeps the answer to a
	// reservation, which makes a till's retry of the same receipt get
	// the same answer. A shop asks only while a till waits for a receipt,
	// and a till's retry of a receipt the shop did append is answered by
	// the shop without asking; the answer is needed only when the shop
	// lost the receipt after the grant (crash) and the till resends it:
	// within its shift, and a week covers a till left off over a long
	// weekend. A retry after the answer is pruned moves the rights to the
	// shop again if central still holds them: a move between holders,
	// never a spend, so the customer's balance is unaffected.
	AnswerRetention time.Duration
}

// DefaultLoyaltyConfig is the policy of DefaultConfig.
func DefaultLoyaltyConfig() LoyaltyConfig {
	return LoyaltyConfig{
		SweepInterval:   30 * time.Second,
		UsualShops:      3,
		UsualWindow:     90 * 24 * time.Hour,
		GrantShare:      50,
		AnswerRetention: 7 * 24 * time.Hour,
	}
}

func (c LoyaltyConfig) validate(bad func(field, format string, args ...any)) {
	if c.SweepInterval != 0 && (c.SweepInterval < 10*time.Millisecond || c.SweepInterval > 24*time.Hour) {
		bad("Loyalty.SweepInterval", "%s out of [10ms, 24h] (0: off)", c.SweepInterval)
	}
	if c.UsualShops < 1 || c.UsualShops > maxUsualKept {
		bad("Loyalty.UsualShops", "%d out of [1, %d]", c.UsualShops, maxUsualKept)
	}
	if c.UsualWindow < 24*time.Hour || c.UsualWindow > 5*366*24*time.Hour {
		bad("Loyalty.UsualWindow", "%s out of [1 day, 5 years]", c.UsualWindow)
	}
	if c.GrantShare < 0 || c.GrantShare > 100 {
		bad("Loyalty.GrantShare", "%d%% out of [0, 100]", c.GrantShare)
	}
	if c.AnswerRetention < time.Hour {
		bad("Loyalty.AnswerRetention", "%s below 1h", c.AnswerRetention)
	}
}

// grantPolicy is the part of LoyaltyConfig a sweep entry carries.
type grantPolicy struct {
	Shops      int `msgpack:"n"`
	WindowDays int `msgpack:"w"`
	Share      int `msgpack:"h"`
}

func (c LoyaltyConfig) policy() grantPolicy {
	return grantPolicy{Shops: c.UsualShops, WindowDays: int(c.UsualWindow / (24 * time.Hour)), Share: c.GrantShare}
}

// What a sweep saw of an event.
const (
	seenVisit    = 1 // a receipt in the programme: the shop is usual
	seenHandback = 2 // central's rights grew
	seenDebt     = 3 // a return left a debt at the shop
)

type sighting struct {
	Programme storeline.ProgrammeID `msgpack:"p"`
	Customer  storeline.CustomerID  `msgpack:"c"`
	Date      storeline.Date        `msgpack:"d,omitempty"`
	Kind      uint8                 `msgpack:"k"`
}

// sightingOf is what matters of ev to the sweep, if anything.
func sightingOf(ev *storeline.Event) (sighting, bool) {
	switch b := ev.Body.(type) {
	case *storeline.Receipt:
		if b.Programme != "" && b.Customer != "" {
			return sighting{b.Programme, b.Customer, ev.BusinessDate, seenVisit}, true
		}
	case *storeline.PointsHandback:
		return sighting{b.Programme, b.Customer, "", seenHandback}, true
	case *storeline.Return:
		if b.Points != nil && b.Points.Debt > 0 {
			return sighting{b.Points.Programme, b.Points.Customer, "", seenDebt}, true
		}
	}
	return sighting{}, false
}

type sweepPayload struct {
	Store  storeline.StoreID `msgpack:"s"`
	From   string            `msgpack:"f"`
	To     string            `msgpack:"t"`
	Seen   []sighting        `msgpack:"o"`
	Policy grantPolicy       `msgpack:"y"`
}

// SweepAnswer is what one sweep entry did: Stale if another sweep had
// moved the cursor (nothing written); points pre-granted and netted
// against debt.
type SweepAnswer struct {
	Stale   bool  `msgpack:"x,omitempty"`
	Granted int64 `msgpack:"g,omitempty"`
	Netted  int64 `msgpack:"n,omitempty"`
}

// usualShop is a shop where the customer earned or paid points, and the
// latest business date they did.
type usualShop struct {
	Store storeline.StoreID `msgpack:"s"`
	Date  storeline.Date    `msgpack:"d"`
}

// usualRecord is what central remembers of a customer for its own moves:
// their usual shops, latest first, and the stores where they may owe
// points.
type usualRecord struct {
	Shops []usualShop         `msgpack:"u,omitempty"`
	Debts []storeline.StoreID `msgpack:"d,omitempty"`
}

func (r *usualRecord) visit(s storeline.StoreID, d storeline.Date) {
	i := 0
	for ; i < len(r.Shops) && r.Shops[i].Store != s; i++ {
	}
	if i == len(r.Shops) {
		r.Shops = append(r.Shops, usualShop{s, d})
	} else if d > r.Shops[i].Date {
		r.Shops[i].Date = d
	}
	sortShops(r.Shops)
	if len(r.Shops) > maxUsualKept {
		r.Shops = r.Shops[:maxUsualKept]
	}
}

// capDates lowers every visit dated after latest to latest.
func (r *usualRecord) capDates(latest storeline.Date) {
	capped := false
	for i := range r.Shops {
		if r.Shops[i].Date > latest {
			r.Shops[i].Date, capped = latest, true
		}
	}
	if capped {
		sortShops(r.Shops)
	}
}

func (r *usualRecord) owes(s storeline.StoreID) {
	for _, x := range r.Debts {
		if x == s {
			return
		}
	}
	r.Debts = append(r.Debts, s)
	sort.Slice(r.Debts, func(a, b int) bool { return r.Debts[a] < r.Debts[b] })
}

// sortShops orders shops latest first, then by store.
func sortShops(shops []usualShop) {
	sort.SliceStable(shops, func(a, b int) bool {
		if shops[a].Date != shops[b].Date {
			return shops[a].Date > shops[b].Date
		}
		return shops[a].Store < shops[b].Store
	})
}

// usual returns the usual shops on the date today under pol.
func (r *usualRecord) usual(today time.Time, pol grantPolicy) []storeline.StoreID {
	cutoff := storeline.Date(today.AddDate(0, 0, -pol.WindowDays).Format("2006-01-02"))
	var out []storeline.StoreID
	for _, u := range r.Shops {
		if len(out) == pol.Shops {
			break
		}
		if u.Date >= cutoff {
			out = append(out, u.Store)
		}
	}
	return out
}

func usualKey(p storeline.ProgrammeID, c storeline.CustomerID) string {
	return rpLoyUsual + string(p) + "\x00" + string(c)
}

func loyaltyAutoOps() []Op {
	return []Op{{OpLoyaltySweep, applySweep}, {OpLoyaltyPrune, applyLoyaltyPrune}}
}

func applySweep(tx *Tx, payload []byte) ([]byte, error) {
	var p sweepPayload
	if err := msgpack.Unmarshal(payload, &p); err != nil {
		return nil, storeline.Invalidf("", "undecodable loyalty sweep: %v", err)
	}
	if err := storeline.CheckID("store", string(p.Store)); err != nil {
		return nil, err
	}
	if p.To <= p.From || len(p.Seen) > maxSweepEvents || p.Policy.Shops < 1 || p.Policy.Shops > maxUsualKept ||
		p.Policy.Share < 0 || p.Policy.Share > 100 || p.Policy.WindowDays < 1 {
		return nil, storeline.Invalidf("", "malformed loyalty sweep")
	}
	ck := rpLoyCursor + string(p.Store)
	cur, err := tx.Meta(ck)
	if err != nil {
		return nil, err
	}
	if string(cur) != p.From {
		return msgpack.Marshal(&SweepAnswer{Stale: true})
	}
	if err := tx.SetMeta(ck, []byte(p.To)); err != nil {
		return nil, err
	}
	// State written before the points owed were totalled gets its total
	// here, if no debt has moved since (loyalty.go, rpDebtOwed).
	if err := addDebtOwed(tx.ReplicaTxn, 0); err != nil {
		return nil, err
	}
	type pc struct {
		p storeline.ProgrammeID
		c storeline.CustomerID
	}
	recs := map[pc]*usualRecord{}
	var order []pc
	// A till's clock may run ahead: a visit dated past the entry's date
	// plus a day (the shop's time zone may be ahead of UTC) is believed
	// only up to that, or the shop would rank first until the date came.
	latest := storeline.Date(tx.At.AddDate(0, 0, 1).Format("2006-01-02"))
	for _, s := range p.Seen {
		if storeline.CheckID("programme", string(s.Programme)) != nil || storeline.CheckID("customer", string(s.Customer)) != nil {
			continue // a receipt of another build's shape: nothing to note
		}
		k := pc{s.Programme, s.Customer}
		r := recs[k]
		if r == nil {
			r = &usualRecord{}
			if v, err := tx.Meta(usualKey(k.p, k.c)); err != nil {
				return nil, err
			} else if v != nil {
				if err := msgpack.Unmarshal(v, r); err != nil {
					return nil, fmt.Errorf("usual shops of %s: %w", k.c, err)
				}
			}
			r.capDates(latest) // dates noted before visits were capped
			recs[k] = r
			order = append(order, k)
		}
		switch s.Kind {
		case seenVisit:
			r.visit(p.Store, min(s.Date, latest))
		case seenDebt:
			r.owes(p.Store)
		}
	}
	var ans SweepAnswer
	for i, k := range order {
		r := recs[k]
		netted, granted, err := settleAndGrant(tx, fmt.Sprintf("auto/%d/%d", tx.Index, i), k.p, k.c, r, p.Policy)
		if err != nil {
			return nil, err
		}
		ans.Netted += netted
		ans.Granted += granted
		v, err := msgpack.Marshal(r)
		if err != nil {
			return nil, err
		}
		if err := tx.SetMeta(usualKey(k.p, k.c), v); err != nil {
			return nil, err
		}
	}
	return msgpack.Marshal(&ans)
}

// settleAndGrant nets the customer's debts against central's rights, then
// tops the usual shops up to their part of the balance with what is left
// of central's rights. key makes the transfers' IDs unique.
func settleAndGrant(tx *Tx, key string, prog storeline.ProgrammeID, cust storeline.CustomerID, r *usualRecord, pol grantPolicy) (netted, granted int64, err error) {
	asset := storeline.PointsAsset(prog)
	central := storeline.PointsAccount(prog, cust, storeline.Central)
	have, err := pointsBalance(tx, central, asset)
	if err != nil || have <= 0 {
		return 0, 0, err
	}
	// Debts first: later earnings pay them before anything is granted,
	// also a debt at one of the customer's shops whose return this sweep
	// has not read yet (that store's events are swept after these).
	for _, u := range r.Shops {
		owed, err := pointsBalance(tx, storeline.PointsDebtAccount(prog, cust, u.Store), asset)
		if err != nil {
			return 0, 0, err
		}
		if owed < 0 {
			r.owes(u.Store)
		}
	}
	debts := r.Debts[:0]
	for _, s := range r.Debts {
		acct := storeline.PointsDebtAccount(prog, cust, s)
		owed, err := pointsBalance(tx, acct, asset)
		if err != nil {
			return 0, 0, err
		}
		pay := min(-owed, have)
		if pay > 0 {
			if err := moveFromCentral(tx, rightsEventID(s, key+"/debt"), "loyalty debt netted", key, central, acct, asset, pay); err != nil {
				return 0, 0, err
			}
			have -= pay
			netted += pay
		}
		if -owed > pay {
			debts = append(debts, s) // still owed
		}
	}
	r.Debts = debts
	// A store deleted since (a shop closed) is usual no more: rights
	// there could be spent nowhere (central moves none to an unknown
	// store, loyalty.go).
	shops := r.Shops[:0]
	for _, u := range r.Shops {
		ok, err := tx.GetMaster(storeline.KindStore, string(u.Store), nil)
		if err != nil {
			return 0, 0, err
		}
		if ok {
			shops = append(shops, u)
		}
	}
	r.Shops = shops
	usual := r.usual(tx.At, pol)
	if have <= 0 || pol.Share == 0 || len(usual) == 0 {
		return netted, 0, nil
	}
	rights, balance, err := holdersOf(tx, prog, cust)
	if err != nil {
		return 0, 0, err
	}
	plan := planGrants(balance, have, pol.Share, usual, rights)
	for _, g := range plan {
		to := storeline.PointsAccount(prog, cust, g.Store)
		if err := moveFromCentral(tx, rightsEventID(g.Store, key), "loyalty pre-grant to a usual shop", key, central, to, asset, g.Points); err != nil {
			return 0, 0, err
		}
		granted += g.Points
	}
	return netted, granted, nil
}

// shopGrant is points to move to a store.
type shopGrant struct {
	Store  storeline.StoreID
	Points int64
}

// planGrants tops each usual shop's rights up to floor(balance × share /
// 100 / len(usual)), in order, from central's rights (central) and never
// beyond them. The sum of the grants is at most central, and so at most
// the balance; a shop already at its part gets nothing.
func planGrants(balance, central int64, share int, usual []storeline.StoreID, rights map[storeline.StoreID]int64) []shopGrant {
	if balance <= 0 || central <= 0 || share <= 0 || len(usual) == 0 {
		return nil
	}
	// balance ≤ MaxPoints·holders and share ≤ 100: no overflow in int64
	// for any balance below 2^56.
	part := decimal.NewFromInt(balance).Mul(decimal.NewFromInt(int64(share))).
		Div(decimal.NewFromInt(int64(100 * len(usual)))).Floor().IntPart()
	var out []shopGrant
	for _, s := range usual {
		want := min(part-rights[s], central)
		if want <= 0 {
			continue
		}
		out = append(out, shopGrant{s, want})
		central -= want
	}
	return out
}

// holdersOf reads every holder's rights of the customer and their sum.
func holdersOf(tx *Tx, prog storeline.ProgrammeID, cust storeline.CustomerID) (map[storeline.StoreID]int64, int64, error) {
	asset := storeline.PointsAsset(prog)
	out := map[storeline.StoreID]int64{}
	var sum int64
	err := tx.ScanMeta(rpBal+storeline.PointsAccountPrefix(prog, cust), func(k string, v []byte) (bool, error) {
		acct, as, _ := strings.Cut(k[len(rpBal):], "\x00")
		if as != string(asset) {
			return true, nil
		}
		d, err := decimal.NewFromString(string(v))
		if err != nil {
			return false, fmt.Errorf("balance %s: %w", acct, err)
		}
		out[storeline.StoreID(acct[strings.LastIndexByte(acct, '/')+1:])] += d.IntPart()
		sum += d.IntPart()
		return true, nil
	})
	return out, sum, err
}

// moveFromCentral writes a central transfer of n points from central's
// account from to account to.
func moveFromCentral(tx *Tx, id storeline.EventID, why, ref, from, to string, asset storeline.Asset, n int64) error {
	_, err := centralTransfer(tx, id, why, ref, from, to, asset, n)
	return err
}

// centralTransfer writes a central-authored transfer of n points and
// returns its sequence number.
func centralTransfer(tx *Tx, id storeline.EventID, why, ref, from, to string, asset storeline.Asset, n int64) (uint64, error) {
	pos, _ := decimal.NewFromInt(n).MarshalBinary()
	neg, _ := decimal.NewFromInt(-n).MarshalBinary()
	tp := transferPayload{ID: id, Reason: why, Ref: ref, Postings: []replication.WirePosting{
		{Account: from, Asset: string(asset), Amount: neg},
		{Account: to, Asset: string(asset), Amount: pos},
	}}
	enc, err := msgpack.Marshal(&tp)
	if err != nil {
		return 0, err
	}
	body, err := applyTransfer(tx, enc)
	if err != nil {
		return 0, err
	}
	if body == nil {
		// applyTransfer found the ID applied already: callers derive a
		// new ID for every move, so this is a bug, refused as an error
		// value (an FSM op's other errors stop the node on every replica).
		return 0, &storeline.Error{Kind: storeline.Conflict, Field: "id", Err: fmt.Errorf("points transfer %s was applied before", id)}
	}
	var p replication.Position
	if err := msgpack.Unmarshal(body, &p); err != nil {
		return 0, fmt.Errorf("rights transfer position: %w", err)
	}
	return p.Seq, nil
}

// rightsAgeKey indexes a stored reservation answer by when it was stored.
func rightsAgeKey(at time.Time, answerKey string) string {
	return rpRightsAge + string(ledger.PutU64(uint64(at.UnixMilli()))) + answerKey[len(rpRights):]
}

type loyaltyPrunePayload struct {
	BeforeMs int64 `msgpack:"b"`
}

// applyLoyaltyPrune deletes reservation answers stored before BeforeMs,
// oldest first, at most maxPruneAnswers an entry.
func applyLoyaltyPrune(tx *Tx, payload []byte) ([]byte, error) {
	var p loyaltyPrunePayload
	if err := msgpack.Unmarshal(payload, &p); err != nil {
		return nil, storeline.Invalidf("", "undecodable loyalty prune: %v", err)
	}
	var dead []string
	err := tx.ScanMeta(rpRightsAge, func(k string, _ []byte) (bool, error) {
		if len(k) < len(rpRightsAge)+8 || int64(ledger.U64([]byte(k[len(rpRightsAge):len(rpRightsAge)+8]))) >= p.BeforeMs {
			return false, nil
		}
		dead = append(dead, k)
		return len(dead) < maxPruneAnswers, nil
	})
	if err != nil {
		return nil, err
	}
	for _, k := range dead {
		answer := k[len(rpRightsAge)+8:] // store \0 key
		if err := tx.SetMeta(rpRights+answer, nil); err != nil {
			return nil, err
		}
		if store, key, _ := strings.Cut(answer, "\x00"); strings.HasPrefix(key, grantKey) {
			// What the grant granted goes with its answer (loyalty.go,
			// invariant 4), if it is this answer's grant.
			g := rpGrant + key[len(grantKey):]
			rec, ok, err := getMetaRecord[grantRecord](tx.ReplicaTxn, g, "grant "+key[len(grantKey):])
			if err != nil {
				return nil, err
			}
			if ok && string(rec.Store) == store {
				if err := tx.SetMeta(g, nil); err != nil {
					return nil, err
				}
			}
		}
		if err := tx.SetMeta(k, nil); err != nil {
			return nil, err
		}
	}
	return msgpack.Marshal(len(dead))
}

// loyaltyLoop runs the sweep and the prune of reservation answers while
// this node leads.
func (n *Node) loyaltyLoop() {
	defer n.wg.Done()
	every := n.cfg.Loyalty.SweepInterval
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-n.quit:
			return
		case <-t.C:
		}
		if !n.IsLeader() {
			continue
		}
		ctx, cancel := n.loopContext(10 * n.cfg.ApplyTimeout)
		if _, err := n.SweepLoyalty(ctx); err != nil {
			n.log.Warn("central: loyalty sweep", "err", err)
		}
		if _, err := n.PruneLoyaltyAnswers(ctx, time.Now().Add(-n.cfg.Loyalty.AnswerRetention)); err != nil {
			n.log.Warn("central: loyalty prune", "err", err)
		}
		cancel()
	}
}

// SweepLoyalty reads every store's events ingested since its cursor and
// submits what they show of loyalty (see the top of this file), until
// every store is swept. It is safe on any node and at any time: a sweep
// that lost a race to another writes nothing and is read again.
func (n *Node) SweepLoyalty(ctx context.Context) (SweepAnswer, error) {
	const op = "central.SweepLoyalty"
	var total SweepAnswer
	var stores []storeline.StoreID
	if err := n.rep.ScanMaster(storeline.KindStore, "", func(r storeline.Record) error {
		stores = append(stores, r.(*storeline.Store).ID)
		return nil
	}); err != nil {
		return total, storeline.E(op, storeline.Internal, err)
	}
	pol := n.cfg.Loyalty.policy()
	for _, s := range stores {
		for stale := 0; ; {
			if err := ctx.Err(); err != nil {
				return total, storeline.E(op, storeline.Unavailable, err)
			}
			cur, err := n.rep.Meta(rpLoyCursor + string(s))
			if err != nil {
				return total, storeline.E(op, storeline.Internal, err)
			}
			p, err := n.readSweep(s, string(cur), n.loy.skipped(s, string(cur)))
			if err != nil {
				return total, storeline.E(op, storeline.Internal, err)
			}
			if p.To == "" {
				break // nothing new
			}
			if len(p.Seen) == 0 {
				// Nothing of loyalty: no entry, only this node remembers
				// how far it read. An entry that has something carries
				// the whole range from the stored cursor.
				n.loy.skip(s, p.From, p.To)
				continue
			}
			p.Policy = pol
			body, err := msgpack.Marshal(&p)
			if err != nil {
				return total, storeline.E(op, storeline.Internal, err)
			}
			res, err := n.Submit(ctx, OpLoyaltySweep, "", body)
			if err == nil {
				err = res.Err()
			}
			if err != nil {
				return total, err
			}
			var ans SweepAnswer
			if err := msgpack.Unmarshal(res.Body, &ans); err != nil {
				return total, storeline.E(op, storeline.Internal, err)
			}
			if ans.Stale {
				// Another sweep moved the cursor; this node reads it once
				// it has applied that entry.
				if stale++; stale > 3 {
					break
				}
				if err := n.waitApplied(ctx, res.Index, op); err != nil {
					return total, err
				}
				continue
			}
			total.Granted += ans.Granted
			total.Netted += ans.Netted
			if err := n.waitApplied(ctx, res.Index, op); err != nil {
				return total, err
			}
		}
	}
	return total, nil
}

// readSweep reads, from this node's state, up to maxSweepEvents events of
// store after from (at or after the stored cursor cur, which the entry
// names); To is empty when there are none.
func (n *Node) readSweep(store storeline.StoreID, cur, from string) (sweepPayload, error) {
	p := sweepPayload{Store: store, From: cur}
	prefix := rpEvent + string(store) + "\x00"
	err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		start := ""
		if strings.HasPrefix(from, prefix) {
			start = from[len(prefix):]
		}
		read := 0
		return rt.ScanMetaFrom(prefix, start, func(k string, v []byte) (bool, error) {
			if k <= from {
				return true, nil
			}
			ev, err := decodeEvent(v)
			if err != nil {
				return false, err
			}
			if s, ok := sightingOf(&ev); ok {
				p.Seen = append(p.Seen, s)
			}
			p.To = k
			read++
			return read < maxSweepEvents, nil
		})
	})
	return p, err
}

// sweepSkip is how far this node read a store's events past the stored
// cursor base without finding anything of loyalty.
type sweepSkip struct{ base, at string }

// skipped returns where to read store's events from: past what this node
// found nothing in, if the stored cursor is still cur.
func (m *loyaltyMetrics) skipped(store storeline.StoreID, cur string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k, ok := m.skips[store]; ok && k.base == cur {
		return k.at
	}
	return cur
}

func (m *loyaltyMetrics) skip(store storeline.StoreID, base, at string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.skips == nil {
		m.skips = map[storeline.StoreID]sweepSkip{}
	}
	m.skips[store] = sweepSkip{base, at}
}

// PruneLoyaltyAnswers deletes the answers to reservations stored before
// before (see LoyaltyConfig.AnswerRetention), a bounded batch per entry,
// and returns how many went. It submits nothing when none is that old.
func (n *Node) PruneLoyaltyAnswers(ctx context.Context, before time.Time) (int, error) {
	const op = "central.PruneLoyaltyAnswers"
	total := 0
	for {
		old := false
		if err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
			return rt.ScanMeta(rpRightsAge, func(k string, _ []byte) (bool, error) {
				old = len(k) >= len(rpRightsAge)+8 && int64(ledger.U64([]byte(k[len(rpRightsAge):len(rpRightsAge)+8]))) < before.UnixMilli()
				return false, nil
			})
		}); err != nil {
			return total, storeline.E(op, storeline.Internal, err)
		}
		if !old {
			return total, nil
		}
		body, _ := msgpack.Marshal(&loyaltyPrunePayload{BeforeMs: before.UnixMilli()})
		res, err := n.Submit(ctx, OpLoyaltyPrune, "", body)
		if err == nil {
			err = res.Err()
		}
		if err != nil {
			return total, err
		}
		var k int
		if err := msgpack.Unmarshal(res.Body, &k); err != nil {
			return total, storeline.E(op, storeline.Internal, err)
		}
		total += k
		if err := n.waitApplied(ctx, res.Index, op); err != nil || k == 0 {
			return total, err
		}
	}
}
