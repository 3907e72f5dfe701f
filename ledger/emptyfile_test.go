package ledger_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/storeline/storeline/ledger"
)

// TestOpenAfterCrashLeftEmptyBadgerFiles: a crash between Badger's
// creating a memtable or value-log file and its first write leaves the
// file empty (the chaos test's SIGKILLs found one); the ledger opens
// anyway, with everything it acknowledged.
func TestOpenAfterCrashLeftEmptyBadgerFiles(t *testing.T) {
	for _, name := range []string{"00099.mem", "000099.vlog"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			o := testOptions(dir)
			l, err := ledger.Open(o)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for i := range 20 {
				ev := mustAppend(t, l, receiptEvent(eid(uint64(i+1)), 3, i))
				ids = append(ids, ev.ID.String())
			}
			if err := l.CloseAsCrash(); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "badger", name), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			l = open(t, o)
			for i := range 20 {
				if _, err := l.Event(store, eid(uint64(i+1))); err != nil {
					t.Fatalf("event %s after the reopen: %v", ids[i], err)
				}
			}
			checkConservation(t, l)
			mustAppend(t, l, receiptEvent(eid(100), 3, 100))
		})
	}
}

// TestOpenReplicaAndLogStoreAfterCrashLeftEmptyFiles: central's replica
// and Raft log open Badger too, with the same answer to an empty file.
func TestOpenReplicaAndLogStoreAfterCrashLeftEmptyFiles(t *testing.T) {
	for _, name := range []string{"00099.mem", "000099.vlog"} {
		t.Run(name, func(t *testing.T) {
			rdir := filepath.Join(t.TempDir(), "replica")
			r, err := ledger.OpenReplica(rdir, ledger.ReplicaOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			ldir := filepath.Join(t.TempDir(), "raft")
			s, err := ledger.OpenLogStore(ldir, ledger.LogStoreOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			for _, dir := range []string{rdir, ldir} {
				if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if r, err = ledger.OpenReplica(rdir, ledger.ReplicaOptions{}); err != nil {
				t.Fatalf("OpenReplica: %v", err)
			}
			r.Close()
			if s, err = ledger.OpenLogStore(ldir, ledger.LogStoreOptions{}); err != nil {
				t.Fatalf("OpenLogStore: %v", err)
			}
			s.Close()
		})
	}
}
