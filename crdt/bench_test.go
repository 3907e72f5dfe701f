package crdt_test

import (
	"fmt"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline/crdt"
)

// Benchmark fixtures. Sizes are the design targets named in the issue:
// a 100k-key LWW map and a bounded counter with 1,000 origins.

func key(i int) string { return fmt.Sprintf("cust-%06d", i) }

// lwwMaps returns two maps of n keys each that overlap by half; on the
// overlap, every other key is newer in b.
func lwwMaps(n int) (a, b *crdt.LWWMap) {
	a, b = &crdt.LWWMap{}, &crdt.LWWMap{}
	value := []byte(`{"name":"A. Customer","phone":"+10000000000","card":"2000000000000"}`)
	for i := range n {
		a.Set(key(i), value, crdt.Stamp{Time: ts(base+int64(i), 0), Origin: "shop-1"})
	}
	for i := n / 2; i < n+n/2; i++ {
		t := base + int64(i)
		if i%2 == 0 {
			t += 1_000
		} else {
			t -= 1_000
		}
		if i%10 == 0 {
			b.Delete(key(i), crdt.Stamp{Time: ts(t, 0), Origin: "shop-2"})
		} else {
			b.Set(key(i), value, crdt.Stamp{Time: ts(t, 0), Origin: "shop-2"})
		}
	}
	return a, b
}

func BenchmarkLWWMapMerge100k(b *testing.B) {
	const n = 100_000
	x, y := lwwMaps(n)
	b.Run("into-100k", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			c := x.Clone()
			b.StartTimer()
			c.Merge(y)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/key")
	})
	b.Run("into-empty", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var c crdt.LWWMap
			c.Merge(x)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/key")
	})
	b.Run("delta-1k-into-100k", func(b *testing.B) {
		d := y.Since(ts(base+n+n/2-1_000, 0))
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			c := x.Clone()
			b.StartTimer()
			c.Merge(d)
		}
	})
}

// boundedFixture is one customer's points across 1,000 origins: central,
// which earned a large balance and granted 500 to each of 999 shops; each
// shop earned 100 and spent 50; every tenth shop handed 20 back.
func boundedFixture(b *testing.B) (*crdt.BoundedCounter, []string) {
	b.Helper()
	c := &crdt.BoundedCounter{}
	origins := []string{"central"}
	if _, err := c.Increment("central", 1_000_000); err != nil {
		b.Fatal(err)
	}
	for i := 1; i < 1000; i++ {
		shop := fmt.Sprintf("shop-%04d", i)
		origins = append(origins, shop)
		steps := []func() (*crdt.BoundedCounter, error){
			func() (*crdt.BoundedCounter, error) { return c.Transfer("central", shop, 500) },
			func() (*crdt.BoundedCounter, error) { return c.Increment(shop, 100) },
			func() (*crdt.BoundedCounter, error) { return c.Decrement(shop, 50) },
		}
		if i%10 == 0 {
			steps = append(steps, func() (*crdt.BoundedCounter, error) { return c.Transfer(shop, "central", 20) })
		}
		for _, f := range steps {
			if _, err := f(); err != nil {
				b.Fatal(err)
			}
		}
	}
	return c, origins
}

func BenchmarkBoundedCounter1000(b *testing.B) {
	c, origins := boundedFixture(b)
	b.Run("Rights", func(b *testing.B) {
		i := 0
		for b.Loop() {
			_ = c.Rights(origins[i%len(origins)])
			i++
		}
	})
	b.Run("Value", func(b *testing.B) {
		for b.Loop() {
			_ = c.Value()
		}
	})
	b.Run("Increment", func(b *testing.B) {
		x := c.Clone()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := x.Increment("shop-0500", 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Decrement-with-support", func(b *testing.B) {
		x := c.Clone()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := x.Decrement("central", 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Merge-into-empty", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var x crdt.BoundedCounter
			x.Merge(c)
		}
	})
}

// codecFixtures returns one value of every encoded type, at sizes a node
// meets: 1,000 origins for the counters, 100k keys for the map.
func codecFixtures(b *testing.B) []struct {
	name  string
	v     any
	fresh func() any
} {
	pn := &crdt.PNCounter{}
	for i := range 1000 {
		o := fmt.Sprintf("shop-%04d", i)
		pn.Add(o, decimal.New(int64(12_345+i), -3))
		pn.Add(o, decimal.New(-int64(2_500+i), -3))
	}
	bc, _ := boundedFixture(b)
	reg := &crdt.LWWRegister{}
	reg.Set([]byte(`{"name":"A. Customer","phone":"+10000000000","card":"2000000000000"}`), crdt.Stamp{Time: ts(base, 3), Origin: "shop-0001"})
	m, _ := lwwMaps(100_000)
	sc := &crdt.SerialCounts{}
	for i := range 10_000 {
		serial := fmt.Sprintf("010460406000600021N4%010d", i)
		sc.Sell(serial, "shop-0001")
		if i%3 == 0 {
			sc.Return(serial, "shop-0001")
			sc.Sell(serial, "shop-0002")
		}
	}
	return []struct {
		name  string
		v     any
		fresh func() any
	}{
		{"Stamp", crdt.Stamp{Time: ts(base, 1), Origin: "shop-0001"}, func() any { return new(crdt.Stamp) }},
		{"PNDelta", pn.Row("shop-0001"), func() any { return new(crdt.PNDelta) }},
		{"PNCounter-1000", pn, func() any { return new(crdt.PNCounter) }},
		{"BoundedCounter-1000", bc, func() any { return new(crdt.BoundedCounter) }},
		{"LWWRegister", reg, func() any { return new(crdt.LWWRegister) }},
		{"LWWMap-100k", m, func() any { return new(crdt.LWWMap) }},
		{"SerialDelta", sc.Row("010460406000600021N40000000000", "shop-0001"), func() any { return new(crdt.SerialDelta) }},
		{"SerialCounts-10k", sc, func() any { return new(crdt.SerialCounts) }},
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, f := range codecFixtures(b) {
		b.Run(f.name, func(b *testing.B) {
			enc, err := msgpack.Marshal(f.v)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := msgpack.Marshal(f.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, f := range codecFixtures(b) {
		b.Run(f.name, func(b *testing.B) {
			enc, err := msgpack.Marshal(f.v)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				if err := msgpack.Unmarshal(enc, f.fresh()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBoundedCounterTypical is the common customer: central and four
// shops, central having granted to each and two having handed some back.
// The decrement is at central, whose support is itself and those two shops.
func BenchmarkBoundedCounterTypical(b *testing.B) {
	c := &crdt.BoundedCounter{}
	must := func(_ *crdt.BoundedCounter, err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(c.Increment("central", 1_000_000))
	for i := 1; i <= 4; i++ {
		shop := fmt.Sprintf("shop-%d", i)
		must(c.Transfer("central", shop, 1_000))
		must(c.Increment(shop, 100))
		if i%2 == 0 {
			must(c.Transfer(shop, "central", 50))
		}
	}
	b.Run("Decrement-with-support", func(b *testing.B) {
		x := c.Clone()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := x.Decrement("central", 1); err != nil {
				b.Fatal(err)
			}
		}
	})
}
