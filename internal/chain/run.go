package chain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/internal/tillsim"
)

// Status is the chain at a moment, for the live status line.
type Status struct {
	Elapsed    time.Duration
	Leader     string // central leader's node ID, "" while there is none
	CentralsUp int
	Centrals   int
	Shops      []ShopStatus
}

// ShopStatus is one shop's selling and replication.
type ShopStatus struct {
	Store    storeline.StoreID
	Receipts int     // acknowledged to the tills so far
	Rate     float64 // receipts per second over the last status period
	// Backlog is the shop's own events central has not acknowledged; -1
	// when the shop is not linked to central.
	Backlog int64
	Cut     bool // cut off from central by the demo
}

// String renders the status on one line of about 80 columns.
func (s Status) String() string {
	var b strings.Builder
	leader := s.Leader
	if leader == "" {
		leader = "no leader"
	}
	fmt.Fprintf(&b, "%4.0fs central %d/%d up, %s", s.Elapsed.Seconds(), s.CentralsUp, s.Centrals, leader)
	for _, sh := range s.Shops {
		fmt.Fprintf(&b, " | %s %3.0f/s %d", sh.Store, sh.Rate, sh.Receipts)
		if sh.Backlog >= 0 {
			fmt.Fprintf(&b, " backlog %d", sh.Backlog)
		}
		if sh.Cut {
			b.WriteString(" CUT OFF")
		}
	}
	return b.String()
}

// tally is what the tills saw acknowledged at one shop: the truth the
// closing check compares the shops and central against.
type tally struct {
	receipts, returns map[storeline.EventID]bool
	stock             map[storeline.ItemID]decimal.Decimal // expected on hand: received less wholesale, less sold, plus returned
	sales             decimal.Decimal                      // receipts' totals less returns' refunds
	redeemed          int64                                // loyalty points the receipts paid
}

// facts collects the tills' acknowledged facts per shop.
type facts struct {
	mu    sync.Mutex
	shops []tally
	last  []int // receipts at the previous status tick
}

// newFacts starts n shops' tallies, each shop's stock from what it
// held when the tills started (opening[i], by item; nil: none): what its
// opening invoices brought less its wholesale.
func newFacts(n int, opening []map[storeline.ItemID]decimal.Decimal) *facts {
	f := &facts{shops: make([]tally, n), last: make([]int, n)}
	for i := range f.shops {
		f.shops[i] = tally{receipts: map[storeline.EventID]bool{}, returns: map[storeline.EventID]bool{}, stock: map[storeline.ItemID]decimal.Decimal{}}
		if i < len(opening) {
			for item, q := range opening[i] {
				f.shops[i].stock[item] = q
			}
		}
	}
	return f
}

func (f *facts) observe(x tillsim.Fact) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &f.shops[x.Shop]
	sign := decimal.NewFromInt(-1)
	switch x.Kind {
	case tillsim.FactReceipt:
		if t.receipts[x.ID] {
			return
		}
		t.receipts[x.ID] = true
		t.sales = t.sales.Add(x.Amount)
		t.redeemed += x.Points
	case tillsim.FactReturn:
		if t.returns[x.ID] {
			return
		}
		t.returns[x.ID], sign = true, decimal.NewFromInt(1)
		t.sales = t.sales.Sub(x.Amount)
		t.redeemed -= x.Points // given back as points
	default:
		return
	}
	for _, l := range x.Lines {
		id := storeline.ItemID(l.Item)
		t.stock[id] = t.stock[id].Add(l.Qty.Mul(sign))
	}
}

func (f *facts) receipts(i int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.shops[i].receipts)
}

// Moment is the outcome of one scripted moment.
type Moment struct {
	Name    string
	Skipped bool // could not run (the shops are not linked to central)
	OK      bool
	Detail  string
}

// Report is a run's outcome.
type Report struct {
	Tills   tillsim.Summary
	Moments []Moment
	Check   Check
}

// OK reports whether every moment that ran succeeded and the closing check
// passed.
func (r Report) OK() bool {
	for _, m := range r.Moments {
		if !m.Skipped && !m.OK {
			return false
		}
	}
	return r.Check.OK()
}

// Write prints the report.
func (r Report) Write(w io.Writer) {
	r.Tills.Write(w)
	fmt.Fprintln(w, "\nscripted moments:")
	for _, m := range r.Moments {
		mark := "ok  "
		switch {
		case m.Skipped:
			mark = "skip"
		case !m.OK:
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  [%s] %s: %s\n", mark, m.Name, m.Detail)
	}
	fmt.Fprintln(w, "\nclosing check:")
	r.Check.Write(w)
}

// Run sells at every shop for the configured duration (or until ctx
// ends), plays the scripted moments meanwhile, reports the status every
// StatusEvery, waits for the shops' journals to reach central, and runs
// the closing check. The chain keeps running afterwards, until Close.
func (c *Chain) Run(ctx context.Context) (Report, error) {
	f := newFacts(len(c.shops), c.openingStock())
	tc := tillsim.DefaultConfig()
	for _, s := range c.shops {
		sellers := make([]tillsim.Seller, len(c.data.Sellers))
		for i, sp := range c.data.Sellers {
			sellers[i] = tillsim.Seller{ID: string(sp.ID), PIN: sp.PIN}
		}
		tc.Shops = append(tc.Shops, tillsim.Shop{
			URL: s.Node.TillURL(), AdminURL: s.Node.AdminURL(), AdminToken: s.AdminToken,
			Sellers: sellers, Cards: c.data.CardCodes(500),
		})
	}
	tc.TillsPerShop = c.cfg.TillsPerShop
	tc.Duration = c.cfg.Duration
	tc.Rate = c.cfg.Rate
	tc.Seed = c.cfg.Seed
	tc.CatalogRefresh = c.cfg.CatalogRefresh
	tc.TerminalPrefix = "till"
	tc.Observe = f.observe
	sim, err := tillsim.New(tc)
	if err != nil {
		return Report{}, fmt.Errorf("chain: till simulator: %w", err)
	}
	runCtx, stopSelling := context.WithCancel(ctx)
	defer stopSelling()
	c.start = time.Now()
	c.say("tills: %d per shop selling%s", c.cfg.TillsPerShop, durationNote(c.cfg.Duration))

	var wg sync.WaitGroup
	statusDone := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.reportStatus(statusDone, f)
	}()
	var moments []Moment
	momentsDone := make(chan struct{})
	go func() {
		defer close(momentsDone)
		if c.cfg.Moments {
			moments = c.playMoments(runCtx)
		}
	}()
	sum, simErr := sim.Run(runCtx)
	stopSelling() // ends moments still waiting
	<-momentsDone
	if simErr != nil && !errors.Is(simErr, context.Canceled) {
		close(statusDone)
		wg.Wait()
		return Report{Tills: sum, Moments: moments}, fmt.Errorf("chain: tills: %w", simErr)
	}
	c.say("tills: stopped after %s; %d receipts acknowledged", sum.Selling.Round(time.Millisecond), sum.Receipts)
	// A run stopped in the middle of a moment may leave a central node
	// stopped; the closing check compares every node, so restart it.
	if err := c.restartStopped(); err != nil {
		c.say("central: %v", err)
	}
	settled := uint64(0)
	if linked {
		if err := c.drain(); err != nil {
			c.say("replication: %v", err)
		} else if settled, err = c.settle(); err != nil {
			c.say("replication: %v", err)
		}
	}
	close(statusDone)
	wg.Wait()
	c.last, c.lastSum = f, sum
	chk := c.check(context.Background(), f, sum)
	// Central wrote again between the settle and the check's reads (its
	// loyalty sweep): settle once more and check again. A difference that
	// stays is reported.
	if l := c.leaderNode(); len(chk.Problems) > 0 && settled > 0 && l != nil && l.AppliedIndex() != settled {
		c.say("check: central moved from index %d to %d during the check; settling again", settled, l.AppliedIndex())
		if _, err := c.settle(); err != nil {
			c.say("replication: %v", err)
		}
		chk = c.check(context.Background(), f, sum)
	}
	return Report{Tills: sum, Moments: moments, Check: chk}, nil
}

func durationNote(d time.Duration) string {
	if d == 0 {
		return " until stopped"
	}
	return " for " + d.String()
}

func (c *Chain) reportStatus(done <-chan struct{}, f *facts) {
	if c.cfg.OnStatus == nil {
		<-done
		return
	}
	t := time.NewTicker(c.cfg.StatusEvery)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			c.cfg.OnStatus(c.status(f, now.Sub(last)))
			last = now
		}
	}
}

// Status returns the chain's status now (receipt rates need a Run).
func (c *Chain) Status() Status { return c.status(nil, 0) }

func (c *Chain) status(f *facts, period time.Duration) Status {
	st := Status{Elapsed: time.Since(c.start), Leader: c.Leader(), Centrals: len(c.centrals)}
	c.mu.Lock()
	for _, s := range c.centrals {
		if s.node != nil {
			st.CentralsUp++
		}
	}
	cuts := make([]bool, len(c.shops))
	for i, s := range c.shops {
		cuts[i] = s.cut
	}
	c.mu.Unlock()
	for i, s := range c.shops {
		ss := ShopStatus{Store: s.ID, Backlog: c.backlog(s), Cut: cuts[i]}
		if f != nil {
			n := f.receipts(i)
			f.mu.Lock()
			prev := f.last[i]
			f.last[i] = n
			f.mu.Unlock()
			ss.Receipts = n
			if period > 0 {
				ss.Rate = float64(n-prev) / period.Seconds()
			}
		}
		st.Shops = append(st.Shops, ss)
	}
	return st
}

// backlog returns the shop's own events central has not acknowledged, -1
// when the shop does not replicate.
func (c *Chain) backlog(s *Shop) int64 {
	r := s.Node.Replication()
	if r == nil {
		return -1
	}
	pos := s.Node.Ledger().Position()
	acked := r.Status().Acked
	if acked.Epoch != pos.Epoch {
		return int64(pos.Seq) // a new epoch: everything of it waits
	}
	return int64(pos.Seq) - int64(acked.Seq)
}

// settle waits until every shop has pulled all central holds: after the
// tills stop, central may still write for a shop (its loyalty sweep runs on
// a timer), and the closing check compares each shop with central. It
// takes the leader's applied index again until the shops' pull cursors
// reached it and it did not move meanwhile, and returns that index.
func (c *Chain) settle() (uint64, error) {
	t0 := time.Now()
	deadline := time.Now().Add(c.cfg.DrainTimeout)
	for {
		l := c.leaderNode()
		if l == nil {
			return 0, errors.New("no central leader to settle with")
		}
		target := l.AppliedIndex()
		top := central.Version{Index: target, Pos: central.MaxChangesPerEntry}.Pack()
		err := waitUntil(context.Background(), time.Until(deadline), func() bool {
			for _, s := range c.shops {
				r := s.Node.Replication()
				if r == nil || r.Status().Cursor < top {
					return false
				}
			}
			return true
		})
		if err != nil {
			return 0, fmt.Errorf("shops had not pulled central's entries through index %d after %s", target, c.cfg.DrainTimeout)
		}
		if l.AppliedIndex() == target {
			c.say("replication: every shop pulled what central holds (%s)", time.Since(t0).Round(time.Millisecond))
			return target, nil
		}
	}
}

// drain waits until central acknowledged every shop's journal.
func (c *Chain) drain() error {
	t0 := time.Now()
	err := waitUntil(context.Background(), c.cfg.DrainTimeout, func() bool {
		for _, s := range c.shops {
			if c.backlog(s) != 0 {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("shops still have unacknowledged events after %s", c.cfg.DrainTimeout)
	}
	c.say("replication: every shop's journal acknowledged by central (%s)", time.Since(t0).Round(time.Millisecond))
	return nil
}
