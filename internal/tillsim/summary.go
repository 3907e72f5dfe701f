package tillsim

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// Summary is what a run did, as the tills saw it.
type Summary struct {
	Elapsed time.Duration // from the first till's start to the last one's end
	Selling time.Duration // from the start of selling to the last receipt acknowledged; ReceiptsPerSecond divides by it
	Shops   []ShopSummary
	// Totals over all shops.
	Receipts, Returns, CashOps  int
	ShiftsOpened, ShiftsClosed  int
	ShiftMismatches             int
	Lines, Weighed, Packs       int
	LoyaltyCards, CardPayments  int
	PointsPayments              int // receipts paid in part with loyalty points
	Discrepancies               int
	PromoLines                  int // lines the node's pricing discounted (promotions)
	LocallyPriced               int // receipts priced from the catalogue alone (no node pricing)
	Created, Replayed           int // 201 and 200 answers to facts posted
	Retries                     int // attempts beyond the first
	Unknown                     int // facts with no answer after MaxAttempts
	Failed                      int // facts refused (4xx) or abandoned
	PointsRefused               int // receipts refused for their points (409), then paid otherwise: not Failed
	ReceiptsPerSecond           float64
	Errors                      map[string]int // "503", "422", "timeout", "transport", "bad answer" -> attempts
	Endpoints                   []EndpointStats
	FirstError                  string // the first refusal's problem detail (or undecodable answer's), for diagnosis
	CatalogItems, CatalogPriced int    // of the first shop

	// Reservations of goods the node acknowledged, and of them those the
	// tills ended: collected (a receipt sold the goods) or released. The
	// rest are still held, to lapse after their date.
	ReservationsMade, ReservationsCollected, ReservationsReleased int
	// ReservationsRefused are reservations refused because the goods were
	// not available (422 naming lines[i].qty); ReservationsEndedElsewhere
	// ends refused because another till or the node ended the reservation
	// first (409). Business answers: neither is Failed nor in Errors.
	ReservationsRefused, ReservationsEndedElsewhere int
}

// ShopSummary is one shop's acknowledged facts and sums, in its currency;
// it is what GET /v1/stats/sales should report for the run's dates.
type ShopSummary struct {
	URL               string
	Currency          string
	Tills             int
	Receipts, Returns int
	Sales, Refunds    decimal.Decimal
	Cash, Card        decimal.Decimal // tendered net of change
	// Refunds is what returns gave back, in money and points. Points is
	// the money paid with loyalty points, PointsSpent the points, both
	// net of what returns gave back as points.
	Points      decimal.Decimal
	PointsSpent int64
}

// EndpointStats are one endpoint's attempt latencies.
type EndpointStats struct {
	Endpoint           string
	Count              int
	P50, P90, P99, Max time.Duration
}

// Progress is a run so far, for a live status line.
type Progress struct {
	Elapsed           time.Duration
	Receipts, Returns int
	Rate              float64 // receipts/s over the last interval
	Retries, Errors   int
	Unknown           int
	ReceiptP99        time.Duration
}

// String renders the progress on one line.
func (p Progress) String() string {
	return fmt.Sprintf("%6.1fs  receipts %d (%.0f/s)  returns %d  retries %d  errors %d  unknown %d  p99 receipt %s",
		p.Elapsed.Seconds(), p.Receipts, p.Rate, p.Returns, p.Retries, p.Errors, p.Unknown, fmtDur(p.ReceiptP99))
}

// Write prints the summary as a small report.
func (s Summary) Write(w io.Writer) {
	fmt.Fprintf(w, "till simulator: %d shops, %d tills, %s selling (%s in all)\n", len(s.Shops), s.tills(), s.Selling.Round(time.Millisecond), s.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "  receipts   %d (%.1f/s), %d lines (%d weighed, %d packs, %d discounted), %d with a loyalty card (%d paid in part with points), %d paid by card\n",
		s.Receipts, s.ReceiptsPerSecond, s.Lines, s.Weighed, s.Packs, s.PromoLines, s.LoyaltyCards, s.PointsPayments, s.CardPayments)
	fmt.Fprintf(w, "  returns    %d   cash ops %d   shifts %d opened, %d closed, %d Z mismatches\n",
		s.Returns, s.CashOps, s.ShiftsOpened, s.ShiftsClosed, s.ShiftMismatches)
	fmt.Fprintf(w, "  holds      %d reservations made, %d collected, %d released, %d refused (too few available), %d ended elsewhere first\n",
		s.ReservationsMade, s.ReservationsCollected, s.ReservationsReleased, s.ReservationsRefused, s.ReservationsEndedElsewhere)
	fmt.Fprintf(w, "  answers    %d created (201), %d replayed (200), %d retries, %d unknown, %d failed, %d points payments refused (paid otherwise), %d price discrepancies, %d receipts priced from the catalogue alone\n",
		s.Created, s.Replayed, s.Retries, s.Unknown, s.Failed, s.PointsRefused, s.Discrepancies, s.LocallyPriced)
	for _, sh := range s.Shops {
		sc := storeline.Currency(sh.Currency).Scale()
		fmt.Fprintf(w, "  shop       %s: %d tills, %d receipts, %d returns, sales %s %s, refunds %s, cash %s, card %s, points %s (%d points)\n",
			sh.URL, sh.Tills, sh.Receipts, sh.Returns, sh.Sales.StringFixed(sc), sh.Currency, sh.Refunds.StringFixed(sc), sh.Cash.StringFixed(sc), sh.Card.StringFixed(sc),
			sh.Points.StringFixed(sc), sh.PointsSpent)
	}
	if len(s.Errors) > 0 {
		keys := make([]string, 0, len(s.Errors))
		for k := range s.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s×%d", k, s.Errors[k])
		}
		fmt.Fprintf(w, "  errors     %s\n", strings.Join(parts, " "))
		if s.FirstError != "" {
			fmt.Fprintf(w, "  first      %s\n", s.FirstError)
		}
	}
	fmt.Fprintf(w, "  %-36s %8s %9s %9s %9s %9s\n", "latency per attempt", "count", "p50", "p90", "p99", "max")
	for _, e := range s.Endpoints {
		fmt.Fprintf(w, "  %-36s %8d %9s %9s %9s %9s\n", e.Endpoint, e.Count, fmtDur(e.P50), fmtDur(e.P90), fmtDur(e.P99), fmtDur(e.Max))
	}
}

func (s Summary) tills() int {
	n := 0
	for _, sh := range s.Shops {
		n += sh.Tills
	}
	return n
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// histogram records durations in log-spaced buckets (2% apart, 1µs to
// about 100 s), so memory stays bounded however long a run lasts and a
// percentile is off by at most 2%. The maximum is exact.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    time.Duration
}

const (
	histBuckets = 930
	histGrowth  = 1.02
)

var logGrowth = math.Log(histGrowth)

func (h *histogram) record(d time.Duration) {
	us := float64(d) / float64(time.Microsecond)
	i := 0
	if us > 1 {
		i = int(math.Log(us) / logGrowth)
	}
	i = min(max(i, 0), histBuckets-1)
	h.counts[i]++
	h.n++
	h.max = max(h.max, d)
}

// quantile returns the upper bound of the bucket holding quantile q.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			d := time.Duration(math.Pow(histGrowth, float64(i+1)) * float64(time.Microsecond))
			return min(d, h.max)
		}
	}
	return h.max
}

// latencies holds a histogram per endpoint.
type latencies struct {
	mu sync.Mutex
	by map[string]*histogram
}

func (l *latencies) record(endpoint string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.by == nil {
		l.by = map[string]*histogram{}
	}
	h, ok := l.by[endpoint]
	if !ok {
		h = &histogram{}
		l.by[endpoint] = h
	}
	h.record(d)
}

func (l *latencies) p99(endpoint string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h, ok := l.by[endpoint]; ok {
		return h.quantile(0.99)
	}
	return 0
}

func (l *latencies) stats() []EndpointStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]EndpointStats, 0, len(l.by))
	for name, h := range l.by {
		out = append(out, EndpointStats{Endpoint: name, Count: int(h.n), P50: h.quantile(0.5), P90: h.quantile(0.9), P99: h.quantile(0.99), Max: h.max})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Endpoint < out[j].Endpoint })
	return out
}
