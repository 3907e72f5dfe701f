package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	o := testOptions(t.TempDir())
	l := open(t, o)
	for i := uint64(1); i <= 3; i++ {
		mustAppend(t, l, receiptEvent(eid(i), 2, int(i)))
	}
	var buf bytes.Buffer
	if err := l.Backup(&buf); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	lost := mustAppend(t, l, receiptEvent(eid(4), 2, 4)) // after the backup
	l.Close()

	dir := filepath.Join(t.TempDir(), "restored")
	if err := ledger.Restore(dir, bytes.NewReader(buf.Bytes()), 1); !errors.Is(err, storeline.Invalid) {
		t.Fatalf("Restore to a smaller epoch: %v, want Invalid", err)
	}
	const epoch = 1_000_000
	if err := ledger.Restore(dir, bytes.NewReader(buf.Bytes()), epoch); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if err := ledger.Restore(dir, bytes.NewReader(buf.Bytes()), epoch+1); !errors.Is(err, storeline.Invalid) {
		t.Fatalf("Restore into a non-empty dir: %v, want Invalid", err)
	}
	ro := testOptions(dir)
	r := open(t, ro)
	if p := r.Position(); p != (ledger.Position{Epoch: epoch, Seq: 0}) {
		t.Fatalf("Position after restore = %v, want %d/0", p, epoch)
	}
	// A till retries an event the backup holds: counted once.
	got, created, err := r.Append(ctx, receiptEvent(eid(2), 2, 2))
	if err != nil || created || got.Epoch != 1 || got.Seq != 2 {
		t.Fatalf("retry of a backed-up event = %d/%d created %v err %v, want 1/2 not created", got.Epoch, got.Seq, created, err)
	}
	// A till retries the event the backup lacks: appended anew, seq 1 of
	// the new epoch.
	again, created, err := r.Append(ctx, receiptEvent(eid(4), 2, 4))
	if err != nil || !created || again.Epoch != epoch || again.Seq != 1 {
		t.Fatalf("retry of a lost event = %d/%d created %v err %v, want %d/1 created", again.Epoch, again.Seq, created, err, epoch)
	}
	// Central later sends back the old copy: it keeps its old position and
	// has no effect.
	before, _ := r.Balance(storeline.SoldAccount(store, "i0"), storeline.ItemAsset("i0"))
	applied, err := r.ApplyRemote(ctx, lost)
	if err != nil || applied {
		t.Fatalf("ApplyRemote(old copy) = %v, %v, want not applied", applied, err)
	}
	after, _ := r.Balance(storeline.SoldAccount(store, "i0"), storeline.ItemAsset("i0"))
	if !before.Equal(after) || !after.Equal(dec("4")) {
		t.Fatalf("Balance(sold i0) = %s then %s, want 4", before, after)
	}
	j, err := r.Journal(store, ledger.Position{}, 0)
	if err != nil || len(j) != 5 {
		t.Fatalf("Journal = %d, %v, want 5 (3 old, the old copy at 1/4, the new at %d/1)", len(j), err, epoch)
	}
	if j[3].Epoch != 1 || j[3].Seq != 4 || j[4].Epoch != epoch || j[3].ID != j[4].ID {
		t.Fatalf("Journal tail = %v/%v %v/%v", j[3].Epoch, j[3].Seq, j[4].Epoch, j[4].Seq)
	}
	checkConservation(t, r)
	// HLC never goes back: the restored node's clock is above the backup's.
	if ro.Clock.Last() < crdtTS(got.HLC) {
		t.Fatalf("clock %d below restored HLC %d", ro.Clock.Last(), got.HLC)
	}
}

func TestApplyRemoteRefusesUnbalanced(t *testing.T) {
	l := open(t, testOptions(t.TempDir()))
	ev := storeline.Event{
		ID: eid(1), Origin: "o1", Epoch: 1, Seq: 1, Kind: storeline.KindTransfer,
		Body:     &storeline.Transfer{Reason: "x"},
		Postings: []storeline.Posting{{Account: "a", Asset: "cur:EUR", Amount: dec("1")}},
	}
	if _, err := l.ApplyRemote(context.Background(), ev); !errors.Is(err, storeline.Invalid) {
		t.Fatalf("ApplyRemote(unbalanced) = %v, want Invalid", err)
	}
	ev.Postings = append(ev.Postings, storeline.Posting{Account: "b", Asset: "cur:EUR", Amount: dec("-1")})
	if ok, err := l.ApplyRemote(context.Background(), ev); err != nil || !ok {
		t.Fatalf("ApplyRemote = %v, %v", ok, err)
	}
	other := ev
	other.ID = eid(2)
	if _, err := l.ApplyRemote(context.Background(), other); !errors.Is(err, storeline.Conflict) {
		t.Fatalf("ApplyRemote at a taken position = %v, want Conflict", err)
	}
	checkConservation(t, l)
}

func TestEventsByDateAndReturnsOf(t *testing.T) {
	ctx := context.Background()
	l := open(t, testOptions(t.TempDir()))
	sale := mustAppend(t, l, receiptEvent(eid(1), 2, 0))
	r := sale.Body.(*storeline.Receipt)
	orig := sale.ID
	ret := storeline.Event{
		ID: eid(2), Kind: storeline.KindReturn, BusinessDate: "2026-11-29",
		Body: &storeline.Return{Terminal: "t1", Shift: "sh1", Seller: "alice", Manager: "bob", Currency: "EUR",
			Original: &orig, Reason: "broken", Lines: []storeline.Line{r.Lines[0]},
			Refunds: []storeline.Payment{{Method: storeline.Cash, Amount: r.Lines[0].Total}}},
	}
	if _, _, err := l.Append(ctx, ret); err != nil {
		t.Fatalf("Append(return): %v", err)
	}
	rs, err := l.ReturnsOf(orig)
	if err != nil || len(rs) != 1 || rs[0].ID != eid(2) {
		t.Fatalf("ReturnsOf = %v, %v", len(rs), err)
	}
	var days []storeline.Date
	err = l.EventsByDate("2026-11-28", "2026-11-29", func(ev storeline.Event) error {
		days = append(days, ev.BusinessDate)
		return nil
	})
	if err != nil || len(days) != 2 || days[0] != "2026-11-28" || days[1] != "2026-11-29" {
		t.Fatalf("EventsByDate = %v, %v", days, err)
	}
	days = nil
	_ = l.EventsByDate("2026-11-29", "2026-11-29", func(ev storeline.Event) error {
		days = append(days, ev.BusinessDate)
		return nil
	})
	if len(days) != 1 {
		t.Fatalf("EventsByDate(29th) = %v", days)
	}
	checkConservation(t, l)
}

// bigBackup returns a backup of a ledger at epoch 5,000,000 holding 400
// events and 50 master records.
func bigBackup(t *testing.T) []byte {
	t.Helper()
	ctx := context.Background()
	var empty bytes.Buffer
	if err := open(t, testOptions(t.TempDir())).Backup(&empty); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "src")
	if err := ledger.Restore(dir, &empty, 5_000_000); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	l := open(t, testOptions(dir))
	var wg sync.WaitGroup
	for w := uint64(0); w < 8; w++ { // 8 writers: fewer syncs
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 400; i += 8 {
				if _, _, err := l.Append(ctx, receiptEvent(eid(i+1), 3, int(i))); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var recs []storeline.Record
	for i := 0; i < 50; i++ {
		recs = append(recs, item(fmt.Sprintf("it%02d", i), fmt.Sprintf("SKU%02d", i)))
	}
	if _, err := l.PutMaster(ctx, recs); err != nil {
		t.Fatalf("PutMaster: %v", err)
	}
	var buf bytes.Buffer
	if err := l.Backup(&buf); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	return buf.Bytes()
}

// TestRestoreRefusesDamagedBackup: a backup cut short anywhere (Badger's
// own stream ends cleanly at any of its blocks), with a flipped byte, or
// without the ledger's state is refused as Invalid and leaves the target
// as it was; the whole backup then restores into the same directory.
func TestRestoreRefusesDamagedBackup(t *testing.T) {
	good := bigBackup(t)
	chunks, end, err := ledger.BackupLayout(good)
	if err != nil || len(chunks) < 3 {
		t.Fatalf("BackupLayout = %d chunks, %v: want at least 3", len(chunks), err)
	}
	data, err := ledger.BackupData(good)
	if err != nil {
		t.Fatal(err)
	}
	last := chunks[len(chunks)-1]
	flip := func(at int) []byte {
		b := bytes.Clone(good)
		b[at] ^= 0x10
		return b
	}
	hdr := len(ledger.BackupMagicV1)
	bad := []struct {
		name   string
		stream []byte
		damage bool // ErrBadBackup, not a refused header
	}{
		{"empty", nil, false},
		{"header only", good[:hdr], true},
		{"a chunk's length only", good[:hdr+4], true},
		{"mid chunk", good[:chunks[1]+100], true},
		{"half", good[:len(good)/2], true},
		{"all but the last chunk", good[:last], true},
		{"no end, no trailer", good[:end], true},
		{"no trailer", good[:end+4], true},
		{"trailer cut", good[:len(good)-1], true},
		{"data after the trailer", append(bytes.Clone(good), 0), true},
		{"flipped byte in the header", flip(3), false},
		{"flipped byte in a chunk's data", flip(chunks[1] + 8 + 1000), true},
		{"flipped byte in a chunk's checksum", flip(chunks[1] + 6), true},
		{"flipped byte in a chunk's length", flip(chunks[1] + 2), true},
		{"flipped byte in the trailer", flip(len(good) - 3), true},
		{"last chunk dropped, end kept", append(bytes.Clone(good[:last]), good[end:]...), true},
		{"no Badger data, trailer valid", ledger.FrameBackup(nil), true},
		{"format v1", append([]byte(ledger.BackupMagicV1), data...), false},
	}
	root := t.TempDir()
	for i, c := range bad {
		dir := filepath.Join(root, fmt.Sprint(i))
		if i%2 == 0 { // an empty directory, or none
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		err := ledger.Restore(dir, bytes.NewReader(c.stream), 5_000_001)
		if !errors.Is(err, storeline.Invalid) || errors.Is(err, ledger.ErrBadBackup) != c.damage {
			t.Errorf("%s: Restore = %v, want Invalid (ErrBadBackup %v)", c.name, err, c.damage)
		}
		if es, err := os.ReadDir(dir); err != nil && !errors.Is(err, os.ErrNotExist) || len(es) > 0 {
			t.Errorf("%s: refused restore left %d entries in %s (%v)", c.name, len(es), dir, err)
		}
	}
	// The repro: the epoch never goes back, and a refusal leaves the
	// directory empty for the retry.
	dir := filepath.Join(root, "0")
	if err := ledger.Restore(dir, bytes.NewReader(good), 2); !errors.Is(err, storeline.Invalid) {
		t.Fatalf("Restore at epoch 2 = %v, want Invalid", err)
	}
	if err := ledger.Restore(dir, bytes.NewReader(good), 5_000_001); err != nil {
		t.Fatalf("Restore after refusals: %v", err)
	}
	r := open(t, testOptions(dir))
	if p := r.Position(); p != (ledger.Position{Epoch: 5_000_001}) {
		t.Fatalf("Position = %v, want 5000001/0", p)
	}
	epochs, err := r.OwnEpochs()
	if err != nil || len(epochs) != 1 || epochs[0] != (ledger.Position{Epoch: 5_000_000, Seq: 400}) {
		t.Fatalf("OwnEpochs = %v, %v, want [5000000/400]", epochs, err)
	}
	// The version goes on above the backup's (Restore: above the lost
	// node's too), never below it.
	if cs, err := r.MasterChanges(0, 0); err != nil || len(cs) != 50 || r.MasterVersion() < 50 {
		t.Fatalf("MasterChanges = %d, %v, version %d, want 50 changes, version at least 50", len(cs), err, r.MasterVersion())
	}
	checkConservation(t, r)
}

// cutAfter keeps the first n bytes written to it, and fails the write
// that goes past them: a disk that fills up.
type cutAfter struct {
	w *bytes.Buffer
	n int
}

func (c *cutAfter) Write(p []byte) (int, error) {
	if len(p) > c.n {
		k := c.n
		c.w.Write(p[:k])
		c.n = 0
		return k, errors.New("disk full")
	}
	c.n -= len(p)
	return c.w.Write(p)
}

// TestBackupCutShort: a Backup whose writer fails reports it, and what it
// wrote is refused by Restore.
func TestBackupCutShort(t *testing.T) {
	l := open(t, testOptions(t.TempDir()))
	for i := uint64(1); i <= 50; i++ {
		mustAppend(t, l, receiptEvent(eid(i), 3, int(i)))
	}
	var whole bytes.Buffer
	if err := l.Backup(&whole); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{100, whole.Len() / 2, whole.Len() - 20} {
		// A disk that fills after n bytes: what reaches it is the first n
		// bytes (another backup of the same ledger may be a few bytes
		// shorter than the first, once Badger compacted away an old
		// version of a key, but not 20).
		var got bytes.Buffer
		err := l.Backup(&cutAfter{&got, n})
		if !errors.Is(err, storeline.Unavailable) {
			t.Errorf("Backup failing after %d bytes = %v, want Unavailable", n, err)
		}
		if err := ledger.Restore(filepath.Join(t.TempDir(), "r"), &got, 1000); !errors.Is(err, ledger.ErrBadBackup) {
			t.Errorf("Restore of the %d bytes a failing Backup wrote (%d whole) = %v, want ErrBadBackup", n, whole.Len(), err)
		}
	}
	// Every truncation of a whole backup is refused, to the last byte.
	for _, n := range []int{100, whole.Len() / 2, whole.Len() - 20, whole.Len() - 12, whole.Len() - 1} {
		if err := ledger.Restore(filepath.Join(t.TempDir(), "r"), bytes.NewReader(whole.Bytes()[:n]), 1000); !errors.Is(err, ledger.ErrBadBackup) {
			t.Errorf("Restore of %d of %d bytes of a backup = %v, want ErrBadBackup", n, whole.Len(), err)
		}
	}
}
