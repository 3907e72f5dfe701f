package tillsim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"
)

// Sim is a configured simulation. Build it with New and call Run once.
type Sim struct {
	cfg    Config
	client *client
	cnt    *counters
	lat    *latencies
	layout weighedPrinter
	now    func() time.Time
	// tag makes this run's shift IDs unique at a terminal across runs.
	tag string

	shops []*shopRun

	// The selling phase: started receipts (for Config.Receipts) and the
	// pacer's slots (for Config.Rate).
	started  atomic.Int64
	slots    atomic.Int64
	start    time.Time
	receipts atomic.Int64
	returns  atomic.Int64
	lastSale atomic.Int64 // UnixNano of the last receipt acknowledged
	obsMu    sync.Mutex
}

// shopRun is one shop during a run.
type shopRun struct {
	index int
	url   string
	shop  Shop
	cat   *catalog
	cards []string
	terms []Terminal
	// sellers log in at the tills; roles are theirs as the node lists them.
	sellers []Seller
	roles   map[string]string
	// nodePricing says whether baskets are priced with POST
	// /v1/baskets/price (Config.NodePricing, until the node says it has no
	// such route).
	nodePricing atomic.Bool

	mu    sync.Mutex
	tally shopTally
}

type shopTally struct {
	receipts, returns, cashOps int
	shiftsOpened, shiftsClosed int
	mismatches                 int
	lines, weighed, packs      int
	loyalty, cardPays          int
	pointsPays                 int
	pointsSpent                int64
	points                     decimal.Decimal // money paid with points
	discrepancies, promoLines  int
	localPriced                int
	sales, refunds, cash, card decimal.Decimal
	currency                   string
	tills                      int

	// Reservations made, and ended at the tills: collected or released.
	reservations, collected, released int
}

func (s *shopRun) add(f func(*shopTally)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.tally)
}

func (s *shopRun) scale() int32 {
	if snap := s.cat.snapshot(); snap != nil {
		return snap.scale
	}
	return 2
}

// New checks cfg and returns a simulation that has contacted nothing yet.
func New(cfg Config) (*Sim, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tr := cfg.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = max(cfg.TillsPerShop, 16) * 2
		tr = t
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	s := &Sim{
		cfg:    cfg,
		cnt:    &counters{},
		lat:    &latencies{},
		layout: weighedPrinter{cfg.WeighedLayout},
		now:    now,
		tag:    strconv.FormatInt(time.Now().UnixMilli(), 36),
	}
	s.client = &client{http: &http.Client{Transport: tr}, cfg: &s.cfg, lat: s.lat, cnt: s.cnt}
	for i, sh := range cfg.Shops {
		s.shops = append(s.shops, &shopRun{index: i, url: trimSlash(sh.URL), shop: sh, cards: sh.Cards,
			cat: newCatalog(uint64(cfg.Seed)+uint64(i), s.layout)})
		s.shops[i].nodePricing.Store(cfg.NodePricing)
	}
	return s, nil
}

// Run runs a simulation of cfg; see Sim.Run.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	s, err := New(cfg)
	if err != nil {
		return Summary{}, err
	}
	return s.Run(ctx)
}

func trimSlash(u string) string {
	for len(u) > 0 && u[len(u)-1] == '/' {
		u = u[:len(u)-1]
	}
	return u
}

// Run provisions terminals where asked, reads each shop's catalogue, runs
// the tills until Duration, Receipts or ctx stops the selling, lets the
// receipts in flight finish and closes the shifts (within CloseTimeout),
// and returns what happened. The Summary is valid even with an error:
// setup errors (a shop unreachable, a wrong PIN) end the run early.
func (s *Sim) Run(ctx context.Context) (Summary, error) {
	begin := time.Now()
	// grace carries the wind-down: it outlives the selling phase by
	// CloseTimeout, or ends with ctx's cancellation plus CloseTimeout.
	grace, cancelGrace := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelGrace()
	sell, stopSelling := context.WithCancel(ctx)
	defer stopSelling()
	go func() {
		<-sell.Done()
		t := time.AfterFunc(s.cfg.CloseTimeout, cancelGrace)
		<-grace.Done()
		t.Stop()
	}()

	if err := s.setup(sell); err != nil {
		return s.summary(time.Since(begin), 0), err
	}

	// Duration counts from the end of the setup: the tills' logins and
	// first shifts are part of it, the catalogue download is not.
	s.start = time.Now()
	if s.cfg.Duration > 0 {
		t := time.AfterFunc(s.cfg.Duration, stopSelling)
		defer t.Stop()
	}
	var wg sync.WaitGroup
	// Catalogue pollers: prices reach the tills within CatalogRefresh.
	for _, sh := range s.shops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.pollCatalog(sell, sh)
		}()
	}
	progressDone := make(chan struct{})
	if s.cfg.Progress != nil {
		go s.progress(sell, progressDone)
	} else {
		close(progressDone)
	}

	errs := make(chan error, 64)
	var tills sync.WaitGroup
	seed := uint64(s.cfg.Seed)
	for _, sh := range s.shops {
		cashiers, manager := sellers(sh.sellers, sh.roles)
		sh.add(func(t *shopTally) { t.tills = len(sh.terms) })
		for i, term := range sh.terms {
			t := &till{
				sim: s, shop: sh, index: i, term: term, cashier: cashiers[i%len(cashiers)], manager: manager,
				rng: rand.New(rand.NewPCG(seed, uint64(sh.index)<<32|uint64(i))),
			}
			tills.Add(1)
			go func() {
				defer tills.Done()
				if err := t.run(sell, grace); err != nil {
					select {
					case errs <- err:
					default:
					}
					stopSelling() // a till that cannot work is a setup error: stop the run
				}
			}()
		}
	}
	tills.Wait()
	// The selling phase ends with the last receipt acknowledged; the
	// shifts' closes after it are not part of the throughput.
	selling := time.Since(s.start)
	if last := s.lastSale.Load(); last > 0 {
		selling = time.Unix(0, last).Sub(s.start)
	}
	stopSelling()
	wg.Wait()
	<-progressDone
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return s.summary(time.Since(begin), selling), errors.Join(all...)
}

// sellers splits a shop's sellers into cashiers and a manager by the
// roles the node lists (GET /v1/sellers). A shop without a cashier rings
// up with its manager.
func sellers(ss []Seller, roles map[string]string) ([]Seller, *Seller) {
	var cashiers []Seller
	var manager *Seller
	for _, s := range ss {
		if roles[s.ID] == "manager" {
			if manager == nil {
				m := s
				manager = &m
			}
			continue
		}
		cashiers = append(cashiers, s)
	}
	if len(cashiers) == 0 && manager != nil {
		cashiers = []Seller{*manager}
	}
	return cashiers, manager
}

// setup provisions terminals and reads every shop's catalogue.
func (s *Sim) setup(ctx context.Context) error {
	rng := rand.New(rand.NewPCG(uint64(s.cfg.Seed), 0xcafe))
	for _, sh := range s.shops {
		if sh.shop.AdminURL != "" {
			for i := 1; i <= s.cfg.TillsPerShop; i++ {
				id := fmt.Sprintf("%s-%d", s.cfg.TerminalPrefix, i)
				req, err := post(epTerminal, trimSlash(sh.shop.AdminURL)+"/admin/v1/terminals",
					map[string]string{"id": id, "name": fmt.Sprintf("Simulated till %d", i)},
					map[string]string{"Authorization": "Bearer " + sh.shop.AdminToken})
				if err != nil {
					return err
				}
				var a struct {
					ID    string `json:"id"`
					Token string `json:"token"`
				}
				if _, err := s.client.do(ctx, rng, req, &a); err != nil {
					return fmt.Errorf("tillsim: provision terminal %s at %s: %w", id, sh.shop.AdminURL, err)
				}
				sh.terms = append(sh.terms, Terminal{ID: id, Token: a.Token})
			}
		} else {
			sh.terms = sh.shop.Terminals
			if n := s.cfg.TillsPerShop; n > 0 && n < len(sh.terms) {
				sh.terms = sh.terms[:n]
			}
		}
		if err := sh.cat.refresh(ctx, s.client, rng, sh.url, sh.terms[0].Token, s.cfg.CatalogPage); err != nil {
			return fmt.Errorf("tillsim: read the catalogue of %s: %w", sh.url, err)
		}
		if err := s.readSellers(ctx, rng, sh); err != nil {
			return err
		}
		snap := sh.cat.snapshot()
		if len(snap.items) < 2 {
			return fmt.Errorf("tillsim: %s: %d of %d catalogue items can be sold (priced, in a department of the store); need at least 2", sh.url, len(snap.items), snap.total)
		}
		sh.add(func(t *shopTally) { t.currency = snap.currency })
	}
	return nil
}

// readSellers learns the sellers' roles from GET /v1/sellers and checks
// that every configured seller works at the shop.
func (s *Sim) readSellers(ctx context.Context, rng *rand.Rand, sh *shopRun) error {
	sh.sellers = sh.shop.Sellers
	if len(sh.sellers) == 0 {
		sh.sellers = SampleSellers()
	}
	var a struct {
		Sellers []struct {
			ID   string `json:"id"`
			Role string `json:"role"`
		} `json:"sellers"`
	}
	req := request{endpoint: epSellers, method: http.MethodGet, url: sh.url + "/v1/sellers",
		headers: map[string]string{"Authorization": "Bearer " + sh.terms[0].Token}}
	if _, err := s.client.do(ctx, rng, req, &a); err != nil {
		return fmt.Errorf("tillsim: list the sellers of %s: %w", sh.url, err)
	}
	sh.roles = map[string]string{}
	for _, x := range a.Sellers {
		sh.roles[x.ID] = x.Role
	}
	for _, sel := range sh.sellers {
		if _, ok := sh.roles[sel.ID]; !ok {
			return fmt.Errorf("tillsim: seller %s does not work at %s", sel.ID, sh.url)
		}
	}
	return nil
}

// pollCatalog keeps a shop's catalogue fresh until the selling ends.
func (s *Sim) pollCatalog(ctx context.Context, sh *shopRun) {
	rng := rand.New(rand.NewPCG(uint64(s.cfg.Seed), uint64(sh.index)))
	t := time.NewTicker(s.cfg.CatalogRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if ctx.Err() != nil {
				return // the tick and the end of the selling came together
			}
			// A failed poll keeps the old catalogue: tills sell on.
			_ = sh.cat.refresh(ctx, s.client, rng, sh.url, sh.terms[0].Token, s.cfg.CatalogPage)
		}
	}
}

// claim takes the next receipt of the run: false once Receipts have been
// started or the selling has stopped. With a Rate, it waits for the
// receipt's slot: slot k starts at start + k/Rate.
func (s *Sim) claim(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	if n := s.cfg.Receipts; n > 0 && s.started.Add(1) > int64(n) {
		return false
	}
	if s.cfg.Rate > 0 {
		k := s.slots.Add(1) - 1
		at := s.start.Add(time.Duration(float64(k) / s.cfg.Rate * float64(time.Second)))
		if d := time.Until(at); d > 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return false
			case <-t.C:
			}
		}
	}
	return true
}

func (s *Sim) observe(f Fact) {
	if s.cfg.Observe == nil {
		return
	}
	s.obsMu.Lock()
	defer s.obsMu.Unlock()
	s.cfg.Observe(f)
}

func (s *Sim) progress(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(s.cfg.ProgressEvery)
	defer t.Stop()
	last, lastAt := int64(0), time.Now()
	report := func() {
		now := time.Now()
		n := s.receipts.Load()
		rate := float64(n-last) / now.Sub(lastAt).Seconds()
		last, lastAt = n, now
		s.cnt.mu.Lock()
		retries, unknown := s.cnt.retries, s.cnt.unknown
		s.cnt.mu.Unlock()
		s.cfg.Progress(Progress{
			Elapsed: time.Since(s.start), Receipts: int(n), Returns: int(s.returns.Load()), Rate: rate,
			Retries: retries, Errors: s.cnt.errorTotal(), Unknown: unknown, ReceiptP99: s.lat.p99(epReceipt),
		})
	}
	for {
		select {
		case <-ctx.Done():
			report()
			return
		case <-t.C:
			report()
		}
	}
}

func (s *Sim) summary(elapsed, selling time.Duration) Summary {
	out := Summary{Elapsed: elapsed, Selling: selling, Endpoints: s.lat.stats(), Errors: map[string]int{}}
	for _, sh := range s.shops {
		sh.mu.Lock()
		t := sh.tally
		sh.mu.Unlock()
		zero := decimal.Zero
		ss := ShopSummary{URL: sh.url, Currency: t.currency, Tills: t.tills, Receipts: t.receipts, Returns: t.returns,
			Sales: zero.Add(t.sales), Refunds: zero.Add(t.refunds), Cash: zero.Add(t.cash), Card: zero.Add(t.card),
			Points: zero.Add(t.points), PointsSpent: t.pointsSpent}
		out.Shops = append(out.Shops, ss)
		out.Receipts += t.receipts
		out.Returns += t.returns
		out.CashOps += t.cashOps
		out.ShiftsOpened += t.shiftsOpened
		out.ShiftsClosed += t.shiftsClosed
		out.ShiftMismatches += t.mismatches
		out.Lines += t.lines
		out.Weighed += t.weighed
		out.Packs += t.packs
		out.LoyaltyCards += t.loyalty
		out.CardPayments += t.cardPays
		out.PointsPayments += t.pointsPays
		out.Discrepancies += t.discrepancies
		out.PromoLines += t.promoLines
		out.LocallyPriced += t.localPriced
		out.ReservationsMade += t.reservations
		out.ReservationsCollected += t.collected
		out.ReservationsReleased += t.released
	}
	if len(s.shops) > 0 {
		if snap := s.shops[0].cat.snapshot(); snap != nil {
			out.CatalogItems, out.CatalogPriced = snap.total, len(snap.items)
		}
	}
	s.cnt.mu.Lock()
	out.Created, out.Replayed, out.Retries = s.cnt.created, s.cnt.replayed, s.cnt.retries
	out.Unknown, out.Failed, out.FirstError = s.cnt.unknown, s.cnt.failed, s.cnt.firstError
	out.PointsRefused = s.cnt.pointsRefused
	out.ReservationsRefused, out.ReservationsEndedElsewhere = s.cnt.reservationsRefused, s.cnt.reservationsEnded
	for k, v := range s.cnt.errors {
		out.Errors[k] = v
	}
	s.cnt.mu.Unlock()
	if selling > 0 {
		out.ReceiptsPerSecond = float64(out.Receipts) / selling.Seconds()
	}
	return out
}
