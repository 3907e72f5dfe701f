package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"pgregory.net/rapid"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// masterModel is a naive reference for the node's master-data store: a
// local PutMaster checks unique keys as it goes, record by record, and a
// pulled record takes its keys whoever holds them; every change takes the
// next version.
type masterModel struct {
	ver   uint64
	recs  map[string]*modelRec // every record written, tombstones included
	owner map[string]string    // SKU → holder
}

type modelRec struct {
	live    bool
	sku     string
	name    string
	version uint64
}

func (m *masterModel) clone() *masterModel {
	c := &masterModel{ver: m.ver, recs: map[string]*modelRec{}, owner: maps.Clone(m.owner)}
	for id, r := range m.recs {
		rr := *r
		c.recs[id] = &rr
	}
	return c
}

// put stores (id, sku, name) or a tombstone (sku ""): the record's old
// key is released if it still holds it, the new one taken; check makes a
// key held by another record a conflict (PutMaster), else it moves
// (ApplyPulled).
func (m *masterModel) put(id, sku, name string, check bool) bool {
	if check {
		if o := m.owner[sku]; o != "" && o != id {
			// The old key is released first: a record keeping its own
			// key is no conflict (o == id above).
			return false
		}
	}
	if r := m.recs[id]; r != nil && r.live && m.owner[r.sku] == id {
		delete(m.owner, r.sku)
	}
	m.ver++
	if sku == "" {
		m.recs[id] = &modelRec{version: m.ver}
		return true
	}
	m.recs[id] = &modelRec{live: true, sku: sku, name: name, version: m.ver}
	m.owner[sku] = id
	return true
}

func (m *masterModel) changesAfter(after uint64) []string {
	type c struct {
		v  uint64
		id string
	}
	var cs []c
	for id, r := range m.recs {
		if r.version > after {
			cs = append(cs, c{r.version, id})
		}
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].v < cs[j].v })
	out := make([]string, len(cs))
	for i, x := range cs {
		out[i] = fmt.Sprintf("%d:%s:%v", x.v, x.id, !m.recs[x.id].live)
	}
	return out
}

// masterReader is what a node's Ledger and central's Replica both serve.
type masterReader interface {
	GetMaster(storeline.MasterKind, string, storeline.Record) error
	LookupMaster(storeline.MasterKind, string, storeline.Record) error
	ScanMaster(storeline.MasterKind, string, func(storeline.Record) error) error
	MasterChanges(after uint64, limit int) ([]ledger.MasterChange, error)
}

// checkMaster compares every read of the ledger's master data with the
// model: GetMaster (twice, the second from the record cache), LookupMaster,
// ScanMaster, MasterVersion, and MasterChanges paged from a drawn version.
func checkMaster(t *rapid.T, l masterReader, m *masterModel, ids, skus []string) {
	if l, ok := l.(*ledger.Ledger); ok {
		if got := l.MasterVersion(); got != m.ver {
			t.Fatalf("MasterVersion = %d, want %d", got, m.ver)
		}
	}
	for _, id := range ids {
		for pass := 0; pass < 2; pass++ {
			var it storeline.Item
			err := l.GetMaster(storeline.KindItem, id, &it)
			r := m.recs[id]
			if r == nil || !r.live {
				if !errors.Is(err, storeline.NotFound) {
					t.Fatalf("GetMaster(%s) pass %d = %+v, %v; want NotFound", id, pass, it, err)
				}
				continue
			}
			if err != nil || it.Name != r.name || it.SKU != r.sku {
				t.Fatalf("GetMaster(%s) pass %d = %q/%q, %v; want %q/%q", id, pass, it.Name, it.SKU, err, r.name, r.sku)
			}
		}
	}
	for _, sku := range skus {
		for pass := 0; pass < 2; pass++ {
			var it storeline.Item
			err := l.LookupMaster(storeline.KindItem, storeline.SKUKey(sku), &it)
			o := m.owner[sku]
			if o == "" {
				if !errors.Is(err, storeline.NotFound) {
					t.Fatalf("LookupMaster(%s) pass %d = %s, %v; want NotFound", sku, pass, it.ID, err)
				}
				continue
			}
			if err != nil || string(it.ID) != o || it.Name != m.recs[o].name {
				t.Fatalf("LookupMaster(%s) pass %d = %s %q, %v; want %s %q", sku, pass, it.ID, it.Name, err, o, m.recs[o].name)
			}
		}
	}
	var scanned []string
	if err := l.ScanMaster(storeline.KindItem, "", func(r storeline.Record) error {
		scanned = append(scanned, r.MasterID()+"="+r.(*storeline.Item).Name)
		return nil
	}); err != nil {
		t.Fatalf("ScanMaster: %v", err)
	}
	var want []string
	for _, id := range slices.Sorted(maps.Keys(m.recs)) {
		if r := m.recs[id]; r.live {
			want = append(want, id+"="+r.name)
		}
	}
	if fmt.Sprint(scanned) != fmt.Sprint(want) {
		t.Fatalf("ScanMaster = %v, want %v", scanned, want)
	}
	after := rapid.Uint64Range(0, m.ver+1).Draw(t, "changes_after")
	limit := rapid.IntRange(1, 4).Draw(t, "changes_limit")
	var got []string
	for cur := after; ; {
		cs, err := l.MasterChanges(cur, limit)
		if err != nil {
			t.Fatalf("MasterChanges(%d, %d): %v", cur, limit, err)
		}
		if len(cs) > limit {
			t.Fatalf("MasterChanges(%d, %d) gave %d", cur, limit, len(cs))
		}
		for _, c := range cs {
			if c.Version <= cur {
				t.Fatalf("MasterChanges(%d) gave version %d", cur, c.Version)
			}
			cur = c.Version
			if !c.Deleted && (c.Record == nil || c.Record.(*storeline.Item).Name != m.recs[c.ID].name) {
				t.Fatalf("MasterChanges: %s at %d carries %+v, want name %q", c.ID, c.Version, c.Record, m.recs[c.ID].name)
			}
			got = append(got, fmt.Sprintf("%d:%s:%v", c.Version, c.ID, c.Deleted))
		}
		if len(cs) < limit {
			break
		}
	}
	if w := m.changesAfter(after); fmt.Sprint(got) != fmt.Sprint(w) {
		t.Fatalf("MasterChanges after %d (limit %d):\n got  %v\n want %v", after, limit, got, w)
	}
}

// TestReview11MasterModel drives the master-data store through local
// upserts and deletes, pulled pages (keys moving between records, a record
// and its tombstone in one page, a page delivered twice) and reopens, and
// checks every read against masterModel after each step.
func TestReview11MasterModel(t *testing.T) {
	checks := 30
	if *long {
		checks = 300
	}
	setRapidChecks(checks)
	ids := []string{"a", "b", "c", "d"}
	skus := []string{"S1", "S2", "S3", "S4", "S5"}
	rapid.Check(t, func(t *rapid.T) {
		ctx := context.Background()
		o := testOptions(tempDir(t))
		l, err := ledger.Open(o)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer func() { l.Close() }()
		m := &masterModel{recs: map[string]*modelRec{}, owner: map[string]string{}}
		names := 0
		name := func() string { names++; return fmt.Sprintf("n%d", names) }
		var cursor, prevFrom, prevTo []byte
		var prevPage []ledger.PulledRecord
		pages := 0
		steps := rapid.IntRange(1, 25).Draw(t, "steps")
		for step := 0; step < steps; step++ {
			switch op := rapid.IntRange(0, 9).Draw(t, "op"); {
			case op < 4: // a local PutMaster of 1-3 records
				n := rapid.IntRange(1, 3).Draw(t, "n")
				var recs []storeline.Record
				next := m.clone()
				ok := true
				for i := 0; i < n; i++ {
					id := rapid.SampledFrom(ids).Draw(t, "id")
					sku := rapid.SampledFrom(skus).Draw(t, "sku")
					it := pulledItem(id, sku)
					it.Name = name()
					recs = append(recs, it)
					ok = ok && next.put(id, sku, it.Name, true)
				}
				_, err := l.PutMaster(ctx, recs)
				switch {
				case ok && err != nil:
					t.Fatalf("PutMaster: %v, want success", err)
				case !ok && !errors.Is(err, storeline.Conflict):
					t.Fatalf("PutMaster: %v, want Conflict", err)
				case ok:
					m = next
				}
			case op < 5: // DeleteMaster
				id := rapid.SampledFrom(ids).Draw(t, "del_id")
				_, err := l.DeleteMaster(ctx, storeline.KindItem, id)
				if r := m.recs[id]; r == nil || !r.live {
					if !errors.Is(err, storeline.NotFound) {
						t.Fatalf("DeleteMaster(%s) of no record: %v, want NotFound", id, err)
					}
					break
				}
				if err != nil {
					t.Fatalf("DeleteMaster(%s): %v", id, err)
				}
				m.put(id, "", "", false)
			case op < 8: // a pulled page
				n := rapid.IntRange(0, 4).Draw(t, "page_n")
				var recs []ledger.PulledRecord
				next := m.clone()
				for i := 0; i < n; i++ {
					id := rapid.SampledFrom(ids).Draw(t, "page_id")
					if rapid.IntRange(0, 3).Draw(t, "tomb") == 0 {
						recs = append(recs, ledger.PulledRecord{Kind: storeline.KindItem, ID: id})
						next.put(id, "", "", false)
						continue
					}
					sku := rapid.SampledFrom(skus).Draw(t, "page_sku")
					it := pulledItem(id, sku)
					it.Name = name()
					recs = append(recs, ledger.PulledRecord{Kind: storeline.KindItem, ID: id, Record: it})
					next.put(id, sku, it.Name, false)
				}
				pages++
				to := []byte(fmt.Sprintf("c%03d", pages))
				if _, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", From: cursor, To: to, Records: recs}); err != nil {
					t.Fatalf("ApplyPulled: %v", err)
				}
				m = next
				prevFrom, prevTo, prevPage = cursor, to, recs
				cursor = to
			case op < 9: // the last page delivered again
				if prevTo == nil {
					break
				}
				_, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", From: prevFrom, To: prevTo, Records: prevPage})
				if !errors.Is(err, storeline.Conflict) {
					t.Fatalf("page delivered twice: %v, want Conflict", err)
				}
			default:
				if err := l.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				if l, err = ledger.Open(o); err != nil {
					t.Fatalf("reopen: %v", err)
				}
			}
			checkMaster(t, l, m, ids, skus)
			if v, _, err := l.Meta("cur"); err != nil || !bytes.Equal(v, cursor) {
				t.Fatalf("cursor %q (%v), want %q", v, err, cursor)
			}
		}
	})
}

// TestReview11OnlineBackupWhileAppending takes a backup while writers
// append receipts and pull pages, restores it with the real Restore, and
// checks that every event and master record acknowledged before Backup
// was called is in the restored ledger, that balances conserve and shift
// totals match the journal there, and that the restored node, fed back
// its own older-epoch events (as central returns them), counts each once.
func TestReview11OnlineBackupWhileAppending(t *testing.T) {
	ctx := context.Background()
	l := open(t, testOptions(t.TempDir()))
	var (
		mu       sync.Mutex
		acked    []storeline.EventID
		ackedRec []string
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		next     atomic.Uint64
		errs     = make(chan error, 8)
	)
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := next.Add(1)
				r := receipt(1+int(n%3), int(n))
				r.Terminal, r.Shift = shiftTerminals[n%2], shiftIDs[n%3]
				if _, _, err := l.Append(ctx, shiftEvent(eid(n), r)); err != nil {
					errs <- fmt.Errorf("Append: %w", err)
					return
				}
				mu.Lock()
				acked = append(acked, eid(n))
				mu.Unlock()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		var cur []byte
		for p := 0; ; p++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("p%04d", p)
			to := []byte(fmt.Sprintf("c%04d", p))
			if _, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", From: cur, To: to, Records: []ledger.PulledRecord{
				{Kind: storeline.KindItem, ID: id, Record: pulledItem(id, "sku"+id)},
			}}); err != nil {
				errs <- fmt.Errorf("ApplyPulled: %w", err)
				return
			}
			cur = to
			mu.Lock()
			ackedRec = append(ackedRec, id)
			mu.Unlock()
		}
	}()
	// Let the writers get going, then back up while they run.
	for {
		mu.Lock()
		n, m := len(acked), len(ackedRec)
		mu.Unlock()
		if n >= 200 && m >= 20 {
			break
		}
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
		runtime.Gosched()
	}
	mu.Lock()
	before := slices.Clone(acked)
	beforeRec := slices.Clone(ackedRec)
	mu.Unlock()
	var buf bytes.Buffer
	berr := l.Backup(&buf)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if berr != nil {
		t.Fatalf("Backup: %v", berr)
	}
	full, err := allEvents(l, store)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ledger.Restore(dir, &buf, 1_000_000); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	r := open(t, testOptions(dir))
	for _, id := range before {
		if _, err := r.Event(store, id); err != nil {
			t.Fatalf("event %s acknowledged before the backup: %v", id, err)
		}
	}
	for _, id := range beforeRec {
		var it storeline.Item
		if err := r.GetMaster(storeline.KindItem, id, &it); err != nil {
			t.Fatalf("record %s acknowledged before the backup: %v", id, err)
		}
	}
	checkConservation(t, r)
	if err := checkShiftTotals(r, shiftRefs()); err != nil {
		t.Fatalf("restored: %v", err)
	}
	// Central sends back the node's own acknowledged events of the old
	// epoch: those the backup lacks are applied once, the rest known.
	for _, ev := range full {
		if _, err := r.ApplyRemote(ctx, ev); err != nil {
			t.Fatalf("ApplyRemote(own %s at %d/%d): %v", ev.ID, ev.Epoch, ev.Seq, err)
		}
	}
	checkConservation(t, r)
	if err := checkShiftTotals(r, shiftRefs()); err != nil {
		t.Fatalf("after own events returned: %v", err)
	}
	for _, ref := range shiftRefs() {
		a, _ := l.ShiftTotals(ref.term, ref.shift)
		b, _ := r.ShiftTotals(ref.term, ref.shift)
		if shiftString(a) != shiftString(b) {
			t.Fatalf("ShiftTotals(%s, %s): restored and fed back %s, original %s", ref.term, ref.shift, shiftString(b), shiftString(a))
		}
	}
	ba, err := l.Balances("")
	if err != nil {
		t.Fatal(err)
	}
	bb, err := r.Balances("")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ba) != fmt.Sprint(bb) {
		t.Fatalf("balances: restored and fed back %v, original %v", bb, ba)
	}
}

// TestReview11ReplicaMasterModel drives central's Replica through
// PutMasters entries (keys moving within an entry, refused entries,
// tombstones), tombstone pruning, reopens and snapshot restores, and
// checks its reads against masterModel.
func TestReview11ReplicaMasterModel(t *testing.T) {
	checks := 30
	if *long {
		checks = 300
	}
	setRapidChecks(checks)
	ids := []string{"a", "b", "c", "d"}
	skus := []string{"S1", "S2", "S3", "S4", "S5"}
	rapid.Check(t, func(t *rapid.T) {
		dir := tempDir(t)
		r, err := ledger.OpenReplica(dir, ledger.ReplicaOptions{})
		if err != nil {
			t.Fatalf("OpenReplica: %v", err)
		}
		defer func() { r.Close() }()
		m := &masterModel{recs: map[string]*modelRec{}, owner: map[string]string{}}
		names, index := 0, uint64(0)
		steps := rapid.IntRange(1, 25).Draw(t, "steps")
		for step := 0; step < steps; step++ {
			index++
			switch op := rapid.IntRange(0, 9).Draw(t, "op"); {
			case op < 6: // one entry of 1-4 writes
				n := rapid.IntRange(1, 4).Draw(t, "n")
				next := m.clone()
				ok, notFound := true, false
				var ws []ledger.MasterWrite
				touched := map[string]bool{} // a second tombstone in one call is taken (see the report)
				for i := 0; i < n; i++ {
					v := index*100 + uint64(i)
					next.ver = v - 1
					id := rapid.SampledFrom(ids).Draw(t, "id")
					if rapid.IntRange(0, 3).Draw(t, "tomb") == 0 {
						ws = append(ws, ledger.MasterWrite{Version: v, Kind: storeline.KindItem, ID: id})
						if rr := next.recs[id]; ok && !touched[id] && (rr == nil || !rr.live) {
							ok, notFound = false, true
						}
						if ok {
							next.put(id, "", "", false)
						}
						touched[id] = true
						continue
					}
					sku := rapid.SampledFrom(skus).Draw(t, "sku")
					it := pulledItem(id, sku)
					names++
					it.Name = fmt.Sprintf("n%d", names)
					ws = append(ws, ledger.MasterWrite{Version: v, Record: it})
					ok = ok && next.put(id, sku, it.Name, true)
					touched[id] = true
				}
				var perr error
				applied, err := r.Apply(index, func(tx *ledger.ReplicaTxn) error {
					perr = tx.PutMasters(ws)
					return nil
				})
				if err != nil || !applied {
					t.Fatalf("Apply(%d) = %v, %v", index, applied, err)
				}
				switch {
				case ok && perr != nil:
					t.Fatalf("PutMasters: %v, want success", perr)
				case !ok && notFound && !errors.Is(perr, storeline.NotFound):
					t.Fatalf("PutMasters: %v, want NotFound", perr)
				case !ok && !notFound && !errors.Is(perr, storeline.Conflict):
					t.Fatalf("PutMasters: %v, want Conflict", perr)
				case ok:
					m = next
				}
			case op < 7: // prune tombstones below a drawn version
				below := rapid.Uint64Range(0, index*100).Draw(t, "below")
				if _, err := r.Apply(index, func(tx *ledger.ReplicaTxn) error {
					_, err := tx.PruneTombstones(below, 1000)
					return err
				}); err != nil {
					t.Fatalf("PruneTombstones: %v", err)
				}
				for id, rr := range m.recs {
					if !rr.live && rr.version < below {
						delete(m.recs, id)
					}
				}
			case op < 8: // snapshot into a fresh replica, which takes over
				var buf bytes.Buffer
				if err := r.Backup(&buf); err != nil {
					t.Fatalf("Backup: %v", err)
				}
				dir = tempDir(t)
				dst, err := ledger.OpenReplica(dir, ledger.ReplicaOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if rapid.Bool().Draw(t, "used_dst") {
					// A replica that went on elsewhere: other records at
					// later Badger versions, which the restore replaces.
					for i := uint64(1); i <= 30; i++ {
						if _, err := dst.Apply(i, func(tx *ledger.ReplicaTxn) error {
							return tx.PutMasters([]ledger.MasterWrite{{Version: 1 << 40 * i, Record: pulledItem(ids[i%4], fmt.Sprintf("X%d", i))}})
						}); err != nil {
							t.Fatal(err)
						}
					}
				}
				if err := dst.Restore(&buf); err != nil {
					t.Fatalf("Restore: %v", err)
				}
				if got, want := dst.AppliedIndex(), r.AppliedIndex(); got != want {
					t.Fatalf("restored AppliedIndex %d, want %d", got, want)
				}
				r.Close()
				r = dst
			default:
				if err := r.Close(); err != nil {
					t.Fatal(err)
				}
				if r, err = ledger.OpenReplica(dir, ledger.ReplicaOptions{}); err != nil {
					t.Fatalf("reopen: %v", err)
				}
			}
			checkMaster(t, r, m, ids, skus)
			for _, id := range ids {
				var live bool
				if err := r.View(func(tx *ledger.ReplicaTxn) (err error) {
					live, err = tx.HasMaster(storeline.KindItem, id)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				if rr := m.recs[id]; live != (rr != nil && rr.live) {
					t.Fatalf("HasMaster(%s) = %v, model %+v", id, live, rr)
				}
			}
		}
	})
}

// TestReview11CacheFreshAfterPut: while readers fill the record cache, a
// read made after PutMaster (or a pulled page) returned sees that change,
// by ID and by unique key, and a key the change released is gone.
func TestReview11CacheFreshAfterPut(t *testing.T) {
	ctx := context.Background()
	l := open(t, testOptions(t.TempDir()))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var it storeline.Item
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = l.GetMaster(storeline.KindItem, "a", &it)
				_ = l.LookupMaster(storeline.KindItem, storeline.SKUKey("A"), &it)
				_ = l.LookupMaster(storeline.KindItem, storeline.SKUKey(fmt.Sprint("K", 0)), &it)
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	var cur []byte
	for i := 1; i <= 300; i++ {
		it := pulledItem("a", "A")
		it.Name = fmt.Sprintf("n%d", i)
		if i%2 == 0 {
			it.SKU = "K0" // moves between SKUs A and K0
		}
		if i%3 == 0 {
			to := []byte(fmt.Sprint(i))
			if _, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", From: cur, To: to,
				Records: []ledger.PulledRecord{{Kind: storeline.KindItem, ID: "a", Record: it}}}); err != nil {
				t.Fatal(err)
			}
			cur = to
		} else if _, err := l.PutMaster(ctx, []storeline.Record{it}); err != nil {
			t.Fatal(err)
		}
		var got storeline.Item
		if err := l.GetMaster(storeline.KindItem, "a", &got); err != nil || got.Name != it.Name {
			t.Fatalf("GetMaster after change %d = %q, %v", i, got.Name, err)
		}
		got = storeline.Item{}
		if err := l.LookupMaster(storeline.KindItem, storeline.SKUKey(it.SKU), &got); err != nil || got.Name != it.Name {
			t.Fatalf("LookupMaster(%s) after change %d = %q, %v", it.SKU, i, got.Name, err)
		}
		other := "A"
		if it.SKU == "A" {
			other = "K0"
		}
		if err := l.LookupMaster(storeline.KindItem, storeline.SKUKey(other), &got); !errors.Is(err, storeline.NotFound) {
			t.Fatalf("LookupMaster(%s) after change %d released it = %q, %v; want NotFound", other, i, got.Name, err)
		}
	}
}
