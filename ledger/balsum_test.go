package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestBalanceBytesMatchDecimalChain checks that every stored balance is,
// exponent included, decimal.Zero plus its postings added one by one
// with decimal.Add: the committer sums on int64s (storeline.DecimalSum)
// and builds balance keys in one reused buffer, live through the batch
// view and its hot balances, and at replay through a plain transaction.
// Amounts mix exponents and coefficients past an int64.
func TestBalanceBytesMatchDecimalChain(t *testing.T) {
	var haltAt atomic.Uint64
	o := testOptions(t.TempDir())
	o.Seams = &ledger.Seams{Apply: func(lsn uint64) error {
		if h := haltAt.Load(); h != 0 && lsn >= h {
			return errors.New("injected apply failure")
		}
		return nil
	}}
	l, err := ledger.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.Close() }()
	rng := rand.New(rand.NewPCG(5, 17))
	huge := new(big.Int).Lsh(big.NewInt(1), 70)
	amount := func() decimal.Decimal {
		exp := int32(rng.IntN(7)) - 4
		if rng.IntN(8) == 0 {
			return decimal.NewFromBigInt(new(big.Int).Add(huge, big.NewInt(rng.Int64N(1000))), exp)
		}
		return decimal.New(rng.Int64N(1_000_000)+1, exp)
	}
	want := map[string]decimal.Decimal{} // account NUL asset → chain
	seq := uint64(0)
	event := func() storeline.Event {
		seq++
		var ps []storeline.Posting
		for range 1 + rng.IntN(4) {
			a := assets[rng.IntN(len(assets))]
			amt := amount()
			ps = append(ps,
				storeline.Posting{Account: accounts[rng.IntN(len(accounts))], Asset: a, Amount: amt.Neg()},
				storeline.Posting{Account: accounts[rng.IntN(len(accounts))], Asset: a, Amount: amt})
		}
		return storeline.Event{
			ID: eid(seq), Origin: "s2", Epoch: 1, Seq: seq,
			SchemaVersion: storeline.SchemaVersion, HLC: seq, Kind: storeline.KindTransfer,
			Body:     &storeline.Transfer{Reason: fmt.Sprintf("r%d", seq)},
			Postings: storeline.MergePostings(ps),
		}
	}
	applied := func(ev storeline.Event) {
		for _, p := range ev.Postings {
			k := p.Account + "\x00" + string(p.Asset)
			cur, ok := want[k]
			if !ok {
				cur = decimal.Zero
			}
			want[k] = cur.Add(p.Amount)
		}
	}
	ctx := context.Background()
	for range 300 {
		ev := event()
		if _, err := l.ApplyRemote(ctx, ev); err != nil {
			t.Fatal(err)
		}
		applied(ev)
	}
	check := func(when string) {
		t.Helper()
		got, err := l.Balances("")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d balances, want %d", when, len(got), len(want))
		}
		for _, b := range got {
			w := want[b.Account+"\x00"+string(b.Asset)]
			gb, _ := b.Amount.MarshalBinary()
			wb, _ := w.MarshalBinary()
			if string(gb) != string(wb) {
				t.Fatalf("%s: balance %s %s = %s [exp %d], chain gives %s [exp %d]",
					when, b.Account, b.Asset, b.Amount, b.Amount.Exponent(), w, w.Exponent())
			}
		}
	}
	check("live")
	// One more event is answered (its frame is synced) but not applied:
	// the reopen replays it through a plain transaction.
	haltAt.Store(l.AppliedLSN() + 1)
	ev := event()
	for len(ev.Postings) < 4 {
		seq--
		ev = event()
	}
	if _, err := l.ApplyRemote(ctx, ev); err != nil {
		t.Fatal(err)
	}
	applied(ev)
	l.Close()
	haltAt.Store(0)
	if l, err = ledger.Open(o); err != nil {
		t.Fatal(err)
	}
	check("after replay")
	checkConservation(t, l)
}

// TestEncodeBodyMatchesMarshal checks that a body's stored bytes are
// msgpack.Marshal's, the receipt and the return, which encodeBody hands
// to their own encoders, included.
func TestEncodeBodyMatchesMarshal(t *testing.T) {
	l := open(t, testOptions(t.TempDir()))
	orig := receiptEvent(eid(1), 3, 1)
	origStored := mustAppend(t, l, orig)
	ret := storeline.Event{
		ID: eid(2), Kind: storeline.KindReturn, OccurredAt: orig.OccurredAt, BusinessDate: orig.BusinessDate,
		Body: &storeline.Return{Terminal: "t1", Shift: "sh1", Seller: "alice", Manager: "bob", Reason: "faulty", Currency: "EUR", Original: &origStored.ID,
			Lines:   []storeline.Line{origStored.Body.(*storeline.Receipt).Lines[0]},
			Refunds: []storeline.Payment{{Method: storeline.Cash, Amount: origStored.Body.(*storeline.Receipt).Lines[0].Total}}},
	}
	mustAppend(t, l, ret)
	tr := storeline.Event{ID: eid(3), Origin: "s2", Epoch: 1, Seq: 1, SchemaVersion: storeline.SchemaVersion,
		Kind: storeline.KindTransfer, Body: &storeline.Transfer{Reason: "r"}}
	if _, err := l.ApplyRemote(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct {
		origin storeline.StoreID
		id     storeline.EventID
	}{{store, eid(1)}, {store, eid(2)}, {"s2", eid(3)}} {
		ev, err := l.Event(k.origin, k.id)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ledger.EncodeBody(ev.Body)
		if err != nil {
			t.Fatal(err)
		}
		want, err := msgpack.Marshal(ev.Body)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("%s body: encodeBody %x, msgpack.Marshal %x", ev.Kind, got, want)
		}
	}
}
