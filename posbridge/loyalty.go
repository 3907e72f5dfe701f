package posbridge

import (
	"errors"
	"fmt"
	"hash/fnv"
	"sync"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/pricing"
)

// Loyalty at the node: a receipt with a loyalty card earns points by the
// programme's rates, and may pay with points, which the node converts to
// money by the programme's ratio. The points a shop may spend for a
// customer are its rights in the customer's bounded counter, kept as the
// balance of storeline.PointsAccount(programme, customer, store): earning
// here adds to it, paying here takes from it, and only this store's
// receipts take from it. So a spend checked against that balance, with no
// other spend for the customer between the check and the durable append,
// never overdraws, online or not. Rights granted by head office and
// reservations of a shortfall there are not handled here yet.

// pointsLocks serialise the check and append of points payments per
// customer (striped: a bounded set of locks).
type pointsLocks [64]sync.Mutex

func (l *pointsLocks) lock(c storeline.CustomerID) func() {
	h := fnv.New32a()
	h.Write([]byte(c))
	m := &l[h.Sum32()%uint32(len(l))]
	m.Lock()
	return m.Unlock
}

// convertPoints picks the receipt's programme (for a known customer) and
// fills each points payment's amount from its points. A till that sends
// an amount must send the points' worth.
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
		worth := pricing.PointsMoney(prog, rc.Currency, p.Points)
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

// reservePoints sets the points the receipt earns, and checks its points
// payments against the shop's rights and the programme's share of the
// receipt. On success the customer's lock is held until the returned
// function is called, which the caller does after the append.
func (s *Server) reservePoints(id storeline.EventID, rc *storeline.Receipt, prog *storeline.LoyaltyProgramme) (func(), error) {
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
	// A concurrent copy of this receipt may have been appended while this
	// one waited: its retry is answered by the append, not refused.
	if prior, err := s.prior(id, storeline.KindReceipt); err != nil || prior != nil {
		return unlock, err
	}
	bal, err := s.led.Balance(storeline.PointsAccount(prog.ID, rc.Customer, s.cfg.Store), storeline.PointsAsset(prog.ID))
	if err != nil {
		unlock()
		return nop, err
	}
	rights := bal.IntPart()
	may := pricing.Spendable(prog, rights, rc.Total, -1)
	if spend > may {
		unlock()
		s.m.pointsRefused.Inc()
		return nop, &storeline.Error{Kind: storeline.Conflict, Field: fmt.Sprintf("payments[%d].points", at),
			Err: fmt.Errorf("%w: %d points asked, %d may be taken now (rights here %d, at most %s%% of the receipt)", errPointsShort, spend, may, rights, prog.MaxShare)}
	}
	return unlock, nil
}
