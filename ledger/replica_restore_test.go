package ledger_test

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// metaSnapshot returns a Backup of a replica that applied n entries, the
// i-th setting meta key k%03d (from 0) to "v".
func metaSnapshot(t *testing.T, n int) *bytes.Buffer {
	t.Helper()
	src, err := ledger.OpenReplica(filepath.Join(t.TempDir(), "src"), ledger.ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for i := range n {
		if _, err := src.Apply(uint64(i+1), func(tx *ledger.ReplicaTxn) error {
			return tx.SetMeta(fmt.Sprintf("k%03d", i), []byte("v"))
		}); err != nil {
			t.Fatal(err)
		}
	}
	var snap bytes.Buffer
	if err := src.Backup(&snap); err != nil {
		t.Fatal(err)
	}
	return &snap
}

// TestReplicaReadsRefusedWhileRestoring: Restore empties the store before
// it loads the snapshot and moves the applied index last, so a read in
// between would see no or half the state under the old index. Reads made
// while a restore runs answer Unavailable; after it, the snapshot's state.
func TestReplicaReadsRefusedWhileRestoring(t *testing.T) {
	open := func(name string) *ledger.Replica {
		r, err := ledger.OpenReplica(filepath.Join(t.TempDir(), name), ledger.ReplicaOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	snap := metaSnapshot(t, 200)

	dst := open("dst")
	if _, err := dst.Apply(1, func(tx *ledger.ReplicaTxn) error { return tx.SetMeta("old", []byte("x")) }); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- dst.Restore(pr) }()
	raw := snap.Bytes()
	head := len("storeline-replica-snapshot v1\n") // the header Backup writes
	if _, err := pw.Write(raw[:head]); err != nil {
		t.Fatal(err)
	}
	// Restore has read the header; when it takes the next byte, the old
	// state is dropped and the load has begun.
	if _, err := pw.Write(raw[head : head+1]); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Meta("old"); storeline.KindOf(err) != storeline.Unavailable {
		t.Errorf("Meta during restore: %v; want Unavailable", err)
	}
	err := dst.View(func(*ledger.ReplicaTxn) error { return nil })
	if storeline.KindOf(err) != storeline.Unavailable {
		t.Errorf("View during restore: %v; want Unavailable", err)
	}
	if _, err := pw.Write(raw[head+1:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v, err := dst.Meta("k199"); err != nil || string(v) != "v" {
		t.Fatalf("after restore: %q, %v", v, err)
	}
	if v, err := dst.Meta("old"); err != nil || v != nil {
		t.Fatalf("old key after restore: %q, %v", v, err)
	}
	if got := dst.AppliedIndex(); got != 200 {
		t.Fatalf("applied index %d, want 200", got)
	}
}

// TestReplicaReadsSeeMasterChanges: a replica's master data changes in
// its own transactions, not at a master version its reader publishes, so
// the record cache of a store node's ledger must not answer its reads: a
// record read, changed and read again is read changed.
func TestReplicaReadsSeeMasterChanges(t *testing.T) {
	r, err := ledger.OpenReplica(filepath.Join(t.TempDir(), "r"), ledger.ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	for i, name := range []string{"Milk", "Whole milk"} {
		it := item("milk", "MILK")
		it.Name = name
		if _, err := r.Apply(uint64(i+1), func(tx *ledger.ReplicaTxn) error {
			return tx.PutMasters([]ledger.MasterWrite{{Version: uint64(i+1) << 16, Record: it}})
		}); err != nil {
			t.Fatal(err)
		}
		var got storeline.Item
		if err := r.GetMaster(storeline.KindItem, "milk", &got); err != nil || got.Name != name {
			t.Fatalf("GetMaster after write %d = %q, %v; want %q", i+1, got.Name, err, name)
		}
		if err := r.LookupMaster(storeline.KindItem, storeline.SKUKey("MILK"), &got); err != nil || got.Name != name {
			t.Fatalf("LookupMaster after write %d = %q, %v; want %q", i+1, got.Name, err, name)
		}
	}
}

// TestReplicaRestoredIndexReadable: whoever sees the applied index a
// restore brings can read the state it stands for at once; the restore
// has ended by then. (A cluster node that waited for its applied index to
// reach the leader's, then read, got Unavailable now and then.)
func TestReplicaRestoredIndexReadable(t *testing.T) {
	snapshot := func(name string, applied uint64) []byte {
		r, err := ledger.OpenReplica(filepath.Join(t.TempDir(), name), ledger.ReplicaOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if _, err := r.Apply(applied, func(tx *ledger.ReplicaTxn) error { return tx.SetMeta("k", []byte(name)) }); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := r.Backup(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	snaps := [][]byte{snapshot("a", 100), snapshot("b", 200)}
	dst, err := ledger.OpenReplica(filepath.Join(t.TempDir(), "dst"), ledger.ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dst.Close() })

	const rounds = 60
	failed := make(chan error, 1)
	finished := make(chan struct{})
	next := make(chan struct{})
	go func() {
		defer close(finished)
		for i := range rounds {
			if err := dst.Restore(bytes.NewReader(snaps[i%2])); err != nil {
				failed <- err
				return
			}
			if i < rounds-1 {
				<-next // no restore runs while the reader reads
			}
		}
	}()
	seen := dst.AppliedIndex()
	for i := 0; i < rounds; {
		select {
		case err := <-failed:
			t.Fatalf("restore %d: %v", i, err)
		default:
		}
		idx := dst.AppliedIndex()
		if idx == seen {
			continue
		}
		seen = idx
		v, err := dst.Meta("k")
		if err != nil {
			t.Fatalf("round %d: read at applied index %d: %v", i, idx, err)
		}
		if want := map[uint64]string{100: "a", 200: "b"}[idx]; string(v) != want {
			t.Fatalf("round %d: at applied index %d read %q, want %q", i, idx, v, want)
		}
		i++
		if i < rounds {
			next <- struct{}{}
		}
	}
	<-finished
}

// TestReplicaFailedRestoreWaitsForAnother: a restore that fails after it
// dropped the old state (here a snapshot cut mid-record) leaves the
// replica refusing reads rather than answering from half a state, and a
// reopen (as after a crash in the middle) reports applied index 0, so the
// node restores the latest snapshot at start, still refusing reads until
// a restore succeeds.
func TestReplicaFailedRestoreWaitsForAnother(t *testing.T) {
	snap := metaSnapshot(t, 50)
	head := len("storeline-replica-snapshot v1\n")

	dir := filepath.Join(t.TempDir(), "dst")
	dst, err := ledger.OpenReplica(dir, ledger.ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Apply(7, func(tx *ledger.ReplicaTxn) error { return tx.SetMeta("old", []byte("x")) }); err != nil {
		t.Fatal(err)
	}
	if err := dst.Restore(bytes.NewReader(snap.Bytes()[:head+5])); err == nil {
		t.Fatal("a snapshot cut inside its first record restored")
	}
	if _, err := dst.Meta("old"); storeline.KindOf(err) != storeline.Unavailable {
		t.Fatalf("Meta after a failed restore: %v; want Unavailable", err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if dst, err = ledger.OpenReplica(dir, ledger.ReplicaOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() { dst.Close() }()
	if got := dst.AppliedIndex(); got != 0 {
		t.Fatalf("applied index after reopening a cut restore = %d, want 0", got)
	}
	if _, err := dst.Meta("old"); storeline.KindOf(err) != storeline.Unavailable {
		t.Fatalf("Meta after reopening a cut restore: %v; want Unavailable", err)
	}
	if err := dst.Restore(bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	if v, err := dst.Meta("k049"); err != nil || string(v) != "v" {
		t.Fatalf("after a whole restore: %q, %v", v, err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if dst, err = ledger.OpenReplica(dir, ledger.ReplicaOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := dst.AppliedIndex(); got != 50 {
		t.Fatalf("applied index after reopening a whole restore = %d, want 50", got)
	}
	if v, err := dst.Meta("k000"); err != nil || string(v) != "v" {
		t.Fatalf("read after reopening a whole restore: %q, %v", v, err)
	}
}
