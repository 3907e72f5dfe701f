package ledger_test

import (
	"context"
	"flag"
	"fmt"
	"testing"

	"github.com/shopspring/decimal"
	"pgregory.net/rapid"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// setRapidChecks bounds rapid's checks for this package's slow (disk)
// properties unless -rapid.checks was given.
func setRapidChecks(n int) {
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "rapid.checks" })
	if !given {
		_ = flag.Set("rapid.checks", fmt.Sprint(n))
	}
}

var accounts = []string{"a/x", "a/y", "b/x", "b/z", "c"}
var assets = []storeline.Asset{"cur:EUR", "item:milk", "pts:p1"}

// genTransfer draws a remote event with balanced postings.
func genTransfer(t *rapid.T, origin storeline.StoreID, n int, pos ledger.Position) storeline.Event {
	var ps []storeline.Posting
	for k := rapid.IntRange(1, 3).Draw(t, "legs"); k > 0; k-- {
		a := rapid.SampledFrom(assets).Draw(t, "asset")
		amt := decimal.NewFromInt(int64(rapid.IntRange(1, 50).Draw(t, "amount")))
		from := rapid.SampledFrom(accounts).Draw(t, "from")
		to := rapid.SampledFrom(accounts).Draw(t, "to")
		ps = append(ps, storeline.Posting{Account: from, Asset: a, Amount: amt.Neg()},
			storeline.Posting{Account: to, Asset: a, Amount: amt})
	}
	return storeline.Event{
		ID: eid(uint64(n)), Origin: origin, Epoch: pos.Epoch, Seq: pos.Seq,
		SchemaVersion: storeline.SchemaVersion, HLC: uint64(n), Kind: storeline.KindTransfer,
		Body:     &storeline.Transfer{Reason: fmt.Sprintf("r%d", n)},
		Postings: storeline.MergePostings(ps),
	}
}

type replica struct {
	o ledger.Options
	l *ledger.Ledger
}

func (r *replica) reopen(t *rapid.T) {
	if err := r.l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	l, err := ledger.Open(r.o)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	r.l = l
}

func TestReplicasConverge(t *testing.T) {
	checks := 8
	if *long {
		checks = 100
	}
	setRapidChecks(checks)
	rapid.Check(t, func(t *rapid.T) {
		ctx := context.Background()
		var reps [2]*replica
		for i, name := range []storeline.StoreID{"ra", "rb"} {
			o := testOptions(tempDir(t))
			o.Origin = name
			o.WALSegmentBytes = 2<<20 + 64<<10
			o.MaxBatchBytes = 64 << 10
			l, err := ledger.Open(o)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			reps[i] = &replica{o, l}
		}
		defer func() {
			for _, r := range reps {
				r.l.Close()
			}
		}()
		// Phase 1: each replica appends its own receipts, with retries and
		// a reopen.
		n := 1
		for _, r := range reps {
			k := rapid.IntRange(0, 6).Draw(t, "appends")
			for i := 0; i < k; i++ {
				id := n
				if i > 0 && rapid.Bool().Draw(t, "retry") {
					id = n - 1
				} else {
					n++
				}
				if _, _, err := r.l.Append(ctx, receiptEvent(eid(uint64(1000+id)), 1+id%4, id)); err != nil {
					t.Fatalf("Append: %v", err)
				}
				if rapid.IntRange(0, 9).Draw(t, "reopen") == 0 {
					r.reopen(t)
				}
			}
		}
		// Remote origins' events, some with a second copy at a later epoch.
		var all []storeline.Event
		for _, origin := range []storeline.StoreID{"o1", "o2"} {
			k := rapid.IntRange(0, 8).Draw(t, "remote")
			var seq2 uint64
			for s := 1; s <= k; s++ {
				ev := genTransfer(t, origin, n, ledger.Position{Epoch: 1, Seq: uint64(s)})
				n++
				all = append(all, ev)
				if rapid.IntRange(0, 3).Draw(t, "copy") == 0 {
					c := ev
					seq2++
					c.Epoch, c.Seq = 2, seq2
					all = append(all, c)
				}
			}
		}
		for _, r := range reps {
			j, err := r.l.Journal(r.o.Origin, ledger.Position{}, 0)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, j...)
		}
		// The model: balances are the sum of the postings of each (origin,
		// ID) once.
		model := map[string]decimal.Decimal{}
		seen := map[string]bool{}
		for _, ev := range all {
			k := string(ev.Origin) + ev.ID.String()
			if seen[k] {
				continue
			}
			seen[k] = true
			for _, p := range ev.Postings {
				model[p.Account+" "+string(p.Asset)] = model[p.Account+" "+string(p.Asset)].Add(p.Amount)
			}
		}
		// Phase 2: feed every event to each replica in its own order, with
		// duplicates and reopens.
		for ri, r := range reps {
			order := rapid.Permutation(all).Draw(t, fmt.Sprintf("order%d", ri))
			for _, ev := range order {
				if ev.Origin == r.o.Origin {
					continue
				}
				times := 1
				if rapid.IntRange(0, 4).Draw(t, "dup") == 0 {
					times = 2
				}
				for ; times > 0; times-- {
					if _, err := r.l.ApplyRemote(ctx, ev); err != nil {
						t.Fatalf("ApplyRemote(%s %s at %d/%d): %v", ev.Origin, ev.ID, ev.Epoch, ev.Seq, err)
					}
				}
				if rapid.IntRange(0, 19).Draw(t, "reopen") == 0 {
					r.reopen(t)
				}
			}
		}
		for _, r := range reps {
			if err := r.l.CheckConservation(); err != nil {
				t.Fatal(err)
			}
			bs, err := r.l.Balances("")
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]decimal.Decimal{}
			for _, b := range bs {
				if !b.Amount.IsZero() {
					got[b.Account+" "+string(b.Asset)] = b.Amount
				}
			}
			for k, w := range model {
				if !got[k].Equal(w) {
					t.Fatalf("%s: Balance(%s) = %s, want %s", r.o.Origin, k, got[k], w)
				}
			}
			for k, g := range got {
				if !model[k].Equal(g) {
					t.Fatalf("%s: Balance(%s) = %s, want %s", r.o.Origin, k, g, model[k])
				}
			}
		}
		for _, origin := range []storeline.StoreID{"o1", "o2", "ra", "rb"} {
			a, b := journalKeys(t, reps[0].l, origin), journalKeys(t, reps[1].l, origin)
			if fmt.Sprint(a) != fmt.Sprint(b) {
				t.Fatalf("journal of %s differs:\n ra %v\n rb %v", origin, a, b)
			}
		}
	})
}

func journalKeys(t *rapid.T, l *ledger.Ledger, origin storeline.StoreID) []string {
	j, err := l.Journal(origin, ledger.Position{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(j))
	for i, ev := range j {
		out[i] = fmt.Sprintf("%d/%d:%s", ev.Epoch, ev.Seq, ev.ID)
	}
	return out
}

// tempDir makes a directory removed when the test binary's test ends.
var tempDir func(t *rapid.T) string
