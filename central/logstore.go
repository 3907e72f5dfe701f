package central

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/storeline/storeline/ledger"
)

// logStore adapts ledger.LogStore (Raft's log over Badger; see
// ledger/raftlog.go for why Badger and not bolt) to raft.LogStore and
// raft.StableStore.
type logStore struct{ s *ledger.LogStore }

var (
	_ raft.LogStore    = logStore{}
	_ raft.StableStore = logStore{}
)

func (l logStore) FirstIndex() (uint64, error) { return l.s.FirstIndex() }
func (l logStore) LastIndex() (uint64, error)  { return l.s.LastIndex() }

func (l logStore) GetLog(index uint64, out *raft.Log) error {
	var e ledger.LogEntry
	if err := l.s.GetLog(index, &e); err != nil {
		if errors.Is(err, ledger.ErrLogNotFound) {
			return raft.ErrLogNotFound
		}
		return err
	}
	*out = raft.Log{Index: e.Index, Term: e.Term, Type: raft.LogType(e.Type), Data: e.Data, Extensions: e.Extensions, AppendedAt: e.AppendedAt}
	return nil
}

func (l logStore) StoreLog(log *raft.Log) error { return l.StoreLogs([]*raft.Log{log}) }

func (l logStore) StoreLogs(logs []*raft.Log) error {
	es := make([]ledger.LogEntry, len(logs))
	for i, g := range logs {
		es[i] = ledger.LogEntry{Index: g.Index, Term: g.Term, Type: uint8(g.Type), Data: g.Data, Extensions: g.Extensions, AppendedAt: g.AppendedAt}
	}
	if err := l.s.StoreLogs(es); err != nil {
		return fmt.Errorf("central: store %d logs: %w", len(logs), err)
	}
	return nil
}

func (l logStore) DeleteRange(min, max uint64) error { return l.s.DeleteRange(min, max) }
func (l logStore) Set(k, v []byte) error             { return l.s.Set(k, v) }

// Get returns an error whose text is "not found" for a missing key, as
// raft expects.
func (l logStore) Get(k []byte) ([]byte, error)       { return l.s.Get(k) }
func (l logStore) SetUint64(k []byte, v uint64) error { return l.s.SetUint64(k, v) }
func (l logStore) GetUint64(k []byte) (uint64, error) { return l.s.GetUint64(k) }

// watchedLogStore is the log store Raft is given: a write that fails (a
// failing disk, a closed store) is told to failed. Raft does not stop on
// one: a leader steps down, a follower refuses the entries and keeps
// answering heartbeats, so the node would run on, unable to store or
// commit anything, looking healthy (Node.Failed).
//
// Raft panics on a few failures instead (raftPanicsOn): it cannot store a
// new term (a leader that stepped down stands for election again; a
// follower hears of a newer term), or read an entry it is to apply. The
// panic, on Raft's goroutine, would kill the process before it could
// close the node and exit through Failed, so on those the store reports
// the failure and ends the goroutine that asked (runtime.Goexit: its
// deferred calls run, so Raft's Shutdown still finds it gone) rather than
// return into the panic. Raft then stores and answers nothing more: the
// node waits, failed, for the process to close it.
type watchedLogStore struct {
	logStore
	failed func(error)
	halts  *atomic.Uint64 // goroutines ended so (nil: not counted)
}

func (l watchedLogStore) watch(err error) error {
	if err != nil && l.failed != nil {
		l.failed(fmt.Errorf("raft log store: %w", err))
	}
	if err != nil && raftPanicsOn() {
		if l.halts != nil {
			l.halts.Add(1)
		}
		runtime.Goexit()
	}
	return err
}

// raftPanics are the functions of hashicorp/raft that panic when the
// store call they make fails.
var raftPanics = []string{
	"github.com/hashicorp/raft.(*Raft).setCurrentTerm", // SetUint64(CurrentTerm)
	"github.com/hashicorp/raft.(*Raft).processLogs",    // GetLog of an entry to apply
}

// raftPanicsOn reports whether the store call that failed was made by
// one of raftPanics: the first frame above this package's own.
func raftPanicsOn() bool {
	pc := make([]uintptr, 8)
	frames := runtime.CallersFrames(pc[:runtime.Callers(3, pc)])
	for {
		f, more := frames.Next()
		if !strings.HasPrefix(f.Function, "github.com/storeline/storeline/central.") {
			return slices.Contains(raftPanics, f.Function)
		}
		if !more {
			return false
		}
	}
}

func (l watchedLogStore) GetLog(index uint64, out *raft.Log) error {
	err := l.logStore.GetLog(index, out)
	if err == nil || errors.Is(err, raft.ErrLogNotFound) {
		return err
	}
	return l.watch(err)
}
func (l watchedLogStore) StoreLog(log *raft.Log) error { return l.StoreLogs([]*raft.Log{log}) }
func (l watchedLogStore) StoreLogs(logs []*raft.Log) error {
	return l.watch(l.logStore.StoreLogs(logs))
}
func (l watchedLogStore) DeleteRange(min, max uint64) error {
	return l.watch(l.logStore.DeleteRange(min, max))
}
func (l watchedLogStore) Set(k, v []byte) error { return l.watch(l.logStore.Set(k, v)) }
func (l watchedLogStore) SetUint64(k []byte, v uint64) error {
	return l.watch(l.logStore.SetUint64(k, v))
}
