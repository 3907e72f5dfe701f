package storeline

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"
)

var updateComputeGolden = flag.Bool("compute.update", false, "rewrite testdata/compute.golden from the current code")

// genTillInput returns receipts and returns as tills send them, valid or
// not: quantities, prices and rates not yet normalised, too many places,
// negative and zero figures, three currency scales, and figures too big
// for int64 arithmetic.
func genTillInput(seed uint64, n int) []any {
	rng := rand.New(rand.NewPCG(seed, 77))
	pick := func(xs ...string) decimal.Decimal { return mustDec(xs[rng.IntN(len(xs))]) }
	odd := func() bool { return rng.IntN(40) == 0 } // a rare, often refused, choice
	huge := decimal.NewFromBigInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(20), nil), 0)
	qty := func(u Unit) decimal.Decimal {
		if odd() {
			return pick("0", "-1", "0.0001", "1.5", "2.000", "1e3", "0.347")
		}
		if odd() {
			return huge
		}
		if odd() {
			return decimal.New(rng.Int64N(1e12), 0)
		}
		if u == Piece {
			return decimal.New(1+rng.Int64N(5), 0)
		}
		return decimal.New(1+rng.Int64N(5000), -3)
	}
	money := func(c Currency) decimal.Decimal {
		if odd() {
			return pick("0", "-0.01", "1.001", "19.99", "20", "0.5", "1e2")
		}
		if odd() {
			return decimal.New(rng.Int64N(1e17), -c.Scale())
		}
		if odd() {
			return huge
		}
		return decimal.New(1+rng.Int64N(100000), -c.Scale()+int32(rng.IntN(2)))
	}
	lines := func(c Currency) []Line {
		ls := make([]Line, 1+rng.IntN(6))
		if odd() {
			ls = nil
		}
		for i := range ls {
			u := []Unit{Piece, Kg, Litre, Piece}[rng.IntN(4)]
			ls[i] = Line{Item: ItemID([]string{"milk", "i1", "i2", "cheese"}[rng.IntN(4)]), Dept: DeptID([]string{"food", "drinks"}[rng.IntN(2)]),
				Unit: u, Qty: qty(u), Price: money(c), VATRate: pick("0", "5", "7.7", "10", "10.00", "20", "13.50", "1e1")}
			if odd() {
				ls[i].Item, ls[i].Dept, ls[i].Unit = "-bad", "", ""
			}
			if odd() {
				ls[i].VATRate = pick("100", "-1", "5.555")
			}
			if odd() {
				ls[i].Discount = money(c)
			}
			if rng.IntN(5) == 0 {
				ls[i].Discount = decimal.New(rng.Int64N(50), -c.Scale())
			}
		}
		return ls
	}
	pays := func(c Currency) []Payment {
		ps := make([]Payment, 1+rng.IntN(3))
		for i := range ps {
			ps[i] = Payment{Method: []PayMethod{Cash, Card, Points, Cash}[rng.IntN(4)], Amount: money(c)}
			if odd() {
				ps[i].Method = "cheque"
			}
			if rng.IntN(3) == 0 {
				ps[i].Amount = decimal.New(1+rng.Int64N(1e7), -c.Scale())
			}
			if ps[i].Method == Points {
				ps[i].Points = rng.Int64N(1000) - 10
			}
		}
		return ps
	}
	var out []any
	for i := 0; i < n; i++ {
		c := []Currency{"EUR", "EUR", "JPY", "KWD"}[rng.IntN(4)]
		if odd() {
			c = "eur"
		}
		r := &Receipt{Terminal: "t1", Shift: "sh1", Seller: "alice", Currency: c, Lines: lines(c), Payments: pays(c)}
		if odd() {
			r.Seller = ""
		}
		if rng.IntN(4) == 0 {
			r.Customer, r.Programme, r.Earned = "cust1", "prog", rng.Int64N(100)
		}
		// Pay exactly, or more in cash, often enough to be valid.
		if rng.IntN(4) != 0 {
			probe := *r
			probe.Lines = append([]Line(nil), r.Lines...)
			probe.Payments = []Payment{{Method: Cash, Amount: decimal.New(1, 40)}}
			if probe.Compute() == nil {
				r.Payments = []Payment{{Method: []PayMethod{Cash, Card}[rng.IntN(2)], Amount: probe.Total}}
				if rng.IntN(2) == 0 {
					r.Payments = append(r.Payments, Payment{Method: Cash, Amount: money(c)})
				}
			}
		}
		ret := &Return{Terminal: "t1", Shift: "sh1", Seller: "alice", Manager: "bob", Currency: c, Reason: "broken",
			Lines: lines(c), Refunds: pays(c)}
		if rng.IntN(4) != 0 {
			probe := *ret
			probe.Lines = append([]Line(nil), ret.Lines...)
			if total, _, err := computeLines(c, probe.Lines); err == nil {
				ret.Refunds = []Payment{{Method: []PayMethod{Cash, Card}[rng.IntN(2)], Amount: total}}
			}
		}
		if rng.IntN(3) == 0 {
			ret.Points = &PointsReversal{Programme: "prog", Customer: "cust1", Reversed: rng.Int64N(50), Debt: rng.Int64N(3)}
		}
		out = append(out, r, ret)
	}
	return out
}

// outcome is everything Compute and DerivePostings decide about a body:
// the error, the stored bytes, and the postings with their exponents.
func outcome(b Body) string {
	var buf bytes.Buffer
	var err error
	switch v := b.(type) {
	case *Receipt:
		err = v.Compute()
	case *Return:
		err = v.Compute()
	}
	if err != nil {
		fmt.Fprintf(&buf, "compute: %v (%s)", err, KindOf(err))
		return buf.String()
	}
	enc, err := msgpack.Marshal(b)
	if err != nil {
		return "marshal: " + err.Error()
	}
	fmt.Fprintf(&buf, "%x\n", enc)
	ps, err := DerivePostings("s1", b)
	if err != nil {
		fmt.Fprintf(&buf, "postings: %v", err)
		return buf.String()
	}
	for _, p := range ps {
		m, _ := p.Amount.MarshalBinary()
		fmt.Fprintf(&buf, "%s %s %x\n", p.Account, p.Asset, m)
	}
	return buf.String()
}

// TestComputeMatchesStoredOutcomes runs Compute, the body encoding and
// DerivePostings over a corpus of till input and compares each outcome
// (error text, body bytes, postings with their exponents) with the
// outcome of the code before its int64 arithmetic (testdata/compute.golden,
// the first 8 bytes of a SHA-256 per body).
func TestComputeMatchesStoredOutcomes(t *testing.T) {
	const path = "testdata/compute.golden"
	bodies := genTillInput(1, 1500)
	if *updateComputeGolden {
		var buf bytes.Buffer
		for _, b := range bodies {
			sum := sha256.Sum256([]byte(outcome(b.(Body))))
			fmt.Fprintf(&buf, "%x\n", sum[:8])
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		bodies = genTillInput(1, 1500)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	i, valid := 0, 0
	for ; sc.Scan(); i++ {
		if i >= len(bodies) {
			t.Fatalf("%s has more outcomes than the corpus's %d", path, len(bodies))
		}
		want, err := hex.DecodeString(sc.Text())
		if err != nil {
			t.Fatal(err)
		}
		got := outcome(bodies[i].(Body))
		if sum := sha256.Sum256([]byte(got)); !bytes.Equal(sum[:8], want) {
			t.Fatalf("body %d (%T): outcome\n%s\nis not the stored one", i, bodies[i], got)
		}
		if !bytes.HasPrefix([]byte(got), []byte("compute:")) {
			valid++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if i != len(bodies) {
		t.Fatalf("%s holds %d outcomes, the corpus %d", path, i, len(bodies))
	}
	// The corpus must exercise the arithmetic, not only the refusals.
	if valid < len(bodies)/3 {
		t.Fatalf("only %d of %d bodies computed", valid, len(bodies))
	}
}
