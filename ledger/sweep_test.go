package ledger_test

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestApplyPulledSweep: a sweep removes the live records of its kinds at
// or below Below, page by page within Limit, never records of other kinds
// or records written after Below, and its tombstones survive a reopen.
func TestApplyPulledSweep(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := open(t, testOptions(dir))
	var old []storeline.Record
	for i := 0; i < 23; i++ {
		old = append(old, pulledItem(fmt.Sprintf("old%02d", i), fmt.Sprintf("O%02d", i)))
	}
	old = append(old, &storeline.Terminal{ID: "till-9", Store: "s1", Name: "issued here", TokenHash: storeline.TokenHash("tok-0123456789abcdef")})
	if _, err := l.PutMaster(ctx, old); err != nil {
		t.Fatal(err)
	}
	below := l.MasterVersion()
	// The snapshot rewrites old03 and brings new01: both stay.
	if _, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", To: []byte("snap"), Records: []ledger.PulledRecord{
		{Kind: storeline.KindItem, ID: "old03", Record: pulledItem("old03", "O03")},
		{Kind: storeline.KindItem, ID: "new01", Record: pulledItem("new01", "N01")},
	}}); err != nil {
		t.Fatal(err)
	}
	from, after, swept, pages := []byte("snap"), uint64(0), 0, 0
	for after < below {
		to := []byte(fmt.Sprintf("sweep%d", pages))
		res, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", From: from, To: to,
			Sweep: &ledger.PulledSweep{After: after, Below: below, Kinds: []storeline.MasterKind{storeline.KindItem}, Limit: 4}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Swept > 4 || res.SweptTo <= after && res.SweptTo < below {
			t.Fatalf("page %d: %+v after %d: over the limit or no progress", pages, res, after)
		}
		from, after, swept = to, res.SweptTo, swept+res.Swept
		if pages++; pages > 20 {
			t.Fatal("the sweep does not end")
		}
	}
	if swept != 22 || pages < 6 {
		t.Errorf("swept %d records in %d pages, want 22 in at least 6", swept, pages)
	}
	check := func(l *ledger.Ledger) {
		t.Helper()
		var it storeline.Item
		for i := 0; i < 23; i++ {
			id := fmt.Sprintf("old%02d", i)
			if err := l.GetMaster(storeline.KindItem, id, &it); (err == nil) != (i == 3) {
				t.Errorf("GetMaster(%s) = %v after the sweep", id, err)
			}
		}
		if err := l.GetMaster(storeline.KindItem, "new01", &it); err != nil {
			t.Errorf("GetMaster(new01) = %v: a record above Below was swept", err)
		}
		var tm storeline.Terminal
		if err := l.GetMaster(storeline.KindTerminal, "till-9", &tm); err != nil {
			t.Errorf("GetMaster(till-9) = %v: a kind outside the sweep was swept", err)
		}
		if err := l.LookupMaster(storeline.KindItem, "sku:O03", &it); err != nil {
			t.Errorf("LookupMaster(sku:O03) = %v", err)
		}
		if err := l.LookupMaster(storeline.KindItem, "sku:O05", &it); err == nil {
			t.Errorf("the SKU of a swept item still resolves to %s", it.ID)
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	check(open(t, testOptions(dir)))
}

// TestApplyPulledSweepAtMaxVersion: the empty range (2^64-1, 2^64-1]
// sweeps nothing (After+1 must not wrap to every version).
func TestApplyPulledSweepAtMaxVersion(t *testing.T) {
	ctx := context.Background()
	l := open(t, testOptions(t.TempDir()))
	if _, err := l.PutMaster(ctx, []storeline.Record{pulledItem("a", "A1"), pulledItem("b", "B1")}); err != nil {
		t.Fatal(err)
	}
	res, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", To: []byte("sweep"),
		Sweep: &ledger.PulledSweep{After: math.MaxUint64, Below: math.MaxUint64, Kinds: []storeline.MasterKind{storeline.KindItem}, Limit: 4}})
	if err != nil || res.Swept != 0 {
		t.Fatalf("ApplyPulled(sweep at max) = %+v, %v, want nothing swept", res, err)
	}
	var it storeline.Item
	if err := l.GetMaster(storeline.KindItem, "a", &it); err != nil {
		t.Fatalf("GetMaster(a) after the sweep: %v", err)
	}
}
