package central

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/storeline/storeline/ledger"
)

// TestLogStoreConformance runs the same random operations against the
// Badger log store and raft.InmemStore and compares every answer,
// closing and reopening the Badger store now and then. (A kill -9 of the
// whole process, with Badger's SyncWrites, is covered by the cluster's
// restart test; Badger's directory lock forbids two opens in one process.)
func TestLogStoreConformance(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := filepath.Join(t.TempDir(), "log")
	open := func() *ledger.LogStore {
		s, err := ledger.OpenLogStore(dir, ledger.LogStoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	t.Cleanup(func() { s.Close() })
	got, want := logStore{s}, raft.NewInmemStore()
	var first, last uint64 // the model's range, maintained like raft does
	check := func(step int) {
		t.Helper()
		for _, f := range []struct {
			name string
			a, b func() (uint64, error)
		}{{"FirstIndex", got.FirstIndex, want.FirstIndex}, {"LastIndex", got.LastIndex, want.LastIndex}} {
			x, err1 := f.a()
			y, err2 := f.b()
			if x != y || (err1 == nil) != (err2 == nil) {
				t.Fatalf("step %d: %s = %d, %v; want %d, %v", step, f.name, x, err1, y, err2)
			}
		}
		for i := first; i <= last+1; i++ {
			var a, b raft.Log
			e1, e2 := got.GetLog(i, &a), want.GetLog(i, &b)
			if (e1 == nil) != (e2 == nil) || (e1 != nil && e1 != raft.ErrLogNotFound) {
				t.Fatalf("step %d: GetLog(%d) err %v, want %v", step, i, e1, e2)
			}
			if e1 == nil && (a.Index != b.Index || a.Term != b.Term || a.Type != b.Type || !bytes.Equal(a.Data, b.Data) || !bytes.Equal(a.Extensions, b.Extensions) || !a.AppendedAt.Equal(b.AppendedAt)) {
				t.Fatalf("step %d: GetLog(%d) = %+v, want %+v", step, i, a, b)
			}
		}
		for _, k := range []string{"CurrentTerm", "LastVoteCand", "absent"} {
			v1, e1 := got.Get([]byte(k))
			v2, e2 := want.Get([]byte(k))
			if !bytes.Equal(v1, v2) || (e1 == nil) != (e2 == nil) || (e1 != nil && e1.Error() != e2.Error()) {
				t.Fatalf("step %d: Get(%s) = %q, %v; want %q, %v", step, k, v1, e1, v2, e2)
			}
			u1, e1 := got.GetUint64([]byte("u" + k))
			u2, e2 := want.GetUint64([]byte("u" + k))
			if u1 != u2 || (e1 == nil) != (e2 == nil) {
				t.Fatalf("step %d: GetUint64(%s) = %d, %v; want %d, %v", step, k, u1, e1, u2, e2)
			}
		}
	}
	term := uint64(1)
	steps := 100 // a new seed each run; 300 with -central.long
	if centralLong() {
		steps = 300
	}
	for step := 0; step < steps; step++ {
		switch op := rng.IntN(10); {
		case op < 5: // append a batch
			n := 1 + rng.IntN(20)
			logs := make([]*raft.Log, n)
			for i := range logs {
				last++
				if first == 0 {
					first = 1
				}
				logs[i] = &raft.Log{Index: last, Term: term, Type: raft.LogType(rng.IntN(4)), Data: []byte(fmt.Sprintf("d%d-%d", last, rng.IntN(1000))),
					AppendedAt: time.Unix(0, int64(rng.Uint32())).UTC()}
				if rng.IntN(3) == 0 {
					logs[i].Extensions = []byte("ext")
				}
			}
			if err := got.StoreLogs(logs); err != nil {
				t.Fatal(err)
			}
			if err := want.StoreLogs(logs); err != nil {
				t.Fatal(err)
			}
		case op < 6 && last > first: // compaction from the front
			to := first + uint64(rng.IntN(int(last-first)))
			if err := got.DeleteRange(first, to); err != nil {
				t.Fatal(err)
			}
			want.DeleteRange(first, to)
			first = to + 1
		case op < 7 && last > first: // conflict: truncate the tail
			from := first + 1 + uint64(rng.IntN(int(last-first)))
			if err := got.DeleteRange(from, last); err != nil {
				t.Fatal(err)
			}
			want.DeleteRange(from, last)
			last = from - 1
			term++
		case op < 8:
			k := []string{"CurrentTerm", "LastVoteCand"}[rng.IntN(2)]
			v := []byte(fmt.Sprint(rng.IntN(100)))
			got.Set([]byte(k), v)
			want.Set([]byte(k), v)
			got.SetUint64([]byte("u"+k), uint64(rng.IntN(100)))
			want.SetUint64([]byte("u"+k), mustU64(got, "u"+k))
		case op < 9:
			// Reopen: what StoreLogs returned must be there.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = open()
			got = logStore{s}
		}
		check(step)
	}
}

func mustU64(s logStore, k string) uint64 {
	v, _ := s.GetUint64([]byte(k))
	return v
}
