package storeline

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"sort"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"
)

// randFxDec returns a decimal whose coefficient mostly fits an int64,
// with the edges where it stops fitting.
func randFxDec(rng *rand.Rand) decimal.Decimal {
	exp := int32(rng.IntN(13)) - 8
	switch rng.IntN(10) {
	case 0:
		return decimal.Decimal{}
	case 1:
		edges := []int64{0, 1, -1, 5, -5, 15, -15, 999999999999999999, -999999999999999999,
			1000000000000000000, math.MaxInt64, math.MinInt64, math.MaxInt64 - 4, math.MinInt64 + 5}
		return decimal.New(edges[rng.IntN(len(edges))], exp)
	case 2:
		return decimal.New(rng.Int64(), exp)
	case 3:
		return decimal.New(-rng.Int64N(1<<40), exp)
	case 4:
		return decimal.New(rng.Int64N(200)-100, exp) // small, often ±5 at the rounding digit
	}
	return decimal.New(rng.Int64N(1_000_000_000)-rng.Int64N(1_000_000), exp)
}

// sameDec reports whether a and b encode alike: same coefficient and
// exponent, which is what stored bytes and String see.
func sameDec(t *testing.T, a, b decimal.Decimal) bool {
	t.Helper()
	x, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	y, err := b.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

// TestFxMatchesDecimal checks every fx operation against decimal's on
// random operands: where fx answers, it answers what decimal does,
// exponent included.
func TestFxMatchesDecimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	answered := 0
	for i := 0; i < 50000; i++ {
		a, b := randFxDec(rng), randFxDec(rng)
		x, okx := toFx(a)
		y, oky := toFx(b)
		if okx && !sameDec(t, x.dec(), a) {
			t.Fatalf("toFx(%s) = %+v", a, x)
		}
		if !okx || !oky {
			if a.NumDigits() <= 18 && okx == false {
				t.Fatalf("toFx(%s) refused an 18-digit coefficient", a)
			}
			continue
		}
		check := func(op string, got fx, ok bool, want func() decimal.Decimal) {
			t.Helper()
			if !ok {
				return
			}
			answered++
			if w := want(); !sameDec(t, got.dec(), w) {
				t.Fatalf("%s(%s [%d], %s [%d]) = %s [%d], decimal gives %s [%d]", op, a, a.Exponent(), b, b.Exponent(),
					got.dec(), got.e, w, w.Exponent())
			}
		}
		s, ok := x.add(y)
		check("add", s, ok, func() decimal.Decimal { return a.Add(b) })
		s, ok = x.sub(y)
		check("sub", s, ok, func() decimal.Decimal { return a.Sub(b) })
		s, ok = x.mul(y)
		check("mul", s, ok, func() decimal.Decimal { return a.Mul(b) })
		check("neg", x.neg(), true, func() decimal.Decimal { return a.Neg() })
		places := int32(rng.IntN(12)) - 3
		s, ok = x.round(places)
		check("round", s, ok, func() decimal.Decimal { return a.Round(places) })
		if !b.IsZero() {
			s, ok = x.divRound(y, places)
			check("divRound", s, ok, func() decimal.Decimal { return a.DivRound(b, places) })
		}
		if c, ok := x.cmp(y); ok && c != a.Cmp(b) {
			t.Fatalf("cmp(%s, %s) = %d, decimal gives %d", a, b, c, a.Cmp(b))
		}
		if c := decCmp(a, b); c != a.Cmp(b) {
			t.Fatalf("decCmp(%s, %s) = %d, decimal gives %d", a, b, c, a.Cmp(b))
		}
		if r := roundDec(a, places); !sameDec(t, r, a.Round(places)) {
			t.Fatalf("roundDec(%s, %d) = %s, decimal gives %s", a, places, r, a.Round(places))
		}
		r, exact := normScale(a, places)
		if w := a.Round(places); !sameDec(t, r, w) || exact != w.Equal(a) {
			t.Fatalf("normScale(%s, %d) = %s %v, decimal gives %s %v", a, places, r, exact, w, w.Equal(a))
		}
		if r := subDec(a, b); !sameDec(t, r, a.Sub(b)) {
			t.Fatalf("subDec(%s, %s) = %s", a, b, r)
		}
		if r := negDec(a); !sameDec(t, r, a.Neg()) {
			t.Fatalf("negDec(%s) = %s", a, r)
		}
	}
	t.Logf("%d operations answered on int64s", answered)
	if answered < 150000 {
		t.Fatalf("fx answered only %d operations: the test exercises the fallbacks alone", answered)
	}
}

// TestVATIncludedMatchesDecimal checks VATIncluded's int64 path against
// its decimal formula, for till-sized and huge totals.
func TestVATIncludedMatchesDecimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	rates := []string{"0", "5", "7.7", "10", "10.00", "20", "21", "99.99", "0.01", "13.5"}
	for i := 0; i < 30000; i++ {
		c := []Currency{"EUR", "JPY", "KWD"}[rng.IntN(3)]
		total := decimal.New(rng.Int64N(1_000_000_000)-rng.Int64N(1000), -c.Scale())
		if rng.IntN(10) == 0 {
			total = decimal.New(rng.Int64(), -c.Scale()) // overflows: the decimal way
		}
		rate := mustDec(rates[rng.IntN(len(rates))])
		var want decimal.Decimal
		if rate.IsZero() {
			want = decimal.Zero.Round(c.Scale())
		} else {
			want = total.Mul(rate).DivRound(decimal.NewFromInt(100).Add(rate), c.Scale()+8).Round(c.Scale())
		}
		if got := VATIncluded(c, total, rate); !sameDec(t, got, want) {
			t.Fatalf("VATIncluded(%s, %s, %s) = %s [%d], want %s [%d]", c, total, rate, got, got.Exponent(), want, want.Exponent())
		}
	}
}

func TestMsgpackDecimalMatchesReflection(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for i := 0; i < 20000; i++ {
		d := randFxDec(rng)
		if rng.IntN(20) == 0 {
			d = d.Mul(decimal.New(rng.Int64(), 0)).Mul(decimal.New(rng.Int64(), 0)) // wide
		}
		want, err := msgpack.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendMsgpackDecimal(nil, d); !bytes.Equal(got, want) {
			t.Fatalf("%s [%d]: %x, reflection gives %x", d, d.Exponent(), got, want)
		}
	}
}

// TestValidIDMatchesPattern checks the hand-written ValidID against the
// regexp that defines it.
func TestValidIDMatchesPattern(t *testing.T) {
	pattern := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := "aZ09._:-/ \n\x00é€\xff"
	cases := []string{"", "a", "-a", ".a", "a-", "a\n", "ü", string(make([]byte, 64)), "a/b"}
	for _, n := range []int{63, 64, 65} {
		b := make([]byte, n)
		for i := range b {
			b[i] = 'x'
		}
		cases = append(cases, string(b))
	}
	for i := 0; i < 50000; i++ {
		n := rng.IntN(70)
		b := make([]byte, 0, n)
		for len(b) < n {
			if rng.IntN(4) == 0 {
				b = append(b, alphabet[rng.IntN(len(alphabet))])
			} else {
				b = append(b, byte('a'+rng.IntN(26)))
			}
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		if got, want := ValidID(s), pattern.MatchString(s); got != want {
			t.Fatalf("ValidID(%q) = %v, the pattern says %v", s, got, want)
		}
	}
}

// mergePostingsByMap is MergePostings as it was before it summed on
// int64s: the reference.
func mergePostingsByMap(ps []Posting) []Posting {
	type key struct {
		acct  string
		asset Asset
	}
	sums := make(map[key]decimal.Decimal, len(ps))
	order := make([]key, 0, len(ps))
	for _, p := range ps {
		k := key{p.Account, p.Asset}
		if s, ok := sums[k]; ok {
			sums[k] = s.Add(p.Amount)
			continue
		}
		sums[k] = p.Amount
		order = append(order, k)
	}
	out := make([]Posting, 0, len(order))
	for _, k := range order {
		if s := sums[k]; !s.IsZero() {
			out = append(out, Posting{Account: k.acct, Asset: k.asset, Amount: s})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Asset != out[j].Asset {
			return out[i].Asset < out[j].Asset
		}
		return out[i].Account < out[j].Account
	})
	return out
}

// TestMergeAndCheckPostingsMatchDecimal compares MergePostings with the
// map-and-decimal reference, and CheckPostings' verdict with decimal
// sums, on random lists short (linear search) and long (map), with
// repeated keys, zero sums and amounts too wide for int64.
func TestMergeAndCheckPostingsMatchDecimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	nBalanced := 0
	for i := 0; i < 3000; i++ {
		n := rng.IntN(12)
		if i%3 == 0 {
			n = linearMax - 2 + rng.IntN(60)
		}
		var ps []Posting
		for len(ps) < n {
			p := Posting{Account: fmt.Sprintf("a/%d", rng.IntN(6)), Asset: Asset(fmt.Sprintf("cur:%d", rng.IntN(3))), Amount: randFxDec(rng)}
			ps = append(ps, p)
			if i%4 == 1 || rng.IntN(3) == 0 { // its reversal somewhere: zero sums, balanced assets
				ps = append(ps, Posting{Account: fmt.Sprintf("a/%d", rng.IntN(6)), Asset: p.Asset, Amount: p.Amount.Neg()})
			}
		}
		rng.Shuffle(len(ps), func(a, b int) { ps[a], ps[b] = ps[b], ps[a] })
		got, want := MergePostings(ps), mergePostingsByMap(ps)
		if len(got) != len(want) {
			t.Fatalf("case %d: %d postings, reference %d:\n%v\n%v", i, len(got), len(want), got, want)
		}
		for j := range got {
			if got[j].Account != want[j].Account || got[j].Asset != want[j].Asset || !sameDec(t, got[j].Amount, want[j].Amount) {
				t.Fatalf("case %d: posting %d is %v [%d], reference %v [%d]", i, j, got[j], got[j].Amount.Exponent(), want[j], want[j].Amount.Exponent())
			}
		}
		sums := map[Asset]decimal.Decimal{}
		for _, p := range ps {
			sums[p.Asset] = sums[p.Asset].Add(p.Amount)
		}
		balanced := true
		for _, s := range sums {
			balanced = balanced && s.IsZero()
		}
		if err := CheckPostings(ps); (err == nil) != balanced {
			t.Fatalf("case %d: CheckPostings = %v, balanced %v", i, err, balanced)
		}
		if balanced {
			nBalanced++
		}
	}
	if nBalanced < 500 {
		t.Fatalf("only %d balanced cases", nBalanced)
	}
}

// TestSharedDecimalsStayPut: the decimals fx.dec shares (zeroDecs,
// smallDecs) keep their value whatever is done with copies of them: every
// decimal operation and every accessor that hands out a big.Int leaves the
// shared coefficient alone. A decimal version that changed a coefficient
// in place would fail here, not in a till's totals.
func TestSharedDecimalsStayPut(t *testing.T) {
	for _, x := range []fx{{105, -2}, {105, 0}, {-1, 0}, {-1, -3}, {1000, -3}, {1000, -1}, {0, -2}, {smallMax, -smallExpMax}, {-smallMax, 0}} {
		want := decimal.New(x.c, x.e).String()
		d := x.dec()
		if e := x.dec(); e.String() != want || d.Exponent() != x.e {
			t.Fatalf("fx%v.dec() = %s (exp %d), want %s", x, e, d.Exponent(), want)
		}
		d.BigInt().SetInt64(999)
		d.Coefficient().SetInt64(999)
		_ = d.Add(d).Sub(d).Mul(d).Neg().Abs().Round(1).Truncate(0).Shift(3)
		_ = d.Div(decimal.NewFromInt(7)).Mod(decimal.NewFromInt(3)).Pow(decimal.NewFromInt(2))
		_, _ = d.QuoRem(decimal.NewFromInt(3), 2)
		var out decimal.Decimal
		if b, err := d.MarshalBinary(); err != nil || out.UnmarshalBinary(b) != nil {
			t.Fatal(err)
		}
		if got := x.dec(); got.String() != want || got.Exponent() != x.e {
			t.Errorf("after operations on a copy, the shared fx%v is %s (exp %d), want %s", x, got, got.Exponent(), want)
		}
	}
}

// TestSaleNamesMatchConstructors: the names a sale's postings cut from one
// string are the ones ItemAsset, StockAccount and SoldAccount build.
func TestSaleNamesMatchConstructors(t *testing.T) {
	lines := []Line{{Item: "milk", Dept: "dairy"}, {Item: "i", Dept: "d"}, {Item: "bread-2", Dept: "bakery"}, {Item: "milk", Dept: "dairy"}}
	for _, store := range []StoreID{"s1", "shop-042"} {
		names := lineNames(store, lines)
		for i := range lines {
			l := &lines[i]
			units, stock, sold := names.next(store, l)
			if units != ItemAsset(l.Item) || stock != StockAccount(store, l.Dept, l.Item) || sold != SoldAccount(store, l.Item) {
				t.Fatalf("store %s line %d: %q %q %q, want %q %q %q", store, i, units, stock, sold,
					ItemAsset(l.Item), StockAccount(store, l.Dept, l.Item), SoldAccount(store, l.Item))
			}
		}
		if names.off != len(names.all) {
			t.Fatalf("store %s: %d of %d bytes of names used", store, names.off, len(names.all))
		}
	}
}
