package ledger_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// TestBalancesAcrossMatchesScan: BalancesAcross finds what a scan of every
// balance under the prefix finds, among accounts whose parts extend one
// another ("d1", "d1-x", "d1.y", "d10"), an account ending at a part,
// an item whose ID extends the one asked for, and another asset on the
// same account.
func TestBalancesAcrossMatchesScan(t *testing.T) {
	l := open(t, testOptions(t.TempDir()))
	item := storeline.ItemAsset("milk")
	money := storeline.MoneyAsset("EUR")
	var ps []storeline.Posting
	post := func(acct string, asset storeline.Asset, amt string) {
		ps = append(ps,
			storeline.Posting{Account: acct, Asset: asset, Amount: dec(amt)},
			storeline.Posting{Account: "supplier/x", Asset: asset, Amount: dec(amt).Neg()})
	}
	for i, d := range []string{"d1", "d1-x", "d1.y", "d10", "a", "z"} {
		post("stock/s1/"+d+"/milk", item, fmt.Sprint(i+1))
		post("stock/s1/"+d+"/milk2", item, "100")
		post("stock/s1/"+d+"/milk", money, "1000")
	}
	post("stock/s1/d1", item, "500")        // an account ending at a part
	post("stock/s1/d1-x/milk/x", item, "7") // a longer account through the item's
	post("stock/s1/b/milk", item, "0")      // back at zero is a balance too
	post("stock/s10/d1/milk", item, "9")    // another prefix
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	if _, err := l.ApplyRemote(context.Background(), storeline.Event{
		ID: eid(1), Origin: "hq", Epoch: 1, Seq: 1, SchemaVersion: storeline.SchemaVersion,
		Kind: storeline.KindTransfer, Body: &storeline.Transfer{Reason: "delivery"},
		OccurredAt: at, BusinessDate: "2026-03-01", Postings: ps,
	}); err != nil {
		t.Fatal(err)
	}

	var want []string
	bs, err := l.Balances("stock/s1/")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		part, rest, ok := strings.Cut(strings.TrimPrefix(b.Account, "stock/s1/"), "/")
		if ok && rest == "milk" && b.Asset == item {
			want = append(want, part+"="+b.Amount.String())
		}
	}
	var got []string
	if err := l.BalancesAcross("stock/s1/", "/milk", item, func(part string, amt decimal.Decimal) {
		got = append(got, part+"="+amt.String())
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if fmt.Sprint(got) != fmt.Sprint(want) || len(want) != 7 {
		t.Fatalf("BalancesAcross = %v\nthe scan finds %v (7 parts)", got, want)
	}
}
