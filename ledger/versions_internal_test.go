package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/testwait"
)

func openVersions(t *testing.T) *versions {
	t.Helper()
	db, err := openBadger(t.TempDir(), 1<<20, defaultValueThreshold, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return newVersions(db, true)
}

func readKey(txn *badger.Txn, k []byte) (string, error) {
	item, err := txn.Get(k)
	if err != nil {
		return "", err
	}
	v, err := item.ValueCopy(nil)
	return string(v), err
}

// A snapshot keeps reading what it saw while the key is overwritten and
// compactions run: the discard version stops at the oldest open snapshot
// (invariant 2). Without the pin, the compaction drops the only version
// the snapshot can see and the read finds no key.
func TestVersionsSnapshotSurvivesCompaction(t *testing.T) {
	v := openVersions(t)
	key := []byte("balance")
	set := func(val string, filler int) {
		t.Helper()
		err := v.update(func(txn *badger.Txn) error {
			if err := txn.Set(key, []byte(val)); err != nil {
				return err
			}
			for i := range filler {
				if err := txn.Set(fmt.Appendf(nil, "filler/%s/%04d", val, i), bytes.Repeat([]byte{'x'}, 16)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	set("v0", 0)
	old := v.begin(false)
	defer v.end(old)
	for i := 1; i <= 80; i++ {
		set(fmt.Sprintf("v%d", i), 1500) // ~100 KiB each in the LSM: memtables fill and flush
	}
	// Flatten merges levels, and compacts nothing while every table is
	// still in level 0: on a loaded machine the background compactor
	// may not have moved any yet.
	testwait.For(t, "a table below level 0", time.Minute, func() bool {
		for _, ti := range v.db.Tables() {
			if ti.Level > 0 {
				return true
			}
		}
		return false
	})
	if err := v.db.Flatten(1); err != nil {
		t.Fatal(err)
	}
	// The premise: the tables holding v0 were compacted (Flatten leaves
	// level 0 holding nothing once there is more than one level to merge).
	for _, ti := range v.db.Tables() {
		if ti.Level == 0 {
			t.Fatalf("level 0 still holds table %d after Flatten: no compaction ran", ti.ID)
		}
	}
	if got, err := readKey(old, key); err != nil || got != "v0" {
		t.Fatalf("old snapshot reads %q, %v; want v0", got, err)
	}
	cur := v.begin(false)
	defer v.end(cur)
	if got, err := readKey(cur, key); err != nil || got != "v80" {
		t.Fatalf("new snapshot reads %q, %v; want v80", got, err)
	}
}

// Every transaction's pin is released, so the discard version follows the
// last commit once nothing is open (invariant 3), and a failed update
// leaves nothing pinned either.
func TestVersionsPinsReleased(t *testing.T) {
	v := openVersions(t)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				k := fmt.Appendf(nil, "k/%d/%d", w, i)
				if err := v.update(func(txn *badger.Txn) error { return txn.Set(k, k) }); err != nil {
					t.Error(err)
					return
				}
				err := v.view(func(txn *badger.Txn) error {
					got, err := readKey(txn, k)
					if err == nil && got != string(k) {
						err = fmt.Errorf("read %q, want %q", got, k)
					}
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	refused := errors.New("refused")
	if err := v.update(func(*badger.Txn) error { return refused }); !errors.Is(err, refused) {
		t.Fatalf("update: %v", err)
	}
	txn := v.begin(true)
	v.end(txn)
	v.end(txn) // twice: no harm
	v.pinMu.Lock()
	defer v.pinMu.Unlock()
	if len(v.pins) != 0 || len(v.at) != 0 {
		t.Fatalf("pins left: %d transactions, %d versions", len(v.pins), len(v.at))
	}
	if got := v.last.Load(); got != 400 {
		t.Fatalf("last version %d after 400 commits", got)
	}
}

// A ledger whose Badger was written without managed mode (every node's
// data before versions.go) opens with its data readable, and the ledger's
// commits land above the versions Badger's own oracle gave: a write made
// the old way is seen, then overwritten by the ledger's.
func TestVersionsOpenUnmanagedData(t *testing.T) {
	dir := t.TempDir()
	o := DefaultOptions(dir, "s1")
	l, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := l.SetMeta(ctx, "cursor", []byte("ledger-1")); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "badger")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // versions from Badger's own oracle, above the ledger's
		if err := db.Update(func(txn *badger.Txn) error {
			return txn.Set(metaKey("cursor"), fmt.Appendf(nil, "unmanaged-%d", i))
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	l, err = Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	get := func() string {
		t.Helper()
		v, ok, err := l.Meta("cursor")
		if err != nil || !ok {
			t.Fatalf("Meta: %q, %v, %v", v, ok, err)
		}
		return string(v)
	}
	if got := get(); got != "unmanaged-2" {
		t.Fatalf("after the unmanaged writes: %q", got)
	}
	if err := l.SetMeta(ctx, "cursor", []byte("ledger-2")); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != "ledger-2" {
		t.Fatalf("after the ledger's write: %q (its version is not above the old ones)", got)
	}
}

// A read in progress when the ledger closes finishes over an open Badger
// (its iterator would panic over a closed one), Close returns only after
// it, and a read after Close is Unavailable (invariant 4).
func TestCloseWaitsForReads(t *testing.T) {
	l, err := Open(DefaultOptions(t.TempDir(), "s1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SetMeta(context.Background(), "cursor", []byte("c1")); err != nil {
		t.Fatal(err)
	}
	inRead, release := make(chan struct{}), make(chan struct{})
	readErr := make(chan error, 1)
	go func() {
		readErr <- l.view(func(txn *badger.Txn) error {
			close(inRead)
			<-release
			it := txn.NewIterator(badger.DefaultIteratorOptions)
			defer it.Close()
			n := 0
			for it.Rewind(); it.Valid(); it.Next() {
				n++
			}
			if n == 0 {
				return errors.New("the read found nothing")
			}
			return nil
		})
	}()
	<-inRead
	waiting := make(chan struct{})
	l.ver.shutWait = func() { close(waiting) }
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	select {
	case <-waiting:
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a read was in progress", err)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a read was in progress", err)
	default:
	}
	close(release)
	if err := <-readErr; err != nil {
		t.Fatalf("the read in progress: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, _, err := l.Meta("cursor"); storeline.KindOf(err) != storeline.Unavailable {
		t.Fatalf("Meta after Close: %v, want Unavailable", err)
	}
}
