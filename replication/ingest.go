package replication

import (
	"fmt"
	"sort"
	"time"

	"github.com/storeline/storeline"
)

// Ingest is what central does with a pushed batch. It is a pure function
// of the stored marks and seen set (read and written through IngestStore)
// and the batch, so every replica of central's FSM decides the same:
//
//   - mark := the highest applied seq of (store, epoch);
//   - a batch starting after mark+1 is a gap: nothing applied, the answer
//     names position (epoch, mark+1);
//   - events at or below mark are skipped (a resent batch);
//   - an event whose (origin, ID) was seen within the retention period is
//     a duplicate (a till's retry appended again after a restore): it
//     advances the mark and has no effect;
//   - the rest are applied, in order, by the caller's apply function;
//     apply's per-event error of a business kind (Invalid, NotFound,
//     Conflict, Forbidden, TooLarge) is a rejection that advances the mark
//     like a success, so a poison event never wedges the queue; any other
//     error aborts the batch and the caller discards its transaction.
//
// now is the deterministic time of the batch (the Raft entry's, in central)
// in Unix milliseconds; it stamps seen entries and decides retention.

// IngestStore is the state Ingest reads and writes. Central's FSM
// implements it over its Badger transaction; IngestState is the in-memory
// implementation (reference backends, tests).
type IngestStore interface {
	// Mark returns the highest applied seq of (store, epoch), 0 if none.
	Mark(store storeline.StoreID, epoch uint64) (uint64, error)
	SetMark(store storeline.StoreID, epoch, seq uint64) error
	// SeenAt returns when (origin, id) was first ingested (Unix ms).
	SeenAt(origin storeline.StoreID, id storeline.EventID) (at int64, ok bool, err error)
	SetSeen(origin storeline.StoreID, id storeline.EventID, at int64) error
}

// Batch is a push as Ingest sees it: events of Store in Epoch, dense and in
// seq order (the server checked that).
type Batch struct {
	Store  storeline.StoreID
	Epoch  uint64
	Events []storeline.Event
	// Wire, if not nil, holds each event's msgpack WireEvent bytes as the
	// shop sent them (CheckPush sets it when the request was read by
	// Decode), so the backend stores them without encoding them again.
	Wire [][]byte
}

// IngestResult is Ingest's answer.
type IngestResult struct {
	// Acked is the epoch's mark after the batch.
	Acked Position
	// Gap, if set, is the position central needs; nothing was applied.
	Gap *Position
	// Applied counts events applied (accepted or rejected), Duplicates
	// events skipped as seen by (origin, ID), Below events at or below the
	// mark.
	Applied, Duplicates, Below int
	// Applies holds the events passed to apply (for the caller's feed).
	Applies    []storeline.Event
	Rejections []Rejection
}

// businessKind reports whether an apply error is a rejection of the event
// rather than a failure of central.
func businessKind(k storeline.Kind) bool {
	switch k {
	case storeline.Invalid, storeline.NotFound, storeline.Conflict, storeline.Forbidden, storeline.TooLarge:
		return true
	}
	return false
}

// Ingest decides b against st, calls apply once with the events to apply
// (in order; it returns one error per event, nil for applied, plus a fatal
// error), and records marks and seen entries in st.
func Ingest(st IngestStore, b Batch, now int64, retention time.Duration,
	apply func([]storeline.Event) ([]error, error)) (IngestResult, error) {
	mark, err := st.Mark(b.Store, b.Epoch)
	if err != nil {
		return IngestResult{}, fmt.Errorf("replication: ingest: mark of %s/%d: %w", b.Store, b.Epoch, err)
	}
	res := IngestResult{Acked: Position{b.Epoch, mark}}
	if len(b.Events) == 0 {
		return res, nil
	}
	if first := b.Events[0].Seq; first > mark+1 {
		res.Gap = &Position{b.Epoch, mark + 1}
		return res, nil
	}
	for i, ev := range b.Events {
		if ev.Origin != b.Store || ev.Epoch != b.Epoch || (i > 0 && ev.Seq != b.Events[i-1].Seq+1) {
			panic(fmt.Sprintf("replication: ingest: unchecked batch: event %d at %s/%d/%d in batch %s/%d",
				i, ev.Origin, ev.Epoch, ev.Seq, b.Store, b.Epoch))
		}
	}
	var todo []storeline.Event
	batchSeen := map[storeline.EventID]bool{}
	horizon := now - retention.Milliseconds()
	for _, ev := range b.Events {
		if ev.Seq <= mark && !canaryApplyTwice {
			res.Below++
			continue
		}
		at, ok, err := st.SeenAt(ev.Origin, ev.ID)
		if err != nil {
			return IngestResult{}, fmt.Errorf("replication: ingest: seen %s: %w", ev.ID, err)
		}
		if (ok && at >= horizon || batchSeen[ev.ID]) && !(canaryApplyTwice && ev.Seq <= mark) {
			res.Duplicates++
			continue
		}
		batchSeen[ev.ID] = true
		todo = append(todo, ev)
	}
	if len(todo) > 0 {
		errs, err := apply(todo)
		if err != nil {
			return IngestResult{}, fmt.Errorf("replication: ingest %s/%d: %w", b.Store, b.Epoch, err)
		}
		if len(errs) != len(todo) {
			panic(fmt.Sprintf("replication: ingest: apply returned %d results for %d events", len(errs), len(todo)))
		}
		for i, ev := range todo {
			if e := errs[i]; e != nil && !canaryDropRejection {
				k := storeline.KindOf(e)
				if !businessKind(k) {
					return IngestResult{}, fmt.Errorf("replication: ingest %s: %w", ev.ID, e)
				}
				res.Rejections = append(res.Rejections, Rejection{Origin: ev.Origin, ID: ev.ID,
					Pos: Position{ev.Epoch, ev.Seq}, Kind: k, Field: storeline.FieldOf(e), Reason: e.Error()})
			}
			if err := st.SetSeen(ev.Origin, ev.ID, now); err != nil {
				return IngestResult{}, fmt.Errorf("replication: ingest: set seen %s: %w", ev.ID, err)
			}
		}
		res.Applied = len(todo)
		res.Applies = todo
	}
	last := b.Events[len(b.Events)-1].Seq
	if last > mark {
		if err := st.SetMark(b.Store, b.Epoch, last); err != nil {
			return IngestResult{}, fmt.Errorf("replication: ingest: set mark: %w", err)
		}
		res.Acked.Seq = last
	}
	return res, nil
}

// IngestState is an in-memory IngestStore: marks per (store, epoch) and the
// (origin, ID) seen set with its times. It is not safe for concurrent use;
// its owner serialises batches (as central's FSM does).
type IngestState struct {
	marks map[storeline.StoreID]map[uint64]uint64
	seen  map[seenKey]int64
}

type seenKey struct {
	origin storeline.StoreID
	id     storeline.EventID
}

// NewIngestState returns an empty state.
func NewIngestState() *IngestState {
	return &IngestState{marks: map[storeline.StoreID]map[uint64]uint64{}, seen: map[seenKey]int64{}}
}

func (s *IngestState) Mark(store storeline.StoreID, epoch uint64) (uint64, error) {
	return s.marks[store][epoch], nil
}

func (s *IngestState) SetMark(store storeline.StoreID, epoch, seq uint64) error {
	m := s.marks[store]
	if m == nil {
		m = map[uint64]uint64{}
		s.marks[store] = m
	}
	if seq < m[epoch] {
		panic(fmt.Sprintf("replication: mark of %s/%d moving back from %d to %d", store, epoch, m[epoch], seq))
	}
	m[epoch] = seq
	return nil
}

func (s *IngestState) SeenAt(origin storeline.StoreID, id storeline.EventID) (int64, bool, error) {
	at, ok := s.seen[seenKey{origin, id}]
	return at, ok, nil
}

func (s *IngestState) SetSeen(origin storeline.StoreID, id storeline.EventID, at int64) error {
	if _, ok := s.seen[seenKey{origin, id}]; !ok {
		s.seen[seenKey{origin, id}] = at
	}
	return nil
}

// Marks returns every epoch's mark of store, in epoch order.
func (s *IngestState) Marks(store storeline.StoreID) []Position {
	out := make([]Position, 0, len(s.marks[store]))
	for e, q := range s.marks[store] {
		out = append(out, Position{e, q})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Epoch < out[j].Epoch })
	return out
}

// Expire forgets seen entries older than now-retention and returns how
// many it dropped.
func (s *IngestState) Expire(now int64, retention time.Duration) int {
	n := 0
	for k, at := range s.seen {
		if at < now-retention.Milliseconds() {
			delete(s.seen, k)
			n++
		}
	}
	return n
}
