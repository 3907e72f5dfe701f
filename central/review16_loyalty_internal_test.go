package central

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// TestReview16CardKeptByCustomerWhoEarnedWithIt: two shops hand out
// cards of one code (a misprinted batch, a mistyped code) to two new
// customers. s1's registration of x reaches central first: x's card
// comes down to the shops and x earns points with it. s2, offline,
// registered y with the same code a little later, and its push arrives
// after. The code is x's, and stays x's: before, y's registration took
// it (the later stamp won), leaving x's points where no card names x,
// spendable by no one (x's card now reads as y's at every till).
// Whatever the order of arrival, one customer keeps the card and no
// points are left behind a card of another.
func TestReview16CardKeptByCustomerWhoEarnedWithIt(t *testing.T) {
	n := openSingle(t)
	seqs := map[storeline.StoreID]uint64{}
	const code = "76000001"
	t0 := time.Now().Add(-10 * time.Minute)
	review14Reg(t, n, seqs, "s1", t0, "cust-x", code)
	var card storeline.CardRecord
	if err := n.rep.LookupMaster(storeline.KindCard, storeline.CardCodeKey(code), &card); err != nil || card.Customer != "cust-x" {
		t.Fatalf("card %s after x's registration: %+v, %v", code, card, err)
	}
	// x earns 300 at s1 with the card.
	if _, err := n.Transfer(context.Background(), storeline.NewEventID(), "test earning", "", []storeline.Posting{
		{Account: storeline.IssuedPointsAccount("s1"), Asset: storeline.PointsAsset("club"), Amount: decimal.NewFromInt(-300)},
		{Account: storeline.PointsAccount("club", "cust-x", "s1"), Asset: storeline.PointsAsset("club"), Amount: decimal.NewFromInt(300)},
	}); err != nil {
		t.Fatal(err)
	}
	review14Reg(t, n, seqs, "s2", t0.Add(time.Minute), "cust-y", code)
	if _, err := n.Customer("cust-y"); err != nil {
		t.Errorf("customer y: %v, want registered (without the card)", err)
	}
	card = storeline.CardRecord{}
	if err := n.rep.LookupMaster(storeline.KindCard, storeline.CardCodeKey(code), &card); err != nil || card.Customer != "cust-x" {
		st, _ := n.Points("club", "cust-x")
		t.Errorf("card %s after y's later registration of it: %+v, %v; want it x's, who holds %d points no card would reach", code, card, err, st.Balance)
	}
}
