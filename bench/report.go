package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Contender names; ratio columns and floors refer to them.
const (
	nameProbe   = "probe"
	nameLedger  = "storeline ledger"
	nameNode    = "storeline node http"
	namePG      = "postgres"
	nameSQLite  = "sqlite"
	nameEtcd    = "etcd 3-node"
	nameRaft    = "raw raft 3-node"
	nameCentral = "storeline central"
)

// column is a ratio column: rate of the row's mode over the rate of the
// named contender at the same concurrency (or at c=1 when atOne).
type column struct {
	title string
	den   string
	atOne bool
}

var (
	storeColumns   = []column{{"× probe", nameProbe, true}, {"× postgres", namePG, false}, {"× sqlite", nameSQLite, false}}
	centralColumns = []column{{"× raw raft", nameRaft, false}, {"× etcd", nameEtcd, false}}
)

// floor is a goal of issue 9: the median same-run ratio of num over den at
// concurrency c must be at least min (0: reported only), aiming for aim.
type floor struct {
	num, den string
	c        int
	min, aim float64
}

var floors = []floor{
	{nameLedger, namePG, 1, 1, 1.5},
	{nameLedger, namePG, 8, 1.3, 2},
	{nameLedger, namePG, 64, 5, 10},
	{nameLedger, nameSQLite, 64, 3, 0},
	{nameNode, namePG, 1, 0, 1},
	{nameNode, namePG, 64, 0, 3},
	{nameCentral, nameRaft, 8, 0.7, 0},
	{nameCentral, nameEtcd, 8, 0, 2},
	{nameRaft, nameEtcd, 8, 0, 0},
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "–"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
}

func fmtRate(x float64) string {
	s := fmt.Sprintf("%.0f", x)
	// Thousands separators make the tables readable.
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func fmtRatio(r ratio) string {
	if !r.ok {
		return "–"
	}
	return fmt.Sprintf("**%.2f** (%.2f–%.2f)", r.med, r.min, r.max)
}

// report writes the markdown tables of a finished run.
func (h *harness) report(w io.Writer) error {
	if h.rounds == 0 {
		return errNoRounds
	}
	var store, central []*mode
	for _, m := range h.modes {
		if m.con.Unit() == "event" {
			central = append(central, m)
		} else {
			store = append(store, m)
		}
	}
	if len(store) > 0 {
		fmt.Fprintf(w, "Store node: durable receipts (%d lines, 2 payments, stock decremented per line; one durable transaction each).\n\n", receiptLines)
		hdr := "| mode | receipts/s median (min–max) | p50 | p99 | receipts per fsync |"
		sep := "|---|---:|---:|---:|---:|"
		for _, c := range storeColumns {
			hdr += " " + c.title + " |"
			sep += "---:|"
		}
		fmt.Fprintln(w, hdr)
		fmt.Fprintln(w, sep)
		for _, m := range store {
			fmt.Fprintf(w, "| %s | %s (%s–%s) | %s | %s | %s |", m.name(), fmtRate(median(m.rates)), fmtRate(slices.Min(m.rates)), fmtRate(slices.Max(m.rates)),
				fmtDur(percentile(m.lat, 0.5)), fmtDur(percentile(m.lat, 0.99)), perSync(m))
			for _, c := range storeColumns {
				fmt.Fprintf(w, " %s |", fmtRatio(h.ratioTo(m, c)))
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w)
	}
	if len(central) > 0 {
		fmt.Fprintf(w, "Central ingest: batches of shop events (3 voters on loopback, one machine).\n\n")
		hdr := "| mode | events/s median (min–max) | batches/s | p50 | p99 |"
		sep := "|---|---:|---:|---:|---:|"
		for _, c := range centralColumns {
			hdr += " " + c.title + " |"
			sep += "---:|"
		}
		fmt.Fprintln(w, hdr)
		fmt.Fprintln(w, sep)
		for _, m := range central {
			fmt.Fprintf(w, "| %s | %s (%s–%s) | %s | %s | %s |", m.name(), fmtRate(median(m.rates)), fmtRate(slices.Min(m.rates)), fmtRate(slices.Max(m.rates)),
				fmtRate(median(m.calls)), fmtDur(percentile(m.lat, 0.5)), fmtDur(percentile(m.lat, 0.99)))
			for _, c := range centralColumns {
				fmt.Fprintf(w, " %s |", fmtRatio(h.ratioTo(m, c)))
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "Goals of issue 9 (median of same-run ratios):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| ratio | median (min–max) | floor | aim | verdict |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---|")
	for _, f := range floors {
		r := ratioOf(h.find(f.num, f.c), h.find(f.den, f.c))
		verdict := "not measured"
		switch {
		case !r.ok:
		case f.min == 0:
			verdict = "reported"
		case r.med >= f.min:
			verdict = "meets the floor"
		default:
			verdict = "BELOW the floor"
		}
		if r.ok && f.aim > 0 && r.med >= f.aim {
			verdict += ", meets the aim"
		}
		show := func(x float64) string {
			if x == 0 {
				return "–"
			}
			return fmt.Sprintf("%.1f×", x)
		}
		fmt.Fprintf(w, "| %s / %s, c=%d | %s | %s | %s | %s |\n", f.num, f.den, f.c, fmtRatio(r), show(f.min), show(f.aim), verdict)
	}
	return nil
}

func (h *harness) ratioTo(m *mode, c column) ratio {
	if m.con.Name() == c.den {
		return ratio{}
	}
	cc := m.c
	if c.atOne {
		cc = 1
	}
	return ratioOf(m, h.find(c.den, cc))
}

func perSync(m *mode) string {
	if !m.synced || m.syncs == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", float64(m.counted)/float64(m.syncs))
}
