package node

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/posbridge"
	"github.com/storeline/storeline/replication"
)

// The node's side of loyalty rights at head office (posbridge.PointsBroker):
// reservations of a shortfall and card balances, asked of central's
// replication listener with the shop's credentials, and the per-customer
// count of points paid offline, kept in the ledger's meta values.
//
// The request and answer shapes mirror central's (central/loyalty.go;
// node may not import central): msgpack with the same short keys. The
// loyalty tests in this package run them against a real central.

const (
	defaultLoyaltyTimeout = time.Second
	maxLoyaltyTimeout     = time.Minute
	// maxCachedPoints bounds the card balances kept for offline answers.
	maxCachedPoints = 10000
	// maxLoyaltyAnswer bounds an answer body from central.
	maxLoyaltyAnswer = 1 << 20
)

const (
	pathLoyaltyReserve = "/v1/loyalty/reserve"
	pathLoyaltyPoints  = "/v1/loyalty/points"
)

type reserveRequest struct {
	Programme storeline.ProgrammeID `msgpack:"p"`
	Customer  storeline.CustomerID  `msgpack:"c"`
	Points    int64                 `msgpack:"n"`
	Receipt   storeline.EventID     `msgpack:"r"`
}

type rightsAnswer struct {
	Granted   int64                  `msgpack:"g"`
	Available int64                  `msgpack:"a"`
	Seq       uint64                 `msgpack:"q,omitempty"`
	Event     *replication.WireEvent `msgpack:"e,omitempty"`
}

type pointsRequest struct {
	Programme storeline.ProgrammeID `msgpack:"p"`
	Customer  storeline.CustomerID  `msgpack:"c"`
}

type pointsStatus struct {
	Balance int64            `msgpack:"b"`
	Debt    int64            `msgpack:"d"`
	Rights  map[string]int64 `msgpack:"r"`
}

// pointsBroker implements posbridge.PointsBroker over central's
// replication listener.
type pointsBroker struct {
	led     *ledger.Ledger
	repl    *replication.Client
	central *centralCaller
	// now is the node's wall clock (nil: time.Now).
	now func() time.Time
	// failedAt is the Unix nanoseconds of the last loyalty call that could
	// not reach central (0: none since the last success): the shop stays
	// offline for loyalty until replication has synced after it.
	failedAt atomic.Int64

	mu     sync.Mutex
	cached map[string]posbridge.CentralPoints
}

func (n *Node) pointsBroker() (*pointsBroker, error) {
	c, err := n.newCentralCaller("node.loyalty", maxLoyaltyAnswer)
	if err != nil {
		return nil, err
	}
	return &pointsBroker{led: n.ledger, repl: n.repl, central: c, now: wallClock(n.cfg.Clock), cached: map[string]posbridge.CentralPoints{}}, nil
}

var _ posbridge.PointsBroker = (*pointsBroker)(nil)

// Online is true while replication reaches central, is not offline (a
// central that lost its quorum answers pulls at the node left but no
// push, nor any loyalty write), and no loyalty call has failed since its
// last sync.
func (b *pointsBroker) Online() bool {
	st := b.repl.Status()
	if !st.Reachable || st.State == "offline" {
		return false
	}
	f := b.failedAt.Load()
	return f == 0 || st.LastSync.UnixNano() > f
}

// call posts req to path at central (centralCaller.call) and decodes the
// answer into out; a call that cannot reach central marks the shop
// offline for loyalty until replication syncs again (Online).
func (b *pointsBroker) call(ctx context.Context, path string, req, out any) error {
	err := b.central.call(ctx, path, req, out)
	switch {
	case err == nil:
		b.failedAt.Store(0)
	case storeline.KindOf(err) == storeline.Unavailable:
		b.failedAt.Store(time.Now().UnixNano())
	}
	return err
}

// Reserve asks central for the shortfall and applies a granted transfer
// to the ledger before returning, so the caller's balance read sees it.
// If the answer is lost the grant still arrives by pull, and the till's
// retry of the receipt asks again with the same ID and gets the same
// answer.
func (b *pointsBroker) Reserve(ctx context.Context, prog storeline.ProgrammeID, cust storeline.CustomerID, receipt storeline.EventID, points int64) (int64, int64, error) {
	var ans rightsAnswer
	if err := b.call(ctx, pathLoyaltyReserve, reserveRequest{Programme: prog, Customer: cust, Points: points, Receipt: receipt}, &ans); err != nil {
		return 0, 0, err
	}
	if ans.Granted > 0 {
		if ans.Event == nil {
			return 0, 0, storeline.Errorf(storeline.Internal, "node.loyalty", "central granted %d points without the event", ans.Granted)
		}
		ev, err := replication.EventFromWire(*ans.Event)
		if err != nil {
			return 0, 0, storeline.E("node.loyalty", storeline.Internal, err)
		}
		if ev.Origin != storeline.Central {
			return 0, 0, storeline.Errorf(storeline.Internal, "node.loyalty", "a grant of origin %q", ev.Origin)
		}
		if _, err := b.led.ApplyRemote(ctx, ev); err != nil {
			return 0, 0, err
		}
	}
	return ans.Granted, ans.Available, nil
}

// Points asks central, keeping the answer for when it cannot.
func (b *pointsBroker) Points(ctx context.Context, prog storeline.ProgrammeID, cust storeline.CustomerID) (posbridge.CentralPoints, bool, error) {
	key := string(prog) + "\x00" + string(cust)
	var st pointsStatus
	err := b.call(ctx, pathLoyaltyPoints, pointsRequest{Programme: prog, Customer: cust}, &st)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		if cp, ok := b.cached[key]; ok && storeline.KindOf(err) == storeline.Unavailable {
			return cp, false, nil
		}
		return posbridge.CentralPoints{}, false, err
	}
	cp := posbridge.CentralPoints{Balance: st.Balance, Debt: st.Debt, CentralRights: st.Rights[string(storeline.Central)], AsOf: time.Now()}
	if _, ok := b.cached[key]; !ok && len(b.cached) >= maxCachedPoints {
		clear(b.cached) // crude, bounded; the ledger's figures stand in meanwhile
	}
	b.cached[key] = cp
	return cp, true, nil
}

// Offline cap counters. A customer's points paid offline are counted per
// business date in one record per customer and programme, which keeps the
// dates within OfflineCapDays of the latest date counted (of tomorrow, if
// a till's clock ran ahead of it: capFloor) and drops the rest: the
// records grow with customers who ever paid offline, not with days. A
// receipt dated further back than the record keeps (a till's
// queue resent after more than a week) counts as having used the whole
// cap, so it cannot pay points offline: the safe side.
const OfflineCapDays = 7

func offlineCapKey(prog storeline.ProgrammeID, cust storeline.CustomerID) string {
	return "loyalty/offline-cap/" + string(prog) + "/" + string(cust)
}

// offlineKey is the counter's key in builds before the per-customer
// record, still read for the dates they counted.
func offlineKey(prog storeline.ProgrammeID, cust storeline.CustomerID, date storeline.Date) string {
	return "loyalty/offline/" + string(date) + "/" + string(prog) + "/" + string(cust)
}

// offlineDay is one business date's count.
type offlineDay struct {
	Date storeline.Date `msgpack:"d"`
	N    int64          `msgpack:"n"`
}

func (b *pointsBroker) offlineDays(prog storeline.ProgrammeID, cust storeline.CustomerID) ([]offlineDay, error) {
	v, ok, err := b.led.Meta(offlineCapKey(prog, cust))
	if err != nil || !ok {
		return nil, err
	}
	var days []offlineDay
	if err := msgpack.Unmarshal(v, &days); err != nil {
		return nil, storeline.E("node.loyalty", storeline.Internal, fmt.Errorf("offline counter of %s: %w", cust, err))
	}
	return days, nil
}

// capFloor is the earliest date a record whose latest date is latest
// keeps: OfflineCapDays back from latest, or from tomorrow by the node's
// clock when latest is later (tomorrow in UTC is not before today in any
// store's zone). A till whose clock runs ahead dates its shift's receipts
// days ahead; that date must not push today's counts out of the record,
// which would lock the customer out of points offline everywhere until
// the calendar caught up.
func (b *pointsBroker) capFloor(latest storeline.Date) storeline.Date {
	t, err := time.Parse(time.DateOnly, string(latest))
	if err != nil {
		return latest
	}
	y, m, d := wallClock(b.now)().UTC().Date()
	if tomorrow := time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC); t.After(tomorrow) {
		t = tomorrow
	}
	return storeline.Date(t.AddDate(0, 0, -OfflineCapDays).Format(time.DateOnly))
}

func (b *pointsBroker) OfflineSpent(prog storeline.ProgrammeID, cust storeline.CustomerID, date storeline.Date) (int64, error) {
	days, err := b.offlineDays(prog, cust)
	if err != nil {
		return 0, err
	}
	var n int64
	if len(days) > 0 && date < b.capFloor(days[len(days)-1].Date) {
		return storeline.MaxPoints, nil // pruned: counted as the whole cap
	}
	for _, d := range days {
		if d.Date == date {
			n = d.N
		}
	}
	old, _, err := b.led.Meta(offlineKey(prog, cust, date))
	return n + int64(ledger.U64(old)), err
}

// AddOfflineSpent is called under posbridge's per-customer lock, so the
// read and write do not race for one customer.
func (b *pointsBroker) AddOfflineSpent(ctx context.Context, prog storeline.ProgrammeID, cust storeline.CustomerID, date storeline.Date, n int64) error {
	days, err := b.offlineDays(prog, cust)
	if err != nil {
		return err
	}
	found := false
	for i := range days {
		if days[i].Date == date {
			days[i].N += n
			found = true
		}
	}
	if !found {
		days = append(days, offlineDay{date, n})
		sort.Slice(days, func(i, j int) bool { return days[i].Date < days[j].Date })
	}
	floor := b.capFloor(days[len(days)-1].Date)
	kept := days[:0]
	for _, d := range days {
		if d.Date >= floor {
			kept = append(kept, d)
		}
	}
	v, err := msgpack.Marshal(kept)
	if err != nil {
		return storeline.E("node.loyalty", storeline.Internal, err)
	}
	return b.led.SetMeta(ctx, offlineCapKey(prog, cust), v)
}

// owedHandbacksKey keeps the earliest business date of receipts earned
// offline whose hand-back is owed (posbridge.HandbackMarks).
const owedHandbacksKey = "loyalty/handbacks-owed"

var _ posbridge.HandbackMarks = (*pointsBroker)(nil)

func (b *pointsBroker) OwedHandbacks() (storeline.Date, error) {
	v, _, err := b.led.Meta(owedHandbacksKey)
	return storeline.Date(v), err
}

func (b *pointsBroker) SetOwedHandbacks(ctx context.Context, since storeline.Date) error {
	return b.led.SetMeta(ctx, owedHandbacksKey, []byte(since))
}

// UsualWindowDays is head office's usual-shop window as the node assumes
// it: central.DefaultLoyaltyConfig's UsualWindow (node may not import
// central). A central configured with a longer window may pre-grant a
// shop again after it handed a lapsed customer's rights back; the shop
// then keeps them a whole window more (posbridge.releaseLapsed), so the
// two never trade the same rights back and forth faster than that.
const UsualWindowDays = 90

func seenKey(prog storeline.ProgrammeID, cust storeline.CustomerID) string {
	return "loyalty/seen/" + string(prog) + "/" + string(cust)
}

var _ posbridge.SeenMarks = (*pointsBroker)(nil)

// LastSeen is the latest business date the customer was seen at this
// shop, kept in the ledger's meta values (one small record per customer
// the shop saw or holds rights for).
func (b *pointsBroker) LastSeen(prog storeline.ProgrammeID, cust storeline.CustomerID) (storeline.Date, error) {
	v, _, err := b.led.Meta(seenKey(prog, cust))
	return storeline.Date(v), err
}

func (b *pointsBroker) SetLastSeen(ctx context.Context, prog storeline.ProgrammeID, cust storeline.CustomerID, d storeline.Date) error {
	return b.led.SetMeta(ctx, seenKey(prog, cust), []byte(d))
}

func (b *pointsBroker) UsualWindowDays() int { return UsualWindowDays }

// The hand-back sweep runs the tills' API's SweepPoints every
// Config.PointsSweepInterval while the node runs (a periodic job), so
// rights earned offline go back to central soon after it is reachable
// again, not at the customer's next earning receipt, and, once a day,
// the rights of customers who stopped shopping here.

// DefaultPointsSweep is the hand-back sweep's interval when the
// configuration leaves it zero. An idle sweep reads nothing: it only
// looks at the business days since the first receipt earned while
// central was unreachable whose hand-back is still owed (a date kept in
// the ledger, so a restart does not lose it).
const DefaultPointsSweep = 10 * time.Second

func (n *Node) startPointsSweep(s *posbridge.Server) {
	every := n.cfg.PointsSweepInterval
	if every == 0 {
		every = DefaultPointsSweep
	}
	if n.repl == nil || every < 0 {
		return
	}
	n.loySweep = n.startPeriodic("loyalty: hand-back sweep", every, max(every, time.Minute), func(ctx context.Context) error {
		_, err := s.SweepPoints(ctx)
		return err
	})
}

// closePoints closes the loyalty broker's and the orders client's idle
// connections to central, once no request can use them: they would
// otherwise stay open until the transport's idle timeout, past the node's
// Stop.
func (n *Node) closePoints() {
	if n.points != nil {
		n.points.central.hc.CloseIdleConnections()
		n.points = nil
	}
	if n.orders != nil {
		n.orders.central.hc.CloseIdleConnections()
		n.orders = nil
	}
}

// stopPointsSweep stops the sweep and waits for a run in progress, before
// the ledger closes.
func (n *Node) stopPointsSweep() {
	n.loySweep.end()
	n.loySweep = nil
}
