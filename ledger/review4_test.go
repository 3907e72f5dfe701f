package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestReview4PulledPageTooBigForATransaction: a page that passes
// ApplyPulled's size estimate but writes more keys than one Badger
// transaction takes (8000 tombstones: 16000 writes, over the 13107 entries
// an 8 MiB memtable allows) is refused whole and cleanly (TooLarge, so the
// client asks for fewer items), and the ledger goes on serving: it was
// poisoned (Unavailable for every later call until reopened).
func TestReview4PulledPageTooBigForATransaction(t *testing.T) {
	ctx := context.Background()
	l := open(t, testOptions(t.TempDir()))
	v0 := l.MasterVersion()
	var recs []ledger.PulledRecord
	for i := 0; i < 8000; i++ {
		recs = append(recs, ledger.PulledRecord{Kind: storeline.KindItem, ID: fmt.Sprintf("t%04d", i)})
	}
	_, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", To: []byte("c1"), Records: recs})
	if !errors.Is(err, storeline.TooLarge) {
		t.Fatalf("page too big for one transaction: %v, want TooLarge", err)
	}
	if v, ok, err := l.Meta("cur"); err != nil || ok {
		t.Fatalf("cursor after a refused page: %q %v %v, want none", v, ok, err)
	}
	if got := l.MasterVersion(); got != v0 {
		t.Fatalf("MasterVersion after a refused page = %d, want %d", got, v0)
	}
	// The ledger still works: a smaller page applies, an append too.
	res, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", To: []byte("c1"), Records: recs[:1000]})
	if err != nil {
		t.Fatalf("smaller page after the refused one: %v", err)
	}
	if res.MasterVersion != v0+1000 {
		t.Fatalf("MasterVersion %d, want %d", res.MasterVersion, v0+1000)
	}
	mustAppend(t, l, receiptEvent(eid(1), 1, 1))
	if v, _, _ := l.Meta("cur"); string(v) != "c1" {
		t.Fatalf("cursor %q, want c1", v)
	}
}

// TestReview4PutMasterKeyMovedByPull: central moved SKU "A" from i1 to i2
// (i1's own change follows in a later page), so i1's stored record still
// lists "A" while i2 holds it. A local PutMaster of i1 that keeps "A" must
// not take it from i2: the key is held by another record (Conflict).
func TestReview4PutMasterKeyMovedByPull(t *testing.T) {
	ctx := context.Background()
	l := open(t, testOptions(t.TempDir()))
	if _, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", To: []byte("c1"), Records: []ledger.PulledRecord{
		{Kind: storeline.KindItem, ID: "i1", Record: pulledItem("i1", "A")},
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", From: []byte("c1"), To: []byte("c2"), Records: []ledger.PulledRecord{
		{Kind: storeline.KindItem, ID: "i2", Record: pulledItem("i2", "A")},
	}}); err != nil {
		t.Fatal(err)
	}
	renamed := pulledItem("i1", "A")
	renamed.Name = "renamed here"
	_, err := l.PutMaster(ctx, []storeline.Record{renamed})
	if !errors.Is(err, storeline.Conflict) {
		t.Errorf("PutMaster of i1 keeping SKU A, held by i2: %v, want Conflict", err)
	}
	var it storeline.Item
	if err := l.LookupMaster(storeline.KindItem, storeline.SKUKey("A"), &it); err != nil || it.ID != "i2" {
		t.Errorf("SKU A held by %q (%v), want i2", it.ID, err)
	}
	// i1's own change from central arrives: it drops "A", which i2 keeps.
	if _, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", From: []byte("c2"), To: []byte("c3"), Records: []ledger.PulledRecord{
		{Kind: storeline.KindItem, ID: "i1", Record: pulledItem("i1", "B")},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := l.LookupMaster(storeline.KindItem, storeline.SKUKey("A"), &it); err != nil || it.ID != "i2" {
		t.Errorf("after i1's change, SKU A held by %q (%v), want i2", it.ID, err)
	}
}

// TestReview4KeyMovesWithinOnePage: inside one page a unique key moves
// between two records in either order (the loser's change first or the
// winner's first), two records swap keys, and a tombstone releases the
// keys its record held, never a key another record took.
func TestReview4KeyMovesWithinOnePage(t *testing.T) {
	ctx := context.Background()
	for _, order := range []string{"loser-first", "winner-first"} {
		t.Run(order, func(t *testing.T) {
			dir := t.TempDir()
			l := open(t, testOptions(dir))
			if _, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", To: []byte("c1"), Records: []ledger.PulledRecord{
				{Kind: storeline.KindItem, ID: "i1", Record: pulledItem("i1", "A")},
				{Kind: storeline.KindItem, ID: "i2", Record: pulledItem("i2", "B")},
				{Kind: storeline.KindItem, ID: "i3", Record: pulledItem("i3", "C")},
			}}); err != nil {
				t.Fatal(err)
			}
			// i1 and i2 swap A and B; i3 gives C to i4 and is deleted.
			recs := []ledger.PulledRecord{
				{Kind: storeline.KindItem, ID: "i1", Record: pulledItem("i1", "B")},
				{Kind: storeline.KindItem, ID: "i2", Record: pulledItem("i2", "A")},
				{Kind: storeline.KindItem, ID: "i3"},
				{Kind: storeline.KindItem, ID: "i4", Record: pulledItem("i4", "C")},
			}
			if order == "winner-first" {
				recs = []ledger.PulledRecord{recs[3], recs[1], recs[0], recs[2]}
			}
			if _, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", From: []byte("c1"), To: []byte("c2"), Records: recs}); err != nil {
				t.Fatal(err)
			}
			check := func(l *ledger.Ledger) {
				t.Helper()
				for sku, want := range map[string]storeline.ItemID{"A": "i2", "B": "i1", "C": "i4"} {
					var it storeline.Item
					if err := l.LookupMaster(storeline.KindItem, storeline.SKUKey(sku), &it); err != nil || it.ID != want {
						t.Errorf("SKU %s held by %q (%v), want %s", sku, it.ID, err, want)
					}
				}
			}
			check(l)
			// i4 deleted: C is free again, and i5 may take it locally.
			if _, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", From: []byte("c2"), To: []byte("c3"), Records: []ledger.PulledRecord{
				{Kind: storeline.KindItem, ID: "i4"},
			}}); err != nil {
				t.Fatal(err)
			}
			var it storeline.Item
			if err := l.LookupMaster(storeline.KindItem, storeline.SKUKey("C"), &it); !errors.Is(err, storeline.NotFound) {
				t.Errorf("SKU C after its holder's tombstone: %q %v, want NotFound", it.ID, err)
			}
			if _, err := l.PutMaster(ctx, []storeline.Record{pulledItem("i5", "C")}); err != nil {
				t.Errorf("PutMaster taking the released SKU C: %v", err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l2 := open(t, testOptions(dir))
			if err := l2.LookupMaster(storeline.KindItem, storeline.SKUKey("C"), &it); err != nil || it.ID != "i5" {
				t.Errorf("after reopen, SKU C held by %q (%v), want i5", it.ID, err)
			}
		})
	}
}

// TestReview4MasterChangesPaging: paging MasterChanges by the last version
// seen neither skips nor repeats a record, across a reopen and while
// records change between pages.
func TestReview4MasterChangesPaging(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := open(t, testOptions(dir))
	var recs []ledger.PulledRecord
	for i := 0; i < 25; i++ {
		recs = append(recs, ledger.PulledRecord{Kind: storeline.KindItem, ID: fmt.Sprintf("p%02d", i), Record: pulledItem(fmt.Sprintf("p%02d", i), fmt.Sprintf("S%02d", i))})
	}
	if _, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", To: []byte("c1"), Records: recs}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]uint64{}
	var after uint64
	page := func(l *ledger.Ledger) int {
		cs, err := l.MasterChanges(after, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.Version <= after {
				t.Fatalf("version %d after %d", c.Version, after)
			}
			after = c.Version
			seen[c.ID] = c.Version
		}
		return len(cs)
	}
	page(l)
	// p03 (seen) and p20 (not yet) change between pages.
	if _, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", From: []byte("c1"), To: []byte("c2"), Records: []ledger.PulledRecord{
		{Kind: storeline.KindItem, ID: "p03"}, {Kind: storeline.KindItem, ID: "p20", Record: pulledItem("p20", "X")},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = open(t, testOptions(dir))
	for page(l) > 0 {
	}
	if len(seen) != 25 || seen["p03"] != l.MasterVersion()-1 || seen["p20"] != l.MasterVersion() {
		t.Fatalf("seen %d records (p03 at %d, p20 at %d), want 25 with the last two at %d, %d", len(seen), seen["p03"], seen["p20"], l.MasterVersion()-1, l.MasterVersion())
	}
}

// TestReview4UnknownKindRefusedWhole: a page with a record of a kind this
// node does not know (a newer central) is refused whole: nothing of it is
// stored, the cursor stays.
func TestReview4UnknownKindRefusedWhole(t *testing.T) {
	ctx := context.Background()
	l := open(t, testOptions(t.TempDir()))
	_, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", To: []byte("c1"), Records: []ledger.PulledRecord{
		{Kind: storeline.KindItem, ID: "i1", Record: pulledItem("i1", "A")},
		{Kind: "hologram", ID: "h1"},
	}})
	if !errors.Is(err, storeline.Invalid) {
		t.Fatalf("page with an unknown kind: %v, want Invalid", err)
	}
	var it storeline.Item
	if err := l.GetMaster(storeline.KindItem, "i1", &it); !errors.Is(err, storeline.NotFound) {
		t.Errorf("i1 of a refused page: %v, want NotFound", err)
	}
	if _, ok, _ := l.Meta("cur"); ok {
		t.Errorf("cursor moved by a refused page")
	}
}

// TestReview4MasterVersionGrowsAcrossRestore: tills hold the node-local
// master version they last read; a node restored from a backup taken
// before later changes must go on numbering above every version the lost
// node gave out, or a till that asks for changes after its version misses
// the changes the restored node pulls again.
func TestReview4MasterVersionGrowsAcrossRestore(t *testing.T) {
	ctx := context.Background()
	l := open(t, testOptions(t.TempDir()))
	if _, err := l.PutMaster(ctx, []storeline.Record{pulledItem("i1", "A")}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := l.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if _, err := l.PutMaster(ctx, []storeline.Record{pulledItem(fmt.Sprintf("j%02d", i), fmt.Sprintf("J%02d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	tillSaw := l.MasterVersion()
	dir := t.TempDir()
	// The epoch of a restore is its HLC time (storeline restore).
	epoch := uint64(testClock().Now())
	if err := ledger.Restore(dir, &buf, epoch); err != nil {
		t.Fatal(err)
	}
	r := open(t, testOptions(dir))
	v, err := r.PutMaster(ctx, []storeline.Record{pulledItem("i9", "Z")})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := r.MasterChanges(tillSaw, 10)
	if err != nil {
		t.Fatal(err)
	}
	if v <= tillSaw || len(cs) != 1 || cs[0].ID != "i9" {
		t.Fatalf("first change after the restore at version %d, changes after the till's %d: %+v; want it above and seen", v, tillSaw, cs)
	}
}
