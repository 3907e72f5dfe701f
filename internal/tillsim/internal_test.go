package tillsim

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// TestWeighedPrint: a printed weighed barcode scans back, with the node's
// parser, to the item's code and the weight printed.
func TestWeighedPrint(t *testing.T) {
	l := storeline.DefaultWeighedLayout()
	w := weighedPrinter{l}
	// The sample apples' code: prefix 21, item 00001, weight digits zero,
	// stored as a GTIN-14.
	item14 := "0" + "210000100000" + string(checkDigit("210000100000"))
	if !w.isWeighed(item14) || w.isWeighed("04000000000017") {
		t.Fatalf("isWeighed: %s should be, 04000000000017 should not", item14)
	}
	for _, grams := range []int{1, 150, 999, 2349, 99999} {
		code, err := w.print(item14[1:], grams)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := l.ParseScan(code)
		if err != nil {
			t.Fatalf("ParseScan(%s) = %v", code, err)
		}
		if sc.Kind != storeline.ScanWeighed || sc.GTIN != item14 || !sc.Weight.Equal(decimal.New(int64(grams), -3)) {
			t.Errorf("print(%d g) = %s, scans as %+v, want weighed %s of %d g", grams, code, sc, item14, grams)
		}
	}
	if _, err := w.print(item14[1:], 100000); err == nil {
		t.Errorf("print(100000 g) fits 5 digits?")
	}
}

// TestHistogram: quantiles are within the buckets' 2% of the true ones,
// and the maximum is exact.
func TestHistogram(t *testing.T) {
	var h histogram
	r := rand.New(rand.NewPCG(1, 2))
	var all []time.Duration
	for range 10000 {
		d := time.Duration(r.ExpFloat64() * float64(5*time.Millisecond))
		h.record(d)
		all = append(all, d)
	}
	sortDur(all)
	for _, q := range []float64{0.5, 0.9, 0.99} {
		want := all[int(q*float64(len(all)))-1]
		got := h.quantile(q)
		if float64(got) < float64(want)*0.98 || float64(got) > float64(want)*1.021 {
			t.Errorf("quantile(%v) = %v, want %v within 2%%", q, got, want)
		}
	}
	if h.quantile(1) != all[len(all)-1] || h.max != all[len(all)-1] {
		t.Errorf("max = %v, quantile(1) = %v, want %v", h.max, h.quantile(1), all[len(all)-1])
	}
	var empty histogram
	if empty.quantile(0.5) != 0 {
		t.Errorf("empty quantile = %v", empty.quantile(0.5))
	}
}

func sortDur(ds []time.Duration) { slices.Sort(ds) }
