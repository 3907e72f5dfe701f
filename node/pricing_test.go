package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/sample"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/pricing"
)

// The node prices with pricing.MasterCatalog over its ledger: the ledger
// must satisfy pricing.Masters as it is.
var _ pricing.Masters = (*ledger.Ledger)(nil)

// TestLedgerCatalog prices the sample chain over a real ledger and over the
// same records in memory: the results agree, and a promotion imported
// later is seen at once (the compiled rules follow the master version).
func TestLedgerCatalog(t *testing.T) {
	led, err := ledger.Open(ledger.DefaultOptions(t.TempDir(), "shop-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close()
	chain := sample.New("shop-1")
	recs := chain.Records(nil)
	if _, err := led.PutMaster(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	basket := pricing.Basket{Store: chain.Store, At: time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC), CustomerGroup: sample.VIPGroup}
	for i, it := range chain.Items {
		if i%7 == 0 {
			q := decimal.NewFromInt(int64(1 + i%4))
			if it.Unit != storeline.Piece {
				q = decimal.RequireFromString("0.750")
			}
			basket.Lines = append(basket.Lines, pricing.BasketLine{Item: it.ID, Qty: q})
		}
	}
	onLedger := pricing.New(pricing.NewMasterCatalog(led))
	price := func(e *pricing.Engine) *pricing.Result {
		t.Helper()
		res, err := e.Price(basket)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	a, b := price(onLedger), price(pricing.New(pricing.NewMemCatalog(recs)))
	if !a.Total.Equal(b.Total) || !a.Discount.Equal(b.Discount) || a.Threshold != b.Threshold {
		t.Fatalf("ledger total %s (discount %s), memory %s (discount %s)", a.Total, a.Discount, b.Total, b.Discount)
	}
	for i := range a.Lines {
		if x, y := a.Lines[i], b.Lines[i]; x.Rule != y.Rule || !x.Total.Equal(y.Total) || len(x.Promotions) != len(y.Promotions) {
			t.Errorf("line %d: ledger %+v, memory %+v", i, x, y)
		}
	}
	if a.Discount.IsZero() {
		t.Fatalf("the sample's promotions gave nothing: %+v", a)
	}

	// A new promotion on every good of the sample's first line's group.
	first := chain.Item(basket.Lines[0].Item)
	promo := &storeline.Promotion{ID: "flash", Name: "Flash sale", Kind: storeline.PromoPercent, Priority: 5,
		From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Groups: []storeline.GroupID{first.Group}, Percent: decimal.NewFromInt(50)}
	if _, err := led.PutMaster(context.Background(), []storeline.Record{promo}); err != nil {
		t.Fatal(err)
	}
	c := price(onLedger)
	if got := c.Lines[0].Promotions; len(got) == 0 || got[0].Promotion != "flash" {
		t.Fatalf("after importing a promotion, line 0 has %+v", got)
	}
}

// TestImportRuleKinds: the pricing and loyalty kinds import by name through
// the admin API's decoder, and a bad rule is refused naming its field.
func TestImportRuleKinds(t *testing.T) {
	chain := sample.New("shop-1")
	var imp node.MasterImport
	var want []storeline.Record
	for _, r := range chain.Records(nil) {
		switch r.MasterKind() {
		case storeline.KindPricePolicy, storeline.KindPromotion, storeline.KindLoyaltyProgramme:
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			imp.Records = append(imp.Records, node.MasterEntry{Kind: r.MasterKind(), Record: b})
			want = append(want, r)
		}
	}
	got, err := node.DecodeMaster(imp)
	if err != nil {
		t.Fatalf("DecodeMaster: %v", err)
	}
	if len(got) != len(want) || len(got) < 3 {
		t.Fatalf("decoded %d records, want %d (at least 3)", len(got), len(want))
	}
	for i := range got {
		a, _ := json.Marshal(got[i])
		b, _ := json.Marshal(want[i])
		if string(a) != string(b) {
			t.Errorf("record %d round trip:\n%s\n%s", i, a, b)
		}
	}
	bad := node.MasterImport{Records: []node.MasterEntry{{Kind: storeline.KindPromotion,
		Record: json.RawMessage(`{"ID":"p","Name":"P","Kind":"percent","From":"2026-01-01T00:00:00Z","Items":["milk"],"Percent":"0"}`)}}}
	if _, err := node.DecodeMaster(bad); storeline.FieldOf(err) != "records[0].record.percent" {
		t.Errorf("a 0%% promotion: %v, want an error naming records[0].record.percent", err)
	}
}

// sampleLedger is a real ledger of shop-1 holding the sample chain's
// master records, closed when t ends.
func sampleLedger(t *testing.T) (*ledger.Ledger, *sample.Chain) {
	t.Helper()
	led, err := ledger.Open(ledger.DefaultOptions(t.TempDir(), "shop-1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	chain := sample.New("shop-1")
	if _, err := led.PutMaster(context.Background(), chain.Records(nil)); err != nil {
		t.Fatal(err)
	}
	return led, chain
}

// countingMasters is the real ledger with its master reads counted.
type countingMasters struct {
	*ledger.Ledger
	gets, scans, lookups int
}

func (c *countingMasters) LookupMaster(kind storeline.MasterKind, key string, into storeline.Record) error {
	c.lookups++
	return c.Ledger.LookupMaster(kind, key, into)
}

func (c *countingMasters) GetMaster(kind storeline.MasterKind, id string, into storeline.Record) error {
	c.gets++
	return c.Ledger.GetMaster(kind, id, into)
}

func (c *countingMasters) ScanMaster(kind storeline.MasterKind, prefix string, fn func(storeline.Record) error) error {
	c.scans++
	return c.Ledger.ScanMaster(kind, prefix, fn)
}

// TestLedgerCatalogCacheFollowsVersion: MasterCatalog answers a second
// read of an item, a missing item or a price from what it read at the
// same master version, and reads again once the version moves, so a new
// price, a renamed item and an item created later are seen at once.
func TestLedgerCatalogCacheFollowsVersion(t *testing.T) {
	led, chain := sampleLedger(t)
	ctx := context.Background()
	cm := &countingMasters{Ledger: led}
	cat := pricing.NewMasterCatalog(cm)
	it := chain.Items[0]
	at := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	price := func() decimal.Decimal {
		t.Helper()
		p, ok, err := cat.Price(chain.List.ID, it.ID, at)
		if err != nil || !ok {
			t.Fatalf("price of %s: %v, found %v", it.ID, err, ok)
		}
		return p
	}
	name := func(id storeline.ItemID) (string, error) {
		got, err := cat.Item(id)
		if err != nil {
			return "", err
		}
		return got.Name, nil
	}

	p1 := price()
	if p := price(); !p.Equal(p1) || cm.scans != 1 {
		t.Fatalf("second price %s (first %s) after %d scans of the store, want the same after 1", p, p1, cm.scans)
	}
	if n, err := name(it.ID); err != nil || n != it.Name {
		t.Fatalf("item %s: %q, %v", it.ID, n, err)
	}
	for range 2 {
		if _, err := name("no-such-item"); !errors.Is(err, storeline.NotFound) {
			t.Fatalf("a missing item: %v, want NotFound", err)
		}
	}
	if _, err := name(it.ID); err != nil || cm.gets != 2 {
		t.Fatalf("reads of the store after two items read twice: %d (err %v), want 2", cm.gets, err)
	}
	bySKU := func(sku string) (string, error) {
		got, err := cat.ItemByKey(storeline.SKUKey(sku))
		if err != nil {
			return "", err
		}
		return got.Name, nil
	}
	for range 2 {
		if n, err := bySKU(it.SKU); err != nil || n != it.Name {
			t.Fatalf("item by SKU %s: %q, %v", it.SKU, n, err)
		}
		if _, err := bySKU("NO-SUCH"); !errors.Is(err, storeline.NotFound) {
			t.Fatalf("a missing SKU: %v, want NotFound", err)
		}
	}
	if cm.lookups != 2 {
		t.Fatalf("lookups of the store after two SKUs read twice: %d, want 2", cm.lookups)
	}

	newer := &storeline.Price{List: chain.List.ID, Item: it.ID, From: at.Add(-time.Minute), Price: p1.Add(decimal.NewFromInt(1))}
	renamed := *it
	renamed.Name = it.Name + " (new recipe)"
	added := &storeline.Item{ID: "no-such-item", SKU: "NO-SUCH", Name: "Added later", Group: it.Group, Dept: it.Dept, Unit: storeline.Piece, VATRate: it.VATRate}
	if _, err := led.PutMaster(ctx, []storeline.Record{newer, &renamed, added}); err != nil {
		t.Fatal(err)
	}
	if p := price(); !p.Equal(newer.Price) {
		t.Errorf("price after a new one from %v: %s, want %s", newer.From, p, newer.Price)
	}
	if n, err := name(it.ID); err != nil || n != renamed.Name {
		t.Errorf("item after its rename: %q, %v; want %q", n, err, renamed.Name)
	}
	if n, err := name("no-such-item"); err != nil || n != added.Name {
		t.Errorf("an item created after it was missing: %q, %v", n, err)
	}
	if n, err := bySKU(it.SKU); err != nil || n != renamed.Name {
		t.Errorf("item by SKU after its rename: %q, %v; want %q", n, err, renamed.Name)
	}
	if n, err := bySKU("NO-SUCH"); err != nil || n != added.Name {
		t.Errorf("a SKU created after it was missing: %q, %v", n, err)
	}
}
