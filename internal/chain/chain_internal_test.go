package chain

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/storeline/storeline/internal/sample"
)

// TestConfigValidate: the defaults are valid, and a bad config names every
// bad field.
func TestConfigValidate(t *testing.T) {
	for name, c := range map[string]Config{"default": DefaultConfig("/tmp/x"), "small": SmallConfig("/tmp/x")} {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := DefaultConfig("")
	bad.Centrals, bad.TillsPerShop, bad.Size.Items, bad.ElectionTimeout = 2, 0, 5, bad.HeartbeatTimeout/2
	err := bad.Validate()
	for _, f := range []string{"Dir", "Centrals", "TillsPerShop", "Size.Items", "ElectionTimeout"} {
		if err == nil || !strings.Contains(err.Error(), f+":") {
			t.Errorf("Validate() = %v, want it to name %s", err, f)
		}
	}
}

// TestWireRecord: records reach the head-office API with the snake_case
// names central decodes (central's own tests pin its rule).
func TestWireRecord(t *testing.T) {
	g := sample.Generate(sample.Size{Stores: 2, Items: 50, Customers: 1})
	b, _ := json.Marshal(wireRecord(g.Stores[1]))
	for _, want := range []string{`"time_zone":"Europe/Berlin"`, `"price_lists":["city","base"]`, `"departments":[{`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("store wire = %s, lacks %s", b, want)
		}
	}
	b, _ = json.Marshal(wireRecord(g.Items[0]))
	for _, want := range []string{`"vat_rate":"7"`, `"barcodes":[{"code":`, `"factor":"1"`, `"expiry_tracked":false`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("item wire = %s, lacks %s", b, want)
		}
	}
	for in, want := range map[string]string{"VATRate": "vat_rate", "PINHash": "pin_hash", "ID": "id", "DailyOfflineCap": "daily_offline_cap"} {
		if got := snake(in); got != want {
			t.Errorf("snake(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestStatusLine: the live line names the leader, each shop's rate and
// backlog, and a cut shop.
func TestStatusLine(t *testing.T) {
	s := Status{Leader: "central-2", CentralsUp: 2, Centrals: 3, Shops: []ShopStatus{
		{Store: "shop-1", Rate: 12, Receipts: 40, Backlog: 3},
		{Store: "shop-2", Rate: 9, Receipts: 30, Backlog: -1, Cut: true},
	}}
	line := s.String()
	for _, want := range []string{"central 2/3 up, central-2", "shop-1  12/s 40 backlog 3", "shop-2   9/s 30 CUT OFF"} {
		if !strings.Contains(line, want) {
			t.Errorf("status %q lacks %q", line, want)
		}
	}
	if s.Leader = ""; !strings.Contains(s.String(), "no leader") {
		t.Errorf("status without a leader: %q", s.String())
	}
}
