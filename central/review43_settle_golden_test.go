package central_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

var review43Update = flag.Bool("update", false, "rewrite the settlement golden files (testdata/review43_settle.golden, review48_settle.golden) of the tests run")

// review43Golden records, in order, what a settlement sequence answered
// and, at the end, every key and value the settlement and receivables
// indexes hold, so that a refactoring of the two sides can be checked
// byte for byte against the code it replaced.
type review43Golden struct {
	t   *testing.T
	out bytes.Buffer
}

func (g *review43Golden) do(method, addr, path string, body any, hdr map[string]string) response {
	g.t.Helper()
	r := apiDo(g.t, method, addr, path, adminKey, body, hdr)
	fmt.Fprintf(&g.out, "%s %s\n%d %s\n\n", method, path, r.status, bytes.TrimSpace(r.body))
	return r
}

// TestReview43SettlementGolden drives payables and receivables through
// one realistic sequence on a single node with a clock that does not
// move by itself: invoices and returns, payments, a retry with the same
// content (200) and with other content (409), cancels (one dated by the
// operator, one refused twice), transfers by hand that take a payment's
// reason or name no document, statements a page at a time, the
// receivables report as of three days and the payable balances. The
// answers and the index state must equal testdata/review43_settle.golden
// (-update rewrites it). It runs at FSM level 8, the last level whose
// payables rows it pins: review48_payable_rows_test.go runs the same
// sequence at level 9.
func TestReview43SettlementGolden(t *testing.T) {
	review43SettleGolden(t, 8, "review43_settle.golden")
}

// review43SettleGolden runs the golden sequence on a node telling FSM
// level level and compares it with testdata/golden.
func review43SettleGolden(t *testing.T, level int, golden string) {
	clock := &testClock{base: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	cfg := central.WithFSMLevel(testConfig(t, "solo", filepath.Join(t.TempDir(), "solo")), level)
	cfg.Now = clock.Now
	n := openNode(t, cfg)
	waitFor(t, fmt.Sprintf("leader at FSM level %d", level), 20*time.Second, func() bool {
		l, err := n.ClusterLevel()
		return n.IsLeader() && err == nil && l == level
	})
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/buyers/b1", adminKey, map[string]any{"name": "Cafe Ltd"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/buyers/b2", adminKey, map[string]any{"name": "Bistro"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/banks/k1", adminKey, map[string]any{"name": "First Bank"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/suppliers/p2", adminKey, map[string]any{"name": "Mill"}, nil))
	g := &review43Golden{t: t}
	doc := func(id string, d map[string]any) {
		g.do("PUT", a, "/v1/documents/"+id, d, nil)
		g.do("POST", a, "/v1/documents/"+id+"/post", nil, nil)
	}
	hand := func(name, reason, ref string, account string, amount string) {
		t.Helper()
		amt := decimal.RequireFromString(amount)
		pos, err := n.Transfer(context.Background(), storeline.DerivedEventID("review43/"+name), reason, ref, []storeline.Posting{
			{Account: account, Asset: "cur:EUR", Amount: amt},
			{Account: "bank/k1", Asset: "cur:EUR", Amount: amt.Neg()},
		})
		fmt.Fprintf(&g.out, "TRANSFER %s %s %s %s %s\n%+v %v\n\n", name, reason, ref, account, amount, pos, err)
	}

	// Day 0: invoices from both suppliers, outgoing invoices to both buyers.
	doc("in1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "number": "INV-1",
		"lines": lines(map[string]any{"item": "milk", "qty": "20", "purchase_price": "1.10"})})
	doc("in2", map[string]any{"type": "incoming_invoice", "store": "s2", "supplier": "p2", "number": "INV-2",
		"lines": lines(map[string]any{"item": "flour", "qty": "10", "purchase_price": "2.20"})})
	doc("out1", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1", "number": "W-1", "due_on": clock.day(1),
		"lines": lines(map[string]any{"item": "milk", "qty": "4", "price": "2.20"})})
	doc("out2", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b2", "number": "W-2", "due_on": clock.day(40),
		"lines": lines(map[string]any{"item": "milk", "qty": "2", "price": "3.30"})})

	// Day 1: payments on both sides; retries with the same and other content.
	clock.days.Store(1)
	sp1 := map[string]any{"id": "sp1", "supplier": "p1", "bank": "k1", "currency": "EUR", "amount": "10", "paid_on": clock.day(1), "reference": "PP-1"}
	bp1 := map[string]any{"id": "bp1", "buyer": "b1", "bank": "k1", "currency": "EUR", "amount": "5", "paid_on": clock.day(1), "reference": "PO-7", "note": "first\npart"}
	g.do("POST", a, "/v1/supplier_payments", sp1, nil)
	g.do("POST", a, "/v1/buyer_payments", bp1, nil)
	g.do("POST", a, "/v1/supplier_payments", sp1, nil)
	g.do("POST", a, "/v1/buyer_payments", bp1, nil)
	g.do("POST", a, "/v1/supplier_payments", map[string]any{"id": "sp1", "supplier": "p1", "bank": "k1", "currency": "EUR", "amount": "11", "paid_on": clock.day(1)}, nil)
	g.do("POST", a, "/v1/buyer_payments", map[string]any{"id": "bp1", "buyer": "b1", "bank": "k1", "currency": "EUR", "amount": "6", "paid_on": clock.day(1)}, nil)
	g.do("POST", a, "/v1/supplier_payments", map[string]any{"id": "sp9", "supplier": "nobody", "bank": "k1", "currency": "EUR", "amount": "1", "paid_on": clock.day(1)}, nil)
	g.do("POST", a, "/v1/buyer_payments", map[string]any{"id": "bp9", "buyer": "nobody", "bank": "k1", "currency": "EUR", "amount": "1", "paid_on": clock.day(1)}, nil)
	g.do("POST", a, "/v1/supplier_payments", map[string]any{"id": "sp8", "supplier": "p1", "bank": "k9", "currency": "EUR", "amount": "1", "paid_on": clock.day(1)}, nil)
	g.do("POST", a, "/v1/buyer_payments", map[string]any{"id": "bp8", "buyer": "b1", "bank": "k1", "currency": "EUR", "amount": "-1", "paid_on": clock.day(1)}, nil)
	g.do("POST", a, "/v1/buyer_payments", map[string]any{"id": "bp7", "buyer": "b1", "bank": "k1", "currency": "EUR", "amount": "1e2", "paid_on": clock.day(1)}, nil)
	g.do("POST", a, "/v1/supplier_payments", map[string]any{"id": "sp7", "supplier": "p1", "bank": "k1", "currency": "EUR", "amount": "1.001", "paid_on": clock.day(1)}, nil)
	g.do("POST", a, "/v1/supplier_payments", map[string]any{"id": "sp2", "supplier": "p1", "bank": "k1", "currency": "EUR", "amount": "7.5", "paid_on": clock.day(0)}, nil)
	g.do("POST", a, "/v1/buyer_payments", map[string]any{"id": "bp2", "buyer": "b2", "bank": "k1", "currency": "EUR", "amount": "2.6", "paid_on": clock.day(1)}, nil)
	g.do("POST", a, "/v1/supplier_payments", map[string]any{"id": "sp6", "supplier": "p1", "bank": "k1", "currency": "EUR", "amount": 5, "paid_on": clock.day(1)}, nil)
	g.do("POST", a, "/v1/buyer_payments", map[string]any{"id": "bp6", "buyer": "b1", "bank": "k1", "currency": "EUR", "amount": 5, "paid_on": clock.day(1)}, nil)
	g.do("POST", a, "/v1/supplier_payments", map[string]any{"id": "sp6", "buyer": "b1", "bank": "k1", "currency": "EUR", "amount": "5", "paid_on": clock.day(1)}, nil)
	g.do("POST", a, "/v1/buyer_payments", map[string]any{"id": "bp6", "supplier": "p1", "bank": "k1", "currency": "EUR", "amount": "5", "paid_on": clock.day(1)}, nil)
	g.do("POST", a, "/v1/buyer_payments", map[string]any{"id": "bp6", "buyer": "b1", "bank": "k1", "currency": "EUR", "amount": "5", "paid_on": "03/03/2026", "reference": "a\nb"}, nil)
	g.do("POST", a, "/v1/supplier_payments", map[string]any{"id": "sp6", "supplier": "p1", "bank": "k1", "currency": "EUR", "amount": "5", "paid_on": clock.day(1), "reference": "a\nb"}, nil)
	g.do("GET", a, "/v1/supplier_payments/sp1", nil, nil)
	g.do("GET", a, "/v1/buyer_payments/bp1", nil, nil)
	g.do("GET", a, "/v1/supplier_payments/none", nil, nil)
	g.do("GET", a, "/v1/buyer_payments/none", nil, nil)

	// Day 2: returns, a cancelled invoice, transfers by hand.
	clock.days.Store(2)
	doc("ret1", map[string]any{"type": "supplier_return", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "2", "purchase_price": "1.10"})})
	doc("bret1", map[string]any{"type": "buyer_return", "store": "s1", "buyer": "b1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "price": "2.20"})})
	doc("out3", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1", "number": "W-3", "due_on": clock.day(3),
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "price": "2.20"})})
	g.do("POST", a, "/v1/documents/out3/cancel", map[string]any{"reason": "wrong buyer"}, nil)
	hand("t1", "supplier.payment", "ghost", "payable/p1", "1")
	hand("t2", "buyer.payment", "ghost", "receivable/b1", "-1")
	hand("t3", "supplier.payment", "sp2", "payable/p1", "0.5")
	hand("t4", "buyer.payment", "bp2", "receivable/b2", "-0.5")
	hand("t5", "document.post", "nodoc", "payable/p2", "-3")
	hand("t6", "document.post", "nodoc", "receivable/b2", "3")
	hand("t7", "supplier.payment.cancel", "sp1", "payable/p1", "-0.25")
	hand("t8", "buyer.payment.cancel", "bp1", "receivable/b1", "0.25")
	hand("t9", "misc", "", "payable/p1", "0.1")

	// Day 3: cancels, one with the operator's day; a second cancel; an
	// unknown payment; a retry under the same Idempotency-Key.
	clock.days.Store(3)
	g.do("POST", a, "/v1/supplier_payments/sp1/cancel", map[string]any{"reason": "bounced", "cancelled_on": clock.day(4)}, map[string]string{"Idempotency-Key": "r43-sp1"})
	g.do("POST", a, "/v1/supplier_payments/sp1/cancel", map[string]any{"reason": "bounced", "cancelled_on": clock.day(4)}, map[string]string{"Idempotency-Key": "r43-sp1"})
	g.do("POST", a, "/v1/supplier_payments/sp1/cancel", map[string]any{"reason": "again"}, nil)
	g.do("POST", a, "/v1/buyer_payments/bp1/cancel", map[string]any{"reason": "reversed by bank", "cancelled_on": clock.day(2)}, map[string]string{"Idempotency-Key": "r43-bp1"})
	g.do("POST", a, "/v1/buyer_payments/bp1/cancel", map[string]any{"reason": "reversed by bank", "cancelled_on": clock.day(2)}, map[string]string{"Idempotency-Key": "r43-bp1"})
	g.do("POST", a, "/v1/buyer_payments/bp1/cancel", map[string]any{"reason": "again"}, nil)
	g.do("POST", a, "/v1/buyer_payments/bp2/cancel", map[string]any{"reason": "  "}, nil)
	g.do("POST", a, "/v1/supplier_payments/sp2/cancel", map[string]any{"reason": "x", "cancelled_on": clock.day(9)}, nil)
	g.do("POST", a, "/v1/buyer_payments/bp2/cancel", map[string]any{"reason": "x", "cancelled_on": clock.day(9)}, nil)
	g.do("POST", a, "/v1/supplier_payments/none/cancel", map[string]any{"reason": "x"}, nil)
	g.do("POST", a, "/v1/buyer_payments/none/cancel", map[string]any{"reason": "x"}, nil)
	g.do("POST", a, "/v1/buyer_payments", bp1, nil) // a cancelled payment's id is spent
	g.do("GET", a, "/v1/supplier_payments/sp1", nil, nil)
	g.do("GET", a, "/v1/buyer_payments/bp1", nil, nil)

	// Statements: whole, a page at a time, a middle period, refusals.
	for _, party := range []string{"suppliers/p1", "suppliers/p2", "buyers/b1", "buyers/b2"} {
		base := fmt.Sprintf("/v1/%s/statement?currency=EUR&from=%s&to=%s", party, clock.day(0), clock.day(9))
		g.do("GET", a, base, nil, nil)
		after := ""
		for page := 0; page < 20; page++ {
			r := g.do("GET", a, base+"&limit=2"+after, nil, nil)
			next, _ := r.json(t)["next"].(string)
			if next == "" {
				break
			}
			after = "&after=" + next
		}
		g.do("GET", a, fmt.Sprintf("/v1/%s/statement?currency=EUR&from=%s&to=%s", party, clock.day(2), clock.day(2)), nil, nil)
		g.do("GET", a, fmt.Sprintf("/v1/%s/statement?currency=USD&from=%s&to=%s", party, clock.day(0), clock.day(9)), nil, nil)
		g.do("GET", a, base+"&after=bad", nil, nil)
		g.do("GET", a, base+"&limit=0", nil, nil)
	}
	g.do("GET", a, fmt.Sprintf("/v1/suppliers/nobody/statement?currency=EUR&from=%s&to=%s", clock.day(0), clock.day(9)), nil, nil)
	g.do("GET", a, fmt.Sprintf("/v1/buyers/nobody/statement?currency=EUR&from=%s&to=%s", clock.day(0), clock.day(9)), nil, nil)
	g.do("GET", a, "/v1/suppliers/p1/statement?currency=eur", nil, nil)
	g.do("GET", a, "/v1/buyers/b1/statement?currency=eur", nil, nil)

	// The receivables report and the balances.
	for _, q := range []string{"?as_of=" + clock.day(0), "?as_of=" + clock.day(2), "?as_of=" + clock.day(60), "", "?buyer=b1&as_of=" + clock.day(45), "?currency=USD", "?as_of=bad"} {
		g.do("GET", a, "/v1/receivables"+q, nil, nil)
	}
	for _, p := range []string{"payable/", "receivable/", "bank/"} {
		g.do("GET", a, "/v1/balances?prefix="+p, nil, nil)
	}

	// The state the indexes hold.
	for _, prefix := range []string{"st/", "rc/"} {
		meta, err := n.Review40Meta(prefix)
		if err != nil {
			t.Fatal(err)
		}
		keys := make([]string, 0, len(meta))
		for k := range meta {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(&g.out, "META %q\n  %q\n", k, meta[k])
		}
	}

	path := filepath.Join("testdata", golden)
	if *review43Update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, g.out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if got := g.out.Bytes(); !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("differs from %s at line %d:\n got %s\nwant %s", path, i+1, g, w)
			}
		}
		t.Fatalf("differs from %s", path)
	}
}
