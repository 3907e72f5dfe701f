package central

import (
	"testing"

	"github.com/hashicorp/raft"
)

// TestApplyBatchInRuns: a batch of push entries bigger than one Badger
// transaction takes (Raft hands dozens over under many shops) is applied
// in runs that Badger accepts, none refused and applied a second time
// entry by entry, and leaves byte for byte the state the same entries
// leave applied one per batch.
func TestApplyBatchInRuns(t *testing.T) {
	const per, entries = 400, 10
	logs := pushEntries(t, 1, entries, per)
	ws := masterWritesOf(t)
	f, rep := fsmWith(t, ws, 8<<20)
	size := 0
	for _, l := range logs[1:] {
		size += len(l.Data)
	}
	if int64(size) <= rep.MaxApplyBytes() {
		t.Fatalf("the batch's %d bytes fit one transaction (%d): the test shows nothing", size, rep.MaxApplyBytes())
	}
	applyAll(t, f, logs[:1])
	for i, o := range f.ApplyBatch(logs[1:]) {
		if r := o.(*Result); r.Err() != nil {
			t.Fatalf("entry %d: %v", logs[1+i].Index, r.Err())
		}
	}
	if n := f.split.Load(); n != 0 {
		t.Errorf("%d runs refused by Badger and applied again entry by entry", n)
	}
	if got, want := f.Applies(), uint64(1+entries); got != want {
		t.Errorf("%d commands applied, want %d", got, want)
	}

	g, one := fsmWith(t, ws, 8<<20)
	for _, l := range logs {
		applyAll(t, g, []*raft.Log{l})
	}
	a, b := metaState(t, one), metaState(t, rep)
	if len(a) < entries*per {
		t.Fatalf("only %d keys: the log did not apply", len(a))
	}
	sameState(t, "a batch applied in runs", a, b)
}
