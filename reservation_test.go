package storeline_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

func heldLines() []storeline.BasketLine {
	return []storeline.BasketLine{
		{Item: "milk", Unit: storeline.Piece, Qty: decimal.NewFromInt(2)},
		{Item: "cheese", Unit: storeline.Kg, Qty: decimal.RequireFromString("0.350")},
		{Item: "milk", Unit: storeline.Piece, Qty: decimal.NewFromInt(1)},
	}
}

func TestReservationHoldsAndItsEndGivesBack(t *testing.T) {
	r := &storeline.Reservation{Terminal: "t1", Seller: "s1", Contact: "+44 20 7946 0000", Until: "2026-12-03", Lines: heldLines()}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	r1 := storeline.DerivedEventID("test/r1")
	hold, err := storeline.DeriveEventPostings("shop1", r1, r)
	if err != nil {
		t.Fatal(err)
	}
	sum := map[string]decimal.Decimal{}
	for _, p := range hold {
		sum[p.Account+" "+string(p.Asset)] = sum[p.Account+" "+string(p.Asset)].Add(p.Amount)
	}
	want := map[string]string{
		"reserved/shop1/milk item:milk":                     "3",
		"reservation/shop1/" + r1.String() + " item:milk":   "-3",
		"reserved/shop1/cheese item:cheese":                 "0.35",
		"reservation/shop1/" + r1.String() + " item:cheese": "-0.35",
	}
	if len(sum) != len(want) {
		t.Fatalf("postings %v, want the accounts of %v", hold, want)
	}
	for k, v := range want {
		if !sum[k].Equal(decimal.RequireFromString(v)) {
			t.Errorf("%s = %s, want %s", k, sum[k], v)
		}
	}
	if _, err := storeline.DerivePostings("shop1", r); !errors.Is(err, storeline.Invalid) {
		t.Fatalf("a reservation's postings without its ID: %v, want Invalid", err)
	}

	end := &storeline.ReservationEnd{Reservation: r1, Outcome: storeline.ReservationLapsed, Lines: heldLines()}
	if err := end.Validate(); err != nil {
		t.Fatal(err)
	}
	back, err := storeline.DerivePostings("shop1", end)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range back {
		sum[p.Account+" "+string(p.Asset)] = sum[p.Account+" "+string(p.Asset)].Add(p.Amount)
	}
	for k, v := range sum {
		if !v.IsZero() {
			t.Errorf("after the end %s = %s, want 0", k, v)
		}
	}
}

func TestReservationRefusesNamingTheField(t *testing.T) {
	ok := func() *storeline.Reservation {
		return &storeline.Reservation{Terminal: "t1", Seller: "s1", Customer: "c1", Until: "2026-12-03", Lines: heldLines()}
	}
	for _, c := range []struct {
		field string
		edit  func(*storeline.Reservation)
	}{
		{"contact", func(r *storeline.Reservation) { r.Customer = "" }},
		{"until", func(r *storeline.Reservation) { r.Until = "03.12.2026" }},
		{"lines", func(r *storeline.Reservation) { r.Lines = nil }},
		{"lines[1].qty", func(r *storeline.Reservation) { r.Lines[1].Qty = decimal.Zero }},
		{"lines[0].qty", func(r *storeline.Reservation) { r.Lines[0].Qty = decimal.RequireFromString("1.5") }},
		{"card", func(r *storeline.Reservation) { r.Card = "not a card!" }},
		{"seller", func(r *storeline.Reservation) { r.Seller = "" }},
	} {
		r := ok()
		c.edit(r)
		err := r.Validate()
		var e *storeline.Error
		if !errors.As(err, &e) || e.Field != c.field {
			t.Errorf("%s: %v, want Invalid naming %s", c.field, err, c.field)
		}
	}
	r1 := storeline.DerivedEventID("test/r1")
	ends := []struct {
		field string
		end   storeline.ReservationEnd
	}{
		{"outcome", storeline.ReservationEnd{Reservation: r1, Outcome: "sold", Lines: heldLines()}},
		{"receipt", storeline.ReservationEnd{Reservation: r1, Outcome: storeline.ReservationCollected, Terminal: "t1", Seller: "s1", Lines: heldLines()}},
		{"receipt", storeline.ReservationEnd{Reservation: r1, Outcome: storeline.ReservationReleased, Receipt: storeline.DerivedEventID("test/x1"), Terminal: "t1", Seller: "s1", Lines: heldLines()}},
		{"seller", storeline.ReservationEnd{Reservation: r1, Outcome: storeline.ReservationReleased, Terminal: "t1", Lines: heldLines()}},
		{"lines", storeline.ReservationEnd{Reservation: r1, Outcome: storeline.ReservationLapsed}},
	}
	for _, c := range ends {
		err := c.end.Validate()
		var e *storeline.Error
		if !errors.As(err, &e) || e.Field != c.field {
			t.Errorf("end %+v: %v, want Invalid naming %s", c.end, err, c.field)
		}
	}
}

func TestReservationEndIDIsOneValidIDPerReservation(t *testing.T) {
	r1, r2 := storeline.DerivedEventID("test/r1"), storeline.DerivedEventID("test/r2")
	a, b := storeline.ReservationEndID(r1), storeline.ReservationEndID(r2)
	if a == b || a != storeline.ReservationEndID(r1) || a == r1 {
		t.Fatalf("end IDs %s, %s: want one stable ID per reservation", a, b)
	}
	for _, k := range []storeline.EventKind{storeline.KindReservation, storeline.KindReservationEnd} {
		b, err := storeline.NewBody(k)
		if err != nil || b.EventKind() != k {
			t.Fatalf("NewBody(%s) = %v, %v", k, b, err)
		}
	}
}

// TestReservationCheckFromShop: head office takes a shop's reservation
// only if it holds goods on the shop's own memo accounts, never stock.
func TestReservationCheckFromShop(t *testing.T) {
	r1 := storeline.DerivedEventID("test/r1")
	r := &storeline.Reservation{Terminal: "t1", Seller: "s1", Customer: "c1", Until: "2026-12-03", Lines: heldLines()}
	ps, err := storeline.DeriveEventPostings("shop1", r1, r)
	if err != nil {
		t.Fatal(err)
	}
	ev := storeline.Event{ID: r1, Origin: "shop1", Kind: storeline.KindReservation, Body: r, Postings: ps,
		OccurredAt: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC), BusinessDate: "2026-11-30"}
	if err := ev.CheckFromShop(); err != nil {
		t.Fatalf("a shop's own reservation: %v", err)
	}
	for name, edit := range map[string]func(*storeline.Posting){
		"another shop's account": func(p *storeline.Posting) { p.Account = "reserved/shop2/milk" },
		"stock":                  func(p *storeline.Posting) { p.Account = "stock/shop1/d1/milk" },
		"money":                  func(p *storeline.Posting) { p.Asset = storeline.MoneyAsset("EUR") },
	} {
		bad := ev
		bad.Postings = slices.Clone(ps)
		edit(&bad.Postings[0])
		var e *storeline.Error
		if err := bad.CheckFromShop(); !errors.As(err, &e) || e.Field != "postings[0].account" {
			t.Errorf("%s: %v, want Invalid naming postings[0].account", name, err)
		}
	}
}

// TestReservationMemoAccountsOnlyForReservations: no other kind of a
// shop's event may move a reservation's memo accounts, and a
// reservation's postings name an item's own reserved account and a
// reservation's by its ID.
func TestReservationMemoAccountsOnlyForReservations(t *testing.T) {
	r1 := storeline.DerivedEventID("test/r1")
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	milk := storeline.ItemAsset("milk")
	for name, c := range map[string]struct {
		kind storeline.EventKind
		ps   []storeline.Posting
	}{
		"a receipt moving reserved goods": {storeline.KindReceipt, []storeline.Posting{
			{Account: "reserved/shop1/milk", Asset: milk, Amount: decimal.NewFromInt(-1)},
			{Account: "sold/shop1/milk", Asset: milk, Amount: decimal.NewFromInt(1)}}},
		"another item's reserved account": {storeline.KindReservation, []storeline.Posting{
			{Account: "reserved/shop1/cheese", Asset: milk, Amount: decimal.NewFromInt(1)},
			{Account: storeline.ReservationAccount("shop1", r1), Asset: milk, Amount: decimal.NewFromInt(-1)}}},
		"no item in the account": {storeline.KindReservation, []storeline.Posting{
			{Account: "reserved/shop1", Asset: milk, Amount: decimal.NewFromInt(1)},
			{Account: storeline.ReservationAccount("shop1", r1), Asset: milk, Amount: decimal.NewFromInt(-1)}}},
		"a reservation's account not by ID": {storeline.KindReservationEnd, []storeline.Posting{
			{Account: "reserved/shop1/milk", Asset: milk, Amount: decimal.NewFromInt(-1)},
			{Account: "reservation/shop1/r1", Asset: milk, Amount: decimal.NewFromInt(1)}}},
	} {
		ev := storeline.Event{ID: storeline.DerivedEventID("test/" + name), Origin: "shop1", Kind: c.kind, Postings: c.ps,
			OccurredAt: at, BusinessDate: "2026-11-30"}
		var e *storeline.Error
		if err := ev.CheckFromShop(); !errors.As(err, &e) || !strings.HasSuffix(e.Field, "].account") {
			t.Errorf("%s: %v, want Invalid naming the posting's account", name, err)
		}
	}
}
