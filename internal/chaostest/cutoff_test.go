package chaostest_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
	"github.com/storeline/storeline/internal/faultproxy"
	"github.com/storeline/storeline/internal/proctest"
)

var (
	flagDayReceipts = flag.Int("chaos.day-receipts", 40, "receipts each shop takes while cut off from central (TestChaosCutOffDay)")
	flagClockOffset = flag.Duration("chaos.clock-offset", 7*time.Hour, "how far s1's clock runs ahead of the machine's (central's) and s2's behind (TestChaosCutOffDay)")
)

// dayLength is the span of the shop's clock the tills stamp a cut-off
// day's receipts across: more than a day, so the business dates cross the
// shop's midnight and UTC's whatever the time the test runs.
const dayLength = 26 * time.Hour

// TestChaosCutOffDay runs one central node and two shops as processes,
// s1's clock hours ahead of the machine's and s2's hours behind, each
// shop's replication link through a faultproxy. After a few receipts
// online the links are cut: corrupted and truncated bodies go to a shop's
// tills' API and to central's push (each must be refused with a 4xx
// problem+json or the connection dropped, change nothing, and leave the
// process serving); then each shop takes a long day of receipts, s1
// SIGKILLed halfway and restarted with its clock put right (hours back,
// as NTP would at a reboot). The links are restored and the test checks
// that every acknowledged receipt is at its shop and at central exactly
// once with equal balances (chaos.check); that every event keeps at
// central the HLC time, occurred-at time and business date its shop gave
// it; that each shop's HLC times rise strictly along its journal (across
// the clock correction too) and were read from the shop's skewed clock;
// and that each business date is the date of the till's time in the
// shop's time zone.
func TestChaosCutOffDay(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test skipped in -short mode")
	}
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay the corruptions and receipts with -chaos.seed=%d)", seed, seed)
	off := *flagClockOffset
	if off < time.Hour {
		t.Fatalf("-chaos.clock-offset=%v: want at least an hour, so a clock left unskewed shows", off)
	}
	offsets := map[storeline.StoreID]time.Duration{"s1": off, "s2": -off}
	c := &chaos{t: t, client: &http.Client{Timeout: 10 * time.Second}, acked: map[storeline.StoreID]map[storeline.EventID]ack{}}
	root := t.TempDir()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, m := range append(append([]*member{}, c.centrals...), c.shops...) {
			if m.cur != nil {
				t.Logf("log of %s (run %d):\n%s", m.sp.ID, m.runs, m.cur.LogTail())
			}
		}
	})

	tStart := time.Now()
	c.startCentral(root)
	proxies := map[storeline.StoreID]*faultproxy.Proxy{}
	for _, s := range shopNames {
		p, err := faultproxy.New(c.centrals[0].sp.Repl)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		proxies[s] = p
	}
	c.startShopsWith(root, func(sp *spec) {
		s := storeline.StoreID(sp.ID)
		sp.Central = []string{proxies[s].URL()}
		sp.ClockOffset = offsets[s]
	})
	rng := rand.New(rand.NewPCG(seed, 0xc0ff))
	ctx := context.Background()

	// A few receipts online, replicated, so the day starts from a shop
	// and central that agree.
	for _, s := range c.shops {
		for range 3 {
			b, _ := newReceiptAt(rng, 1+rng.IntN(3), time.Now().Add(s.sp.ClockOffset).UTC())
			if !c.postAcked(ctx, s, b) {
				t.FailNow()
			}
		}
	}
	c.waitDrained()

	for _, p := range proxies {
		p.Cut()
	}
	t.Run("corrupt till bodies", func(t *testing.T) { c.corruptTillBodies(t, c.shops[0], rng) })
	t.Run("corrupt pushes", func(t *testing.T) { c.corruptPushes(t, rng) })
	cutBalances := c.centralBalances(t, c.centrals[0])

	// The long day, cut off. The tills stamp their receipts across
	// dayLength of the shop's clock from its skewed now.
	n := *flagDayReceipts
	dayAcks := map[storeline.StoreID]*atomic.Int64{}
	want := map[storeline.StoreID]map[storeline.EventID]storeline.Date{} // the day's receipts and their dates
	riga, err := time.LoadLocation("Europe/Riga")
	if err != nil {
		t.Fatal(err)
	}
	bodies := map[storeline.StoreID][][]byte{}
	for _, s := range shopNames {
		dayAcks[s] = new(atomic.Int64)
		want[s] = map[storeline.EventID]storeline.Date{}
		from := time.Now().Add(offsets[s])
		for i := range n {
			at := from.Add(time.Duration(i) * dayLength / time.Duration(n)).UTC()
			b, id := newReceiptAt(rng, 1+rng.IntN(3), at)
			bodies[s] = append(bodies[s], b)
			want[s][id] = storeline.Date(at.In(riga).Format("2006-01-02"))
		}
	}
	// The test's premises: the day crosses the shop's midnight, and some
	// receipts' business date is not their UTC date (nor, so, one a
	// replica could derive without the shop's zone).
	dates := map[storeline.Date]bool{}
	for _, d := range want["s1"] {
		dates[d] = true
	}
	if len(dates) < 2 {
		t.Fatalf("the day's receipts have %d business dates; the test needs the day to cross midnight", len(dates))
	}
	for _, s := range shopNames {
		notUTC := 0
		for _, b := range bodies[s] {
			var r receiptJSON
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			if want[s][r.ID] != storeline.Date(r.OccurredAt.UTC().Format("2006-01-02")) {
				notUTC++
			}
		}
		if notUTC == 0 {
			t.Fatalf("%s: no receipt of the day has a business date other than its UTC date; raise -chaos.day-receipts", s)
		}
	}
	dayCtx, stopDay := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopDay(); wg.Wait() }()
	s1 := c.shops[0]
	// s1's till pauses halfway through its day (half) until s1 has been
	// SIGKILLed and restarted (resume), so that half its day comes after.
	half, resume := make(chan struct{}), make(chan struct{})
	for _, s := range c.shops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			store := storeline.StoreID(s.sp.ID)
			for i, b := range bodies[store] {
				if s == s1 && i == n/2 {
					close(half)
					select {
					case <-resume:
					case <-dayCtx.Done():
						return
					}
				}
				if !c.postAcked(dayCtx, s, b) {
					return
				}
				dayAcks[store].Add(1)
			}
		}()
	}
	// Halfway through s1's day, a SIGKILL; it comes back with its clock
	// put right, hours behind the HLC times it has handed out.
	select {
	case <-half:
	case <-time.After(2 * time.Minute):
		t.Fatalf("s1's till did not get halfway through its day: %d of %d", dayAcks["s1"].Load(), n)
	}
	s1.cur.Kill()
	s1.sp.ClockOffset = 0
	s1.restart(t)
	close(resume)
	wg.Wait()
	if k := c.refused.Load(); k > 0 {
		t.Fatalf("%d receipts refused with a 4xx", k)
	}
	for _, s := range shopNames {
		if k := dayAcks[s].Load(); k != int64(n) {
			t.Fatalf("%s acknowledged %d of the day's %d receipts", s, k, n)
		}
	}
	tEnd := time.Now()

	// The cut held: nothing of the day reached central, and each shop
	// holds the whole day unsent (plus the one receipt of the corrupted
	// bodies' test at s1).
	if got := c.centralBalances(t, c.centrals[0]); got != cutBalances {
		t.Errorf("central's balances changed while the shops were cut off")
	}
	for _, s := range c.shops {
		exp := float64(n)
		if s == s1 {
			exp++
		}
		// The gauge is set at each push attempt, which backs off while
		// the link is down.
		proctest.WaitFor(t, s.sp.ID+"'s whole day waiting for central", 30*time.Second, func() error {
			w, err := c.waitingAt(s)
			if err == nil && w != exp {
				err = fmt.Errorf("%v events waiting, want %v", w, exp)
			}
			return err
		})
	}
	var severed int64
	for _, p := range proxies {
		severed += p.Severed.Load()
		p.Heal()
	}
	tHeal := time.Now()
	c.waitDrained()
	converged := time.Since(tHeal)
	for _, m := range append(append([]*member{}, c.shops...), c.centrals...) {
		m.cur.Stop(t)
	}
	lost, dups := c.check()
	c.checkDay(want, offsets, tStart, tEnd)
	t.Logf("seed %d: clock offsets s1 %+v (put right after the kill), s2 %+v; %d receipts per shop cut off over %v of shop time (%d business dates at s1); %d connections severed by the cut; %d receipts acknowledged in all, %d lost, %d duplicated; central caught up %v after the link came back",
		seed, offsets["s1"], offsets["s2"], n, dayLength, len(dates), severed, c.nAcked.Load(), lost, dups, converged.Round(time.Millisecond))
}

// startCentral starts a one-node central cluster and waits until it
// leads and has written the master data.
func (c *chaos) startCentral(root string) {
	t := c.t
	a := proctest.FreeAddrs(t, 5)
	m := &member{sp: spec{Role: "central", ID: "c1", Dir: filepath.Join(root, "c1", "data"),
		Raft: a[0], API: a[1], Admin: a[2], Gossip: a[3], Repl: a[4], Bootstrap: true, SeedMaster: true}}
	mkdir(t, filepath.Dir(m.sp.Dir))
	m.cur = start(t, m.sp, 0)
	m.sp.SeedMaster = false
	c.centrals = []*member{m}
	c.waitCentralsHealthy()
}

// newReceiptAt is newReceiptOf with the till's time at, and the receipt's
// ID.
func newReceiptAt(rng *rand.Rand, lines int, at time.Time) ([]byte, storeline.EventID) {
	var r receiptJSON
	if err := json.Unmarshal(newReceiptOf(rng, lines), &r); err != nil {
		panic(err)
	}
	r.OccurredAt = at
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	return b, r.ID
}

// checkDay checks the day's receipts and each shop's HLC times in what
// check read: at the shop and at central the same HLC time, occurred-at
// time and business date, the date the till's time has in the shop's
// zone; HLC times strictly rising along each journal; and, for every
// event, an HLC time read from the shop's skewed clock (between the
// test's start and the day's end, offset), which the corrected s1's
// events keep too, since its HLC may not fall back to its wall clock.
func (c *chaos) checkDay(want map[storeline.StoreID]map[storeline.EventID]storeline.Date, offsets map[storeline.StoreID]time.Duration, tStart, tEnd time.Time) {
	t := c.t
	const slack = 2 * time.Second
	for i, s := range shopNames {
		shop := c.shopStates[i].events[s]
		byID := map[storeline.EventID]storeline.Event{}
		for _, ev := range shop {
			byID[ev.ID] = ev
		}
		lo := crdt.MakeTimestamp(tStart.Add(offsets[s]-slack).UnixMilli(), 0)
		hi := crdt.MakeTimestamp(tEnd.Add(offsets[s]+slack).UnixMilli(), crdt.MaxLogical)
		seen, bad := 0, 0
		errorf := func(format string, args ...any) {
			t.Helper()
			if bad++; bad <= 10 {
				t.Errorf(format, args...)
			}
		}
		for _, st := range append([]replicaState{c.shopStates[i]}, c.centralStates...) {
			evs := st.events[s]
			for k, ev := range evs {
				if k > 0 && ev.HLC <= evs[k-1].HLC {
					errorf("%s: %s's event %d/%d has HLC %v, not after the one before it (%v)", st.name, s, ev.Epoch, ev.Seq,
						crdt.Timestamp(ev.HLC), crdt.Timestamp(evs[k-1].HLC))
				}
				if ts := crdt.Timestamp(ev.HLC); ts < lo || ts > hi {
					errorf("%s: %s's event %d/%d has HLC %s, outside the shop's skewed clock [%s, %s]", st.name, s, ev.Epoch, ev.Seq,
						ts.Time().Format(time.RFC3339), lo.Time().Format(time.RFC3339), hi.Time().Format(time.RFC3339))
				}
				orig, ok := byID[ev.ID]
				if !ok {
					continue // check reported it
				}
				if ev.HLC != orig.HLC || !ev.OccurredAt.Equal(orig.OccurredAt) || ev.BusinessDate != orig.BusinessDate {
					errorf("%s: %s's event %s is HLC %v, at %s, dated %s; the shop's HLC %v, at %s, dated %s", st.name, s, ev.ID,
						crdt.Timestamp(ev.HLC), ev.OccurredAt.Format(time.RFC3339), ev.BusinessDate,
						crdt.Timestamp(orig.HLC), orig.OccurredAt.Format(time.RFC3339), orig.BusinessDate)
				}
				if d, ok := want[s][ev.ID]; ok {
					seen++
					if ev.BusinessDate != d {
						errorf("%s: %s's receipt %s at %s is dated %s, want %s (its date in Europe/Riga)", st.name, s, ev.ID,
							ev.OccurredAt.Format(time.RFC3339), ev.BusinessDate, d)
					}
				}
			}
		}
		if bad > 10 {
			t.Errorf("%s: %d more errors of the day's checks", s, bad-10)
		}
		if exp := len(want[s]) * (1 + len(c.centralStates)); seen != exp {
			t.Errorf("%s: %d of the day's receipts found across the replicas, want %d", s, seen, exp)
		}
	}
}
