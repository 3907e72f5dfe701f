package posbridge

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/pricing"
)

// Loyalty at the node: a receipt with a loyalty card earns points by the
// programme's rates, and may pay with points, which the node converts to
// money by the programme's ratio. The points a shop may spend for a
// customer are its rights in the customer's bounded counter, kept as the
// balance of storeline.PointsAccount(programme, customer, store): earning
// here adds to it, rights head office moves here add to it, paying here
// and handing rights back take from it, and only this store's events take
// from it. So a spend checked against that balance, with no other spend
// for the customer between the check and the durable append, never
// overdraws, online or not.
//
// Online (Config.Points set and central reachable), a spend beyond the
// shop's rights first reserves the shortfall at central, keyed by the
// receipt's ID; the granted rights arrive as a central event applied to
// the ledger before the check. Offline, only the rights held here may be
// spent, and at most the programme's DailyOfflineCap per customer and
// business day. After a receipt, a shop online hands rights above
// Config.PointsFloat back to central; receipts earned offline are handed
// back by SweepPoints once central is reachable again, and so, once a
// day, are the rights above the float (pre-grants included) of customers
// not seen here for longer than central's usual-shop window, which only
// this shop may hand back (releaseLapsed). A return takes
// back the points its receipt earned (or, without the receipt, what the
// returned lines earn at the card's programme); what the customer has
// already spent becomes a recorded debt, never a refusal, which central
// nets against the customer's later earnings. A return of a receipt paid
// partly with points gives that part back to the customer's rights here
// as points (reversePoints), never as money; without the receipt the
// node cannot know, and the till refunds in money as before.

// PointsBroker is head office's side of loyalty as the node reaches it;
// nil for a standalone node (its own rights only, no offline cap).
type PointsBroker interface {
	// Online reports whether central answered lately.
	Online() bool
	// Reserve asks central to move points of the customer's rights here
	// for receipt; asking again for the same receipt gives the same
	// answer. On return, granted rights are in the ledger. available is
	// central's rights for the customer after the answer. An error of
	// kind Unavailable means central could not be reached (outcome
	// unknown: a grant still arrives through replication).
	Reserve(ctx context.Context, prog storeline.ProgrammeID, cust storeline.CustomerID, receipt storeline.EventID, points int64) (granted, available int64, err error)
	// Points is central's view of the customer's points, asked with a
	// short timeout; when central cannot answer, the last answer kept
	// (fresh false), or an Unavailable error if there is none.
	Points(ctx context.Context, prog storeline.ProgrammeID, cust storeline.CustomerID) (p CentralPoints, fresh bool, err error)
	// OfflineSpent is the points the customer paid here on date while
	// central was unreachable; AddOfflineSpent adds n, durably, before the
	// receipt that pays them is appended.
	OfflineSpent(prog storeline.ProgrammeID, cust storeline.CustomerID, date storeline.Date) (int64, error)
	AddOfflineSpent(ctx context.Context, prog storeline.ProgrammeID, cust storeline.CustomerID, date storeline.Date, n int64) error
}

// CentralPoints is head office's view of a customer's points: the balance
// over every holder of rights, the points owed for returns, and central's
// own rights (what a reservation may take); AsOf is when it was asked.
type CentralPoints struct {
	Balance, Debt, CentralRights int64
	AsOf                         time.Time
}

// pointsLocks serialise the check and append of points payments (and
// hand-backs) per customer (striped: a bounded set of locks), and keep
// what the hand-back sweep owes.
type pointsLocks struct {
	m     [64]sync.Mutex
	sweep sweepState
	lapse lapseState
}

func (l *pointsLocks) lock(c storeline.CustomerID) func() {
	h := fnv.New32a()
	h.Write([]byte(c))
	m := &l.m[h.Sum32()%uint32(len(l.m))]
	m.Lock()
	return m.Unlock
}

// loyaltyMetrics are the node's loyalty counters.
type loyaltyMetrics struct {
	reservations *prometheus.CounterVec
	capRefused   prometheus.Counter
	debt         prometheus.Counter
	handedBack   prometheus.Counter
}

func newLoyaltyMetrics(reg prometheus.Registerer) (loyaltyMetrics, error) {
	m := loyaltyMetrics{
		reservations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "storeline_loyalty_reservations_total",
			Help: "Reservations of a points shortfall at central, by outcome (ok, refused: central held too few, unavailable: central unreachable).",
		}, []string{"outcome"}),
		capRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "storeline_loyalty_offline_cap_refusals_total",
			Help: "Points payments refused offline because they passed the customer's daily offline cap.",
		}),
		debt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "storeline_loyalty_debt_points_total",
			Help: "Points recorded as customers' debt by returns of goods whose points were already spent.",
		}),
		handedBack: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "storeline_loyalty_handed_back_points_total",
			Help: "Points of rights handed back to central above the shop's float.",
		}),
	}
	for _, o := range []string{"ok", "refused", "unavailable"} {
		m.reservations.WithLabelValues(o)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.reservations, m.capRefused, m.debt, m.handedBack} {
			if err := reg.Register(c); err != nil {
				return m, fmt.Errorf("register loyalty metrics: %w", err)
			}
		}
	}
	return m, nil
}

// convertPoints picks the receipt's programme (for a known customer) and
// fills each points payment's amount from its points. A till that sends
// an amount must send the points' worth. Points split over several
// payments are worth what their sum is: each payment takes the worth of
// the points up to and including it less the worth of those before, so
// rounding each payment on its own cannot pay more than the points are
// worth together (nor more than the programme's share of the receipt).
func (s *Server) convertPoints(rc *storeline.Receipt) (*storeline.LoyaltyProgramme, error) {
	var prog *storeline.LoyaltyProgramme
	var card storeline.CardRecord
	if rc.Customer != "" {
		// Only a live loyalty card earns and pays: a blocked card (lost,
		// stolen) or a staff card does neither.
		if err := s.led.LookupMaster(storeline.KindCard, storeline.CardCodeKey(rc.Card), &card); err != nil && !errors.Is(err, storeline.NotFound) {
			return nil, err
		}
	}
	if rc.Customer != "" && card.Kind == storeline.LoyaltyCard && !card.Blocked {
		rules, err := s.cat.Rules()
		if err != nil {
			return nil, err
		}
		if p, ok := rules.ProgrammeFor(rc.Currency); ok {
			prog, rc.Programme = p, p.ID
		}
	}
	var before int64 // points of the points payments before this one
	for i := range rc.Payments {
		p := &rc.Payments[i]
		if p.Method != storeline.Points {
			continue
		}
		f := fmt.Sprintf("payments[%d]", i)
		if prog == nil {
			return nil, storeline.Invalidf(f+".method", "points are paid with the loyalty card of a known customer in a shop with a loyalty programme")
		}
		if p.Points <= 0 || p.Points > storeline.MaxPoints {
			return nil, storeline.Invalidf(f+".points", "points %d out of [1, %d]", p.Points, int64(storeline.MaxPoints))
		}
		worth := pricing.PointsMoney(prog, rc.Currency, before+p.Points).Sub(pricing.PointsMoney(prog, rc.Currency, before))
		before += p.Points
		if !p.Amount.IsZero() && !p.Amount.Equal(worth) {
			return nil, storeline.Invalidf(f+".amount", "%d points are worth %s, not %s", p.Points, money(rc.Currency, worth), p.Amount)
		}
		if !worth.IsPositive() {
			return nil, storeline.Invalidf(f+".points", "%d points are worth nothing in %s", p.Points, rc.Currency)
		}
		p.Amount = worth
	}
	return prog, nil
}

// errPointsShort is the cause of a refusal of a points payment beyond what
// the shop may take now.
var errPointsShort = errors.New("points beyond what this shop may take now")

// rights is the shop's rights for the customer: its account's balance.
func (s *Server) rights(prog storeline.ProgrammeID, c storeline.CustomerID) (int64, error) {
	bal, err := s.led.Balance(storeline.PointsAccount(prog, c, s.cfg.Store), storeline.PointsAsset(prog))
	return bal.IntPart(), err
}

// reservePoints sets the points the receipt earns, and checks its points
// payments against the shop's rights (reserving a shortfall at central
// when online), the daily offline cap (offline), and the programme's
// share of the receipt. On success the customer's lock is held until the
// returned function is called, which the caller does after the append.
func (s *Server) reservePoints(ctx context.Context, id storeline.EventID, date storeline.Date, rc *storeline.Receipt, prog *storeline.LoyaltyProgramme) (func(), error) {
	nop := func() {}
	if prog == nil {
		return nop, nil
	}
	rules, err := s.cat.Rules()
	if err != nil {
		return nop, err
	}
	lines := make([]pricing.AccrualLine, len(rc.Lines))
	for i, l := range rc.Lines {
		it, err := s.cat.Item(l.Item)
		if err != nil {
			return nop, err
		}
		lines[i] = pricing.AccrualLine{Item: l.Item, Group: it.Group, Total: l.Total}
	}
	_, rc.Earned = pricing.Accrue(rules, prog, rc.Currency, lines)
	// A visit here, as central counts one: the rights here stay a window.
	s.noteSeen(ctx, prog.ID, rc.Customer, date)
	var spend int64
	at := -1
	for i, p := range rc.Payments {
		if p.Method == storeline.Points {
			spend += p.Points
			at = i
		}
	}
	if spend == 0 {
		return nop, nil
	}
	unlock := s.points.lock(rc.Customer)
	ok := false
	defer func() {
		if !ok {
			unlock()
		}
	}()
	// A concurrent copy of this receipt may have been appended while this
	// one waited: its retry is answered by the append, not refused.
	if prior, err := s.prior(id, storeline.KindReceipt); err != nil || prior != nil {
		ok = err == nil
		return unlock, err
	}
	rights, err := s.rights(prog.ID, rc.Customer)
	if err != nil {
		return nop, err
	}
	b := s.cfg.Points
	offline := b != nil && !b.Online()
	centralHas := int64(0)
	byShare := pricing.Spendable(prog, storeline.MaxPoints, rc.Total, -1)
	if short := spend - rights; short > 0 && spend <= byShare && b != nil {
		granted, avail, err := b.Reserve(ctx, prog.ID, rc.Customer, id, short)
		switch {
		case err == nil:
			offline, centralHas = false, avail
			if granted > 0 {
				s.lm.reservations.WithLabelValues("ok").Inc()
			} else {
				s.lm.reservations.WithLabelValues("refused").Inc()
			}
			if rights, err = s.rights(prog.ID, rc.Customer); err != nil {
				return nop, err
			}
		case storeline.KindOf(err) == storeline.Unavailable:
			s.lm.reservations.WithLabelValues("unavailable").Inc()
			offline = true
		default:
			return nop, err
		}
	}
	capLeft := int64(-1)
	if offline {
		used, err := b.OfflineSpent(prog.ID, rc.Customer, date)
		if err != nil {
			return nop, err
		}
		capLeft = max(prog.DailyOfflineCap-used, 0)
	}
	if may := pricing.Spendable(prog, rights, rc.Total, capLeft); spend > may {
		s.m.pointsRefused.Inc()
		why := fmt.Sprintf("rights here %d, at most %s%% of the receipt", rights, prog.MaxShare)
		switch {
		case offline && pricing.Spendable(prog, rights, rc.Total, -1) > may:
			s.lm.capRefused.Inc()
			why += fmt.Sprintf("; offline, %d left of the customer's daily cap of %d", capLeft, prog.DailyOfflineCap)
		case offline:
			why += "; offline: central cannot be asked for more"
		case b != nil:
			// Online, a retry with fewer points may reserve what central has.
			may = pricing.Spendable(prog, rights+centralHas, rc.Total, -1)
			why += fmt.Sprintf(", central holds %d more", centralHas)
		}
		return nop, &storeline.Error{Kind: storeline.Conflict, Field: fmt.Sprintf("payments[%d].points", at),
			Err: fmt.Errorf("%w: %d points asked, %d may be taken now (%s)", errPointsShort, spend, may, why)}
	}
	if offline {
		// Counted before the append: a crash between the two counts points
		// never paid against the cap, which errs on the safe side.
		// Not cancelled with the till: a count left queued in the ledger
		// after the lock is released could land after a later one.
		if err := b.AddOfflineSpent(context.WithoutCancel(ctx), prog.ID, rc.Customer, date, spend); err != nil {
			return nop, err
		}
	}
	ok = true
	return unlock, nil
}

// derivedID is the ID of an event the node authors because of another
// (a hand-back after a receipt): a function of that event's ID, so a
// retry derives the same one.
func derivedID(why string, id storeline.EventID) storeline.EventID {
	return storeline.DerivedEventID(why + "\x00" + string(id[:]))
}

// handBack hands the points a receipt earned back to central, as far as
// the customer's rights here pass the float, when central is reachable:
// rights held by one shop are of no use to the customer's next visit
// elsewhere. Rights central pre-granted here stay while the customer
// shops here (see releaseLapsed for when they stop). A customer who owes
// points here (a return of goods paid with spent points) hands the whole
// of the earnings back, float or not: central nets them against the debt
// before it grants anything (central/loyalty_auto.go), so later earnings
// pay the debt first. Offline, the receipt is left to SweepPoints. At
// most once per receipt (the hand-back's ID derives from the receipt's).
// A failure is logged: the receipt is already durable.
func (s *Server) handBack(ctx context.Context, ev storeline.Event) {
	rc, ok := ev.Body.(*storeline.Receipt)
	b := s.cfg.Points
	if !ok || rc.Programme == "" || rc.Earned == 0 || b == nil {
		return
	}
	if !b.Online() {
		s.owe(context.WithoutCancel(ctx), ev.BusinessDate)
		return
	}
	if _, err := s.handBackOnce(ctx, ev, rc); err != nil {
		s.log.Warn("loyalty: hand-back failed", "receipt", ev.ID, "err", err)
		s.owe(context.WithoutCancel(ctx), ev.BusinessDate) // the sweep tries again
	}
}

// handBackOnce appends the receipt's hand-back if it has none yet and the
// rights here call for one; it returns the points handed back now.
func (s *Server) handBackOnce(ctx context.Context, ev storeline.Event, rc *storeline.Receipt) (int64, error) {
	id := derivedID("points-handback", ev.ID)
	unlock := s.points.lock(rc.Customer)
	defer unlock()
	// Asked first: a hand-back appended earlier may have moved other
	// points than the rights now call for, and appending it again with
	// another body would conflict.
	_, err := s.led.Event(s.cfg.Store, id)
	if errors.Is(err, storeline.ErrPruned) {
		return 0, nil // made, and pruned by retention since
	}
	if err == nil || !errors.Is(err, storeline.NotFound) {
		return 0, err
	}
	rights, err := s.rights(rc.Programme, rc.Customer)
	if err != nil {
		return 0, err
	}
	keep := s.cfg.PointsFloat
	debt, err := s.led.Balance(storeline.PointsDebtAccount(rc.Programme, rc.Customer, s.cfg.Store), storeline.PointsAsset(rc.Programme))
	if err != nil {
		return 0, err
	}
	if debt.IsNegative() {
		keep = 0
	}
	if rights <= keep {
		return 0, nil
	}
	n := min(rights-keep, rc.Earned)
	h := &storeline.PointsHandback{Programme: rc.Programme, Customer: rc.Customer, Points: n}
	// Not cancelled with the caller: the lock is released only once the
	// hand-back's outcome is known, or a spend could read the rights it
	// takes.
	_, created, err := s.appendEvent(context.WithoutCancel(ctx), id, s.cfg.Now(), ev.BusinessDate, h)
	if err != nil || !created {
		return 0, err
	}
	s.lm.handedBack.Add(float64(n))
	return n, nil
}

// sweepState remembers the earliest business date of an earning receipt
// taken while central was unreachable, whose hand-back SweepPoints owes
// ("" : none). A broker that is also a HandbackMarks keeps it durably, so
// a restart does not lose it; it is read once, at the first use.
type sweepState struct {
	mu sync.Mutex
	// since and until bound the business dates of receipts whose
	// hand-back is owed and not yet being swept ("" : none); inflight is
	// the since of a sweep under way, which the durable mark keeps until
	// that sweep ends, so a crash mid-sweep reads its dates again.
	since, until storeline.Date
	inflight     storeline.Date
	loaded       bool
}

// HandbackMarks is what a PointsBroker may also keep, durably: the
// earliest business date of receipts whose hand-back is still owed.
type HandbackMarks interface {
	OwedHandbacks() (storeline.Date, error)
	// SetOwedHandbacks stores since ("" : none owed).
	SetOwedHandbacks(ctx context.Context, since storeline.Date) error
}

// owe notes that a receipt of date d earned while offline.
func (s *Server) owe(ctx context.Context, d storeline.Date) {
	if d == "" {
		return
	}
	w := &s.points.sweep
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := s.loadOwed(); err != nil {
		s.log.Warn("loyalty: owed hand-backs", "err", err)
	}
	if d > w.until {
		w.until = d
	}
	if w.since != "" && w.since <= d {
		return
	}
	w.since = d
	durable := d
	if w.inflight != "" && w.inflight < durable {
		durable = w.inflight
	}
	if m, ok := s.cfg.Points.(HandbackMarks); ok {
		if err := m.SetOwedHandbacks(ctx, durable); err != nil {
			s.log.Warn("loyalty: owed hand-backs", "err", err)
		}
	}
}

// loadOwed merges the durable mark into memory once; w.mu is held.
func (s *Server) loadOwed() error {
	w := &s.points.sweep
	m, ok := s.cfg.Points.(HandbackMarks)
	if w.loaded || !ok {
		return nil
	}
	d, err := m.OwedHandbacks()
	if err != nil {
		return err
	}
	if d != "" && (w.since == "" || d < w.since) {
		w.since = d
	}
	w.loaded = true
	return nil
}

// SweepPoints hands back, while central is reachable, the rights above
// the float that receipts earned while it was not (at most once per
// receipt, as after an online receipt), and, once a business day, the
// rights above the float of customers who stopped shopping here
// (releaseLapsed), and returns the points handed back. The node runs it
// on a timer, so a shop hands back on reconnect rather than at the
// customer's next earning receipt. It reads only the business days since
// the first such receipt; offline it does nothing.
func (s *Server) SweepPoints(ctx context.Context) (int64, error) {
	b := s.cfg.Points
	if b == nil || !b.Online() {
		return 0, nil
	}
	total, err := s.sweepOwed(ctx)
	if err != nil {
		return total, err
	}
	n, err := s.releaseLapsed(ctx)
	return total + n, err
}

// sweepOwed hands back what receipts earned while central was
// unreachable (SweepPoints).
func (s *Server) sweepOwed(ctx context.Context) (int64, error) {
	b := s.cfg.Points
	w := &s.points.sweep
	w.mu.Lock()
	err := s.loadOwed()
	since, until := w.since, w.until
	w.since, w.until, w.inflight = "", "", since
	w.mu.Unlock()
	if err != nil || since == "" {
		return 0, err
	}
	retry := func() {
		w.mu.Lock()
		w.inflight = ""
		w.mu.Unlock()
		s.owe(ctx, since) // read again next time; hand-backs are once per receipt
		if until > since {
			s.owe(ctx, until)
		}
	}
	_, loc, err := s.store()
	if err != nil {
		retry()
		return 0, err
	}
	// Up to the latest date owed too: a till whose clock runs ahead dates
	// receipts after today here.
	to := max(storeline.DateOf(s.cfg.Now(), loc), until)
	var total int64
	err = s.led.EventsByDate(since, to, func(ev storeline.Event) error {
		rc, ok := ev.Body.(*storeline.Receipt)
		if !ok || ev.Origin != s.cfg.Store || rc.Programme == "" || rc.Earned == 0 {
			return nil
		}
		if !b.Online() {
			return errSweepOffline
		}
		n, err := s.handBackOnce(ctx, ev, rc)
		total += n
		return err
	})
	if err != nil {
		retry()
		if errors.Is(err, errSweepOffline) {
			return total, nil
		}
		return total, err
	}
	// Done: the durable mark becomes what was owed meanwhile, if anything.
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inflight = ""
	if m, ok := b.(HandbackMarks); ok {
		if err := m.SetOwedHandbacks(ctx, w.since); err != nil {
			return total, err
		}
	}
	return total, nil
}

var errSweepOffline = errors.New("central unreachable during the sweep")

// SeenMarks is what a PointsBroker may also keep, durably: per customer,
// the latest business date they were seen at this shop (a receipt with
// their loyalty card in the programme: what central counts as a visit,
// central/loyalty_auto.go), and head office's usual-shop window. A broker
// that keeps them lets SweepPoints hand back the rights of customers who
// stopped shopping here (releaseLapsed); without one, rights central
// pre-granted here stay until the customer's next receipt here.
type SeenMarks interface {
	// LastSeen is the date kept for the customer ("" : none).
	LastSeen(prog storeline.ProgrammeID, cust storeline.CustomerID) (storeline.Date, error)
	SetLastSeen(ctx context.Context, prog storeline.ProgrammeID, cust storeline.CustomerID, d storeline.Date) error
	// UsualWindowDays is how many days after a visit central still
	// counts the shop among the customer's usual shops and may pre-grant
	// it rights (central.LoyaltyConfig.UsualWindow); 0: never hand back
	// for lapse.
	UsualWindowDays() int
}

// maxLapsedBatch bounds the customers of each kind (rights above the
// float, debts) one SweepPoints call examines for lapsed rights (their
// IDs are kept in memory, and each may cost a hand-back); a pass over
// more customers goes on at the next call.
const maxLapsedBatch = 4096

// lapseState is how far the pass over customers' rights here has gone:
// done is the business date of the last complete pass; open says a pass
// is under way, after the last customer it handled. A pass not finished
// by the end of its day goes on from there the next day (starting again
// from the first customer would never reach the customers past the first
// batches when the sweep runs a few times a day); a new pass starts the
// day after one completes. mu is held for a whole batch, so batches do
// not overlap; it is taken before any customer's lock, never after.
type lapseState struct {
	mu    sync.Mutex
	done  storeline.Date
	open  bool
	prog  storeline.ProgrammeID
	after storeline.CustomerID
}

// lowestIDs keeps the n lowest customer IDs added; cut reports that some
// were dropped, so the kept ones are complete only up to the last.
type lowestIDs struct {
	ids []storeline.CustomerID
	n   int
	cut bool
}

func (l *lowestIDs) add(c storeline.CustomerID) {
	if l.ids = append(l.ids, c); len(l.ids) >= 2*l.n {
		l.trim()
	}
}

func (l *lowestIDs) trim() {
	sort.Slice(l.ids, func(i, j int) bool { return l.ids[i] < l.ids[j] })
	if len(l.ids) > l.n {
		l.ids, l.cut = l.ids[:l.n], true
	}
}

// noteSeen keeps date as the last day the customer was seen here, if it
// is later than the date kept. It is called before the receipt is
// appended, so a lapse hand-back deciding after it keeps the rights here
// (releaseOne reads the mark under the customer's lock). A date past
// tomorrow in UTC (no store's today is later) is a till's clock running
// ahead, kept as that. A failure is logged, never the till's: a mark lost
// only hands points back to central early, where they are still the
// customer's and central grants them back after the visit.
func (s *Server) noteSeen(ctx context.Context, prog storeline.ProgrammeID, cust storeline.CustomerID, date storeline.Date) {
	m, ok := s.cfg.Points.(SeenMarks)
	if !ok || cust == "" || date == "" {
		return
	}
	date = min(date, storeline.DateOf(s.cfg.Now().AddDate(0, 0, 1), time.UTC))
	if seen, err := m.LastSeen(prog, cust); err != nil || seen >= date {
		if err != nil {
			s.log.Warn("loyalty: last visit", "customer", cust, "err", err)
		}
		return
	}
	if err := m.SetLastSeen(context.WithoutCancel(ctx), prog, cust, date); err != nil {
		s.log.Warn("loyalty: last visit", "customer", cust, "err", err)
	}
}

// releaseLapsed hands back to central, once a business day, the rights
// above the float (all of them, for a customer who owes points here, as
// handBackOnce) of each customer not seen here for longer than head
// office's usual-shop window plus a day. Central then counts this shop
// usual no more (its window runs on its own date, which the extra day
// covers in any time zone), so its sweep grants those rights to the shops
// the customer uses now, rather than leaving what it pre-granted here
// while the customer was a regular stranded here for good: only this
// shop may debit its rights (central cannot take them back, or an offline
// shop could spend them twice).
//
// A customer with rights here and no mark yet (rights head office granted
// for a customer yet to come, or kept from before the marks) gets today's:
// the window starts now. After a lapse hand-back the mark becomes today
// too, so rights granted here again (head office's grant, or a central
// with a longer window) stay a whole window; at most one hand-back per
// lapse (its ID derives from the customer and the mark). It stops, to
// go on at the next call (the next day too), when central becomes
// unreachable or after maxLapsedBatch customers of a kind.
func (s *Server) releaseLapsed(ctx context.Context) (int64, error) {
	m, ok := s.cfg.Points.(SeenMarks)
	if !ok || m.UsualWindowDays() <= 0 {
		return 0, nil
	}
	st, loc, err := s.store()
	if err != nil {
		return 0, err
	}
	rules, err := s.cat.Rules()
	if err != nil {
		return 0, err
	}
	prog, ok := rules.ProgrammeFor(st.Currency)
	if !ok {
		return 0, nil
	}
	now := s.cfg.Now().In(loc)
	today := storeline.DateOf(now, loc)
	cutoff := storeline.DateOf(now.AddDate(0, 0, -(m.UsualWindowDays()+1)), loc)
	w := &s.points.lapse
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.open || w.prog != prog.ID {
		if w.done == today && w.prog == prog.ID {
			return 0, nil
		}
		w.open, w.prog, w.after = true, prog.ID, ""
	}
	// The customers after w.after holding more than the float here, and
	// those who owe points here (they hand back all their rights), the
	// first maxLapsedBatch of each by ID (BalancesAcross's order is the
	// keys', not the IDs'), up to the lower of the two lists' last IDs
	// when either was cut: the batch then holds every candidate up to it.
	asset := storeline.PointsAsset(prog.ID)
	over, owing := lowestIDs{n: maxLapsedBatch}, lowestIDs{n: maxLapsedBatch}
	err = s.led.BalancesAcross("points/"+string(prog.ID)+"/", "/"+string(s.cfg.Store), asset, func(part string, amount decimal.Decimal) {
		if c := storeline.CustomerID(part); c > w.after && amount.IntPart() > s.cfg.PointsFloat {
			over.add(c)
		}
	})
	if err != nil {
		return 0, fmt.Errorf("loyalty: rights held here: %w", err)
	}
	err = s.led.BalancesAcross("points-debt/"+string(s.cfg.Store)+"/"+string(prog.ID)+"/", "", asset, func(part string, amount decimal.Decimal) {
		if c := storeline.CustomerID(part); c > w.after && amount.IsNegative() {
			owing.add(c)
		}
	})
	if err != nil {
		return 0, fmt.Errorf("loyalty: debts here: %w", err)
	}
	over.trim()
	owing.trim()
	var horizon storeline.CustomerID // "": the batch ends the pass
	for _, l := range []lowestIDs{over, owing} {
		if l.cut && (horizon == "" || l.ids[len(l.ids)-1] < horizon) {
			horizon = l.ids[len(l.ids)-1]
		}
	}
	cands := append([]storeline.CustomerID(nil), over.ids...)
	for _, c := range owing.ids {
		// A debtor with rights at or below the float; none: nothing to do.
		if i := sort.Search(len(over.ids), func(i int) bool { return over.ids[i] >= c }); i < len(over.ids) && over.ids[i] == c {
			continue
		}
		if n, err := s.rights(prog.ID, c); err != nil {
			return 0, fmt.Errorf("loyalty: rights of %s held here: %w", c, err)
		} else if n > 0 {
			cands = append(cands, c)
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i] < cands[j] })
	var total int64
	for _, c := range cands {
		if horizon != "" && c > horizon {
			break
		}
		if !s.cfg.Points.Online() || ctx.Err() != nil {
			return total, nil // the rest at the next call (offline, or the node stopping)
		}
		n, err := s.releaseOne(ctx, m, prog.ID, c, today, cutoff)
		total += n
		if err != nil {
			return total, fmt.Errorf("loyalty: hand back the lapsed rights of %s: %w", c, err)
		}
		w.after = c
	}
	if horizon != "" {
		w.after = horizon
	} else {
		w.open, w.done = false, today
	}
	return total, nil
}

// releaseOne hands back the customer's rights here above the float (above
// nothing if they owe points here) if they were last seen before cutoff;
// it returns the points handed back. The mark and the rights are read
// again under the customer's lock, and the hand-back is appended under
// it: a receipt noted before that (noteSeen) keeps the rights here; a
// points payment waits for the hand-back and reads the rights it left
// (online, it reserves the rest at central, which holds them once the
// hand-back is pushed), so nothing is spent twice.
func (s *Server) releaseOne(ctx context.Context, m SeenMarks, prog storeline.ProgrammeID, cust storeline.CustomerID, today, cutoff storeline.Date) (int64, error) {
	ctx = context.WithoutCancel(ctx) // the lock is released once the outcome is known
	seen, err := m.LastSeen(prog, cust)
	if err != nil {
		return 0, err
	}
	if seen == "" {
		return 0, m.SetLastSeen(ctx, prog, cust, today)
	}
	if seen >= cutoff {
		return 0, nil
	}
	unlock := s.points.lock(cust)
	defer unlock()
	if seen, err = m.LastSeen(prog, cust); err != nil || seen >= cutoff {
		return 0, err
	}
	id := storeline.DerivedEventID("points-lapsed\x00" + string(prog) + "\x00" + string(cust) + "\x00" + string(seen))
	if _, err := s.led.Event(s.cfg.Store, id); err == nil || errors.Is(err, storeline.ErrPruned) {
		// Handed back for this lapse already (the mark was not moved on:
		// a crash, or a failed write), pruned by retention since or not:
		// the window starts again.
		return 0, m.SetLastSeen(ctx, prog, cust, today)
	} else if !errors.Is(err, storeline.NotFound) {
		return 0, err
	}
	rights, err := s.rights(prog, cust)
	if err != nil {
		return 0, err
	}
	keep := s.cfg.PointsFloat
	debt, err := s.led.Balance(storeline.PointsDebtAccount(prog, cust, s.cfg.Store), storeline.PointsAsset(prog))
	if err != nil {
		return 0, err
	}
	if debt.IsNegative() {
		keep = 0
	}
	if rights <= keep {
		return 0, nil
	}
	n := rights - keep
	h := &storeline.PointsHandback{Programme: prog, Customer: cust, Points: n}
	if _, created, err := s.appendEvent(ctx, id, s.cfg.Now(), today, h); err != nil || !created {
		return 0, err
	}
	s.lm.handedBack.Add(float64(n))
	return n, m.SetLastSeen(ctx, prog, cust, today)
}

// reversePoints works out what a return does to the points of its
// original receipt's customer. It takes back what the receipt earned:
// pricing.Reverse of the receipt's points by what the returned lines
// weigh in its accrual (accrualShares; by money where that weighs
// nothing), all of them once every unit is back, from
// this shop's rights as far as they go (with the points this return gives
// back), the rest a debt. And it gives back the part of the money
// returned that the receipt paid with points, as points (pricing.Restore;
// completes: the return takes back all the receipt had left), added as a
// refund of method points after the till's: the till refunds only the
// rest in money, and ret.Compute refuses other refunds, naming refunds. A
// retry keeps the first attempt's figures. On success the customer's lock
// is held until the returned function is called, after the append.
func (s *Server) reversePoints(self, orig storeline.EventID, ret *storeline.Return, completes bool) (func(), error) {
	nop := func() {}
	ev, err := s.led.Event(s.cfg.Store, orig)
	if err != nil {
		return nop, err
	}
	rc, ok := ev.Body.(*storeline.Receipt)
	if !ok || rc.Programme == "" {
		return nop, ret.Compute()
	}
	var paid int64
	paidWorth := decimal.Zero
	for _, p := range rc.Payments {
		if p.Method == storeline.Points {
			paid, paidWorth = paid+p.Points, paidWorth.Add(p.Amount)
		}
	}
	if rc.Earned == 0 && paid == 0 {
		return nop, ret.Compute()
	}
	unlock := s.points.lock(rc.Customer)
	done := false
	defer func() {
		if !done {
			unlock()
		}
	}()
	if prior, err := s.prior(self, storeline.KindReturn); err != nil || prior != nil {
		if prior != nil {
			// A retry racing its first try: the first figures, and the
			// append answers (or refuses) it.
			p := prior.Body.(*storeline.Return)
			ret.Points = p.Points
			ret.Refunds = append(ret.Refunds, p.Refunds[len(tillRefunds(p.Refunds)):]...)
		}
		done = err == nil
		return unlock, err
	}
	earlier, err := s.led.ReturnsOf(orig)
	if err != nil {
		return nop, err
	}
	before := decimal.Zero
	var prev []storeline.Line // earlier returns' lines
	var taken int64           // the points earlier returns took back
	for _, e := range earlier {
		if r, ok := e.Body.(*storeline.Return); ok && e.ID != self {
			before = before.Add(r.Total)
			prev = append(prev, r.Lines...)
			if r.Points != nil {
				taken += r.Points.Reversed + r.Points.Debt
			}
		}
	}
	// The points come back as the goods that earned them do: shared by
	// the lines' weight in the receipt's accrual, not by their money, so
	// goods that earned nothing take nothing back; all of them once every
	// unit is back, whatever the money returned. A return takes what the
	// returns so far should have taken less what earlier ones did.
	sold, wBefore, returning, err := s.accrualShares(rc, prev, ret.Lines)
	if err != nil {
		return nop, err
	}
	if completes {
		returning = sold
	}
	back := max(pricing.Reverse(rc.Earned, sold, decimal.Zero, wBefore.Add(returning))-taken, 0)
	restored, worth := pricing.Restore(rc.Currency, paid, paidWorth, rc.Total, before, ret.Total, completes)
	if back == 0 && worth.IsZero() {
		done = true
		return unlock, ret.Compute()
	}
	ret.Points = &storeline.PointsReversal{Programme: rc.Programme, Customer: rc.Customer}
	if worth.IsPositive() {
		ret.Refunds = append(ret.Refunds, storeline.Payment{Method: storeline.Points, Amount: worth, Points: restored})
	}
	if back > 0 {
		rights, err := s.rights(rc.Programme, rc.Customer)
		if err != nil {
			return nop, err
		}
		// The points given back land on the same rights in the same
		// event: they pay for the reversal before any debt.
		rev := min(back, max(rights+restored, 0))
		ret.Points.Reversed, ret.Points.Debt = rev, back-rev
	}
	if err := ret.Compute(); err != nil {
		return nop, err
	}
	if ret.Points.Debt > 0 {
		// Counted when the return is checked; a refused append (rare: the
		// ledger is failing) over-counts.
		s.lm.debt.Add(float64(ret.Points.Debt))
	}
	done = true
	return unlock, nil
}

// accrualShares weighs a receipt's lines, earlier returns' (prev) and
// this return's (lines) in the receipt's accrual (pricing.AccrualWeight,
// at the receipt's programme as it is now). When that weighs nothing
// (the programme or the items changed since), their money does.
func (s *Server) accrualShares(rc *storeline.Receipt, prev, lines []storeline.Line) (sold, before, returning decimal.Decimal, err error) {
	byMoney := func() (decimal.Decimal, decimal.Decimal, decimal.Decimal, error) {
		b, r := decimal.Zero, decimal.Zero
		for _, l := range prev {
			b = b.Add(l.Total)
		}
		for _, l := range lines {
			r = r.Add(l.Total)
		}
		return rc.Total, b, r, nil
	}
	rules, err := s.cat.Rules()
	if err != nil {
		return sold, before, returning, err
	}
	prog, ok := rules.Programme(rc.Programme)
	if !ok {
		return byMoney()
	}
	weigh := func(ls []storeline.Line) (decimal.Decimal, bool, error) {
		al := make([]pricing.AccrualLine, len(ls))
		for i, l := range ls {
			it, err := s.cat.Item(l.Item)
			if errors.Is(err, storeline.NotFound) {
				return decimal.Zero, false, nil
			}
			if err != nil {
				return decimal.Zero, false, err
			}
			al[i] = pricing.AccrualLine{Item: l.Item, Group: it.Group, Total: l.Total}
		}
		return pricing.AccrualWeight(rules, prog, rc.Currency, al), true, nil
	}
	for i, ls := range [][]storeline.Line{rc.Lines, prev, lines} {
		w, ok, err := weigh(ls)
		if err != nil {
			return sold, before, returning, err
		}
		if !ok || i == 0 && !w.IsPositive() {
			return byMoney()
		}
		switch i {
		case 0:
			sold = w
		case 1:
			before = w
		default:
			returning = w
		}
	}
	return sold, before, returning, nil
}

// reverseByCard works out what a return without its receipt takes back of
// the customer's points: what the returned lines would earn at the
// programme of the return's currency, as sold now, from this shop's
// rights as far as they go, the rest a debt. The card names the
// customer; an unknown card, or one that is no loyalty card, takes back
// nothing and the return goes on. A retry keeps the first attempt's
// figures. On success the customer's lock is held until the returned
// function is called, after the append.
func (s *Server) reverseByCard(self storeline.EventID, code string, ret *storeline.Return) (func(), error) {
	nop := func() {}
	if err := storeline.CheckCardCode("card", code); err != nil {
		return nop, err
	}
	if prior, err := s.prior(self, storeline.KindReturn); err != nil || prior != nil {
		if prior != nil {
			ret.Points = prior.Body.(*storeline.Return).Points // a retry: the first figures
		}
		return nop, err
	}
	var card storeline.CardRecord
	if err := s.led.LookupMaster(storeline.KindCard, storeline.CardCodeKey(code), &card); err != nil {
		if errors.Is(err, storeline.NotFound) {
			return nop, nil // maybe registered offline elsewhere: nothing known to take back
		}
		return nop, err
	}
	// A blocked card's points are still the customer's: its returns
	// take back what the goods earned all the same.
	if card.Kind != storeline.LoyaltyCard || card.Customer == "" {
		return nop, nil
	}
	rules, err := s.cat.Rules()
	if err != nil {
		return nop, err
	}
	prog, ok := rules.ProgrammeFor(ret.Currency)
	if !ok {
		return nop, nil
	}
	lines := make([]pricing.AccrualLine, len(ret.Lines))
	for i, l := range ret.Lines {
		it, err := s.cat.Item(l.Item)
		if err != nil {
			return nop, err
		}
		lines[i] = pricing.AccrualLine{Item: l.Item, Group: it.Group, Total: l.Total}
	}
	_, back := pricing.Accrue(rules, prog, ret.Currency, lines)
	if back == 0 {
		return nop, nil
	}
	return s.takeBack(self, prog.ID, card.Customer, back, ret)
}

// takeBack sets ret.Points to back points of the customer's, from this
// shop's rights as far as they go and the rest a debt, under the
// customer's lock (held on success until the returned function is
// called); a retry keeps the first attempt's figures.
func (s *Server) takeBack(self storeline.EventID, prog storeline.ProgrammeID, cust storeline.CustomerID, back int64, ret *storeline.Return) (func(), error) {
	nop := func() {}
	unlock := s.points.lock(cust)
	if prior, err := s.prior(self, storeline.KindReturn); err != nil || prior != nil {
		if err != nil {
			unlock()
			return nop, err
		}
		ret.Points = prior.Body.(*storeline.Return).Points
		return unlock, nil
	}
	rights, err := s.rights(prog, cust)
	if err != nil {
		unlock()
		return nop, err
	}
	rev := min(back, max(rights, 0))
	ret.Points = &storeline.PointsReversal{Programme: prog, Customer: cust, Reversed: rev, Debt: back - rev}
	if ret.Points.Debt > 0 {
		// Counted when the return is checked; a refused append (rare: the
		// ledger is failing) over-counts.
		s.lm.debt.Add(float64(ret.Points.Debt))
	}
	return unlock, nil
}

// reversalOut is what a return took back of a customer's points, and
// Restored, the points it gave back (its refunds of method points).
type reversalOut struct {
	Programme storeline.ProgrammeID `json:"programme"`
	Customer  storeline.CustomerID  `json:"customer"`
	Reversed  int64                 `json:"reversed"`
	Debt      int64                 `json:"debt"`
	Restored  int64                 `json:"restored,omitempty"`
}

func reversalOf(r *storeline.Return) *reversalOut {
	p := r.Points
	if p == nil {
		return nil
	}
	out := &reversalOut{Programme: p.Programme, Customer: p.Customer, Reversed: p.Reversed, Debt: p.Debt}
	for _, pay := range r.Refunds {
		if pay.Method == storeline.Points {
			out.Restored += pay.Points
		}
	}
	return out
}

// pointsOut is a loyalty customer's points. Balance and Debt are head
// office's answer when it gave one (Source "central"), else the last
// answer kept or, failing that, what this node's ledger knows (Source
// "last_known", with AsOf if known). RightsHere is this shop's rights;
// SpendableNow the points a receipt here may take now before the
// programme's share of it: online, rights here plus central's; offline,
// rights here within the daily offline cap of the day a receipt of the
// asking till's open shift would carry (tillDay).
type pointsOut struct {
	Programme    storeline.ProgrammeID `json:"programme"`
	Balance      int64                 `json:"balance"`
	Debt         int64                 `json:"debt"`
	RightsHere   int64                 `json:"rights_here"`
	SpendableNow int64                 `json:"spendable_now"`
	Source       string                `json:"source"`
	AsOf         *time.Time            `json:"as_of,omitempty"`
	PointValue   string                `json:"point_value"`
	MaxShare     string                `json:"max_share"`
}

// cardPoints reads a customer's points in the programme of the shop's
// currency, or nil when the shop runs none, as terminal term would pay
// them now: offline, within the daily cap of the business date a receipt
// of its open shift would carry (tillDay).
func (s *Server) cardPoints(ctx context.Context, term storeline.TerminalID, c storeline.CustomerID) (*pointsOut, error) {
	st, loc, err := s.store()
	if err != nil {
		return nil, err
	}
	rules, err := s.cat.Rules()
	if err != nil {
		return nil, err
	}
	p, ok := rules.ProgrammeFor(st.Currency)
	if !ok {
		return nil, nil
	}
	out := &pointsOut{Programme: p.ID, PointValue: p.PointValue.String(), MaxShare: p.MaxShare.String(), Source: "last_known"}
	asset := storeline.PointsAsset(p.ID)
	here := storeline.PointsAccount(p.ID, c, s.cfg.Store)
	bs, err := s.cfg.Balances(storeline.PointsAccountPrefix(p.ID, c))
	if err != nil {
		return nil, err
	}
	for _, b := range bs {
		if b.Asset != asset {
			continue
		}
		out.Balance += b.Amount.IntPart()
		if b.Account == here {
			out.RightsHere = b.Amount.IntPart()
		}
	}
	debt, err := s.led.Balance(storeline.PointsDebtAccount(p.ID, c, s.cfg.Store), asset)
	if err != nil {
		return nil, err
	}
	out.Debt = -debt.IntPart()
	out.SpendableNow = out.RightsHere
	b := s.cfg.Points
	if b == nil {
		return out, nil
	}
	cp, fresh, err := b.Points(ctx, p.ID, c)
	switch {
	case err == nil:
		out.Balance, out.Debt = cp.Balance, cp.Debt
		at := cp.AsOf.UTC()
		out.AsOf = &at
		if fresh {
			out.Source = "central"
		}
	case storeline.KindOf(err) != storeline.Unavailable:
		return nil, err
	}
	if fresh && b.Online() {
		out.SpendableNow = out.RightsHere + cp.CentralRights
		return out, nil
	}
	day, err := s.tillDay(term, loc)
	if err != nil {
		return nil, err
	}
	used, err := b.OfflineSpent(p.ID, c, day)
	if err != nil {
		return nil, err
	}
	out.SpendableNow = min(out.RightsHere, max(p.DailyOfflineCap-used, 0))
	return out, nil
}

// tillDay is the business date a receipt of terminal term's open shift
// would carry now (businessDate): the day its latest opened shift not yet
// closed opened on (a shift that crosses midnight belongs to that day),
// else today in the store's zone. Read from the shift totals the ledger
// keeps (OpenShifts: every shift record of the terminal, a few hundred a
// year), not the journal, whose days hold tens of thousands of events.
func (s *Server) tillDay(term storeline.TerminalID, loc *time.Location) (storeline.Date, error) {
	now := s.cfg.Now()
	open, err := s.led.OpenShifts(term)
	if err != nil {
		return "", fmt.Errorf("find the open shift of terminal %s: %w", term, err)
	}
	// The latest opening: a shift left open before it is forgotten.
	var latest *storeline.ShiftTotals
	for i := range open {
		o := open[i].Opening
		if latest == nil || o.Epoch > latest.Opening.Epoch || o.Epoch == latest.Opening.Epoch && o.Seq > latest.Opening.Seq {
			latest = &open[i]
		}
	}
	if latest == nil {
		return storeline.DateOf(now, loc), nil
	}
	return s.businessDate(term, latest.Shift, now, loc)
}
