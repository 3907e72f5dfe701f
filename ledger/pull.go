package ledger

import (
	"bytes"
	"context"
	"fmt"
	"math"

	"github.com/dgraph-io/badger/v4"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
)

// What a store node pulls from central is applied here: master-data
// changes, events of other origins (and the node's own older-epoch events
// after a restore), small meta values (rejections) and the pull cursor, all
// in one request of the commit pipeline, so in one WAL frame and one Badger
// transaction. A crash leaves either the whole page with its new cursor or
// none of it, and resuming from the stored cursor is idempotent.

// MaxPulledItems bounds the records, events and meta values of one page.
const MaxPulledItems = 8192

// PulledRecord is one master-data change from central: a record, or a
// tombstone for (Kind, ID) when Record is nil.
type PulledRecord struct {
	Kind   storeline.MasterKind
	ID     string
	Record storeline.Record // nil for a tombstone
}

// PulledPage is one page of changes pulled from central.
//
// CursorKey names the meta value holding the pull cursor. The page applies
// only if that value equals From (nil: no value yet); it is then set to To,
// in the same transaction as the page. A page whose From is not the stored
// cursor is a Conflict and changes nothing, so a page delivered twice is
// never applied twice.
type PulledPage struct {
	CursorKey string
	From, To  []byte
	Records   []PulledRecord
	Events    []storeline.Event
	// Meta sets small meta values; a nil value deletes the key (an
	// empty, non-nil one is a value).
	Meta map[string][]byte
	// Sweep, if set, removes master records a resync did not rewrite.
	Sweep *PulledSweep
}

// PulledSweep ends a resync: a snapshot rewrote every record that still
// concerns the store, so a live record of one of Kinds whose node-local
// version is at or below Below (the version before the snapshot's first
// page) no longer concerns it (a price of a list the shop was moved off,
// a record deleted at central whose tombstone central has since pruned)
// and gets a tombstone. Versions in (After, Below] are looked at, at most
// Limit removed and 16 × Limit looked at per page; PulledResult.SweptTo
// says where to continue. Records of other kinds (a terminal or seller
// the node's admin API issued) are never swept.
type PulledSweep struct {
	After, Below uint64
	Kinds        []storeline.MasterKind
	Limit        int
}

// PulledResult says what a page changed.
type PulledResult struct {
	// MasterVersion is the node-local master version after the page (the
	// version tills see; it grows by one per record).
	MasterVersion uint64
	// Applied counts events applied for the first time; Known counts
	// events the node already held.
	Applied, Known int
	// Refused holds one error per event the ledger would not take (a
	// Conflict: the same ID with another body). The rest of the page is
	// applied; a refused event is reported, never retried.
	Refused []error
	// Swept counts records the page's sweep removed; SweptTo is the last
	// version it looked at (Below once the range is done).
	Swept   int
	SweptTo uint64
}

// pullReq is the committer's view of an ApplyPulled call; the committer
// fills the outcome fields before answering.
type pullReq struct {
	key      string
	from, to []byte
	ops      []masterOp
	events   []*storedEvent
	meta     []walRec
	sweep    *PulledSweep
	out      PulledResult
}

// ApplyPulled applies one pulled page and its new cursor atomically. Master
// records are central's: they replace the node's copy whatever it holds,
// and a unique key a record now holds is moved to it (central checked the
// keys; the earlier holder's own change follows in this or a later page).
// Events are applied as ApplyRemote does. It returns after the page is
// durable. If ctx ends first, the outcome is unknown; re-reading the cursor
// (Meta) tells whether it was applied.
func (l *Ledger) ApplyPulled(ctx context.Context, p PulledPage) (PulledResult, error) {
	const op = "ledger.ApplyPulled"
	if err := checkKeyPart("cursor_key", p.CursorKey); err != nil {
		return PulledResult{}, storeline.E(op, storeline.Invalid, err)
	}
	if n := len(p.Records) + len(p.Events) + len(p.Meta); n > MaxPulledItems {
		return PulledResult{}, storeline.Errorf(storeline.TooLarge, op, "%d items in a page, over %d", n, MaxPulledItems)
	}
	pr := &pullReq{key: p.CursorKey, from: p.From, to: append([]byte{}, p.To...)}
	size := len(p.CursorKey) + len(p.To) + 64
	for i, r := range p.Records {
		field := fmt.Sprintf("records[%d]", i)
		if err := checkKeyPart(field+".kind", string(r.Kind)); err != nil {
			return PulledResult{}, storeline.E(op, storeline.Invalid, err)
		}
		if err := checkKeyPart(field+".id", r.ID); err != nil {
			return PulledResult{}, storeline.E(op, storeline.Invalid, err)
		}
		o := masterOp{kind: r.Kind, id: r.ID}
		if r.Record != nil {
			if r.Record.MasterKind() != r.Kind || r.Record.MasterID() != r.ID {
				return PulledResult{}, storeline.E(op, storeline.Invalid, storeline.Invalidf(field, "record is %s %q", r.Record.MasterKind(), r.Record.MasterID()))
			}
			if err := r.Record.Validate(); err != nil {
				return PulledResult{}, storeline.E(op, storeline.Invalid, fmt.Errorf("%s: %w", field, err))
			}
			data, err := msgpack.Marshal(r.Record)
			if err != nil {
				return PulledResult{}, storeline.E(op, storeline.Invalid, err)
			}
			o.data = data
			o.keys = uniqueKeys(r.Record.UniqueKeys())
			for _, k := range o.keys {
				if err := checkKeyPart(field+".unique_key", k); err != nil {
					return PulledResult{}, storeline.E(op, storeline.Invalid, err)
				}
				size += len(k) + 8
			}
		} else if _, err := storeline.NewRecord(r.Kind); err != nil {
			return PulledResult{}, storeline.E(op, storeline.Invalid, fmt.Errorf("%s: %w", field, err))
		}
		size += len(o.data) + len(o.id) + 64
		pr.ops = append(pr.ops, o)
	}
	for i := range p.Events {
		ev := p.Events[i]
		if err := checkRemote(&ev); err != nil {
			return PulledResult{}, storeline.E(op, storeline.KindOf(err), fmt.Errorf("events[%d] (%s of %s): %w", i, ev.ID, ev.Origin, err))
		}
		body, err := encodeBody(ev.Body)
		if err != nil {
			return PulledResult{}, storeline.E(op, storeline.Invalid, err)
		}
		se := toStored(&ev, body)
		size += len(body) + 64*len(ev.Postings) + 128
		pr.events = append(pr.events, se)
	}
	for k, v := range p.Meta {
		if err := checkKeyPart("meta", k); err != nil {
			return PulledResult{}, storeline.E(op, storeline.Invalid, err)
		}
		if v == nil {
			pr.meta = append(pr.meta, walRec{T: recMetaDel, Key: k})
		} else {
			pr.meta = append(pr.meta, walRec{T: recMeta, Key: k, Val: append([]byte{}, v...)})
		}
		size += len(k) + len(v) + 32
	}
	// Map order is random; the WAL frame should not be.
	sortMeta(pr.meta)
	if sw := p.Sweep; sw != nil {
		if sw.Limit < 1 || sw.Limit > MaxPulledItems || sw.After > sw.Below {
			return PulledResult{}, storeline.E(op, storeline.Invalid, storeline.Invalidf("sweep", "limit %d, range (%d, %d]", sw.Limit, sw.After, sw.Below))
		}
		for _, k := range sw.Kinds {
			if _, err := storeline.NewRecord(k); err != nil {
				return PulledResult{}, storeline.E(op, storeline.Invalid, fmt.Errorf("sweep: %w", err))
			}
		}
		c := *sw
		pr.sweep = &c
		size += sw.Limit * 96 // a tombstone each, at most
	}
	if size > l.o.MaxBatchBytes {
		return PulledResult{}, storeline.Errorf(storeline.TooLarge, op, "page of about %d bytes, over MaxBatchBytes %d", size, l.o.MaxBatchBytes)
	}
	res := l.submit(ctx, op, &request{kind: reqPulled, pull: pr, size: size})
	if res.err != nil {
		return PulledResult{}, res.err
	}
	return pr.out, nil
}

func sortMeta(recs []walRec) {
	for i := 1; i < len(recs); i++ {
		for j := i; j > 0 && recs[j].Key < recs[j-1].Key; j-- {
			recs[j], recs[j-1] = recs[j-1], recs[j]
		}
	}
}

// resolvePulled runs in the committer (invariant 1 of commit.go).
func (l *Ledger) resolvePulled(txn *badger.Txn, r *request, wb *walBatch) (result, error) {
	const op = "ledger.ApplyPulled"
	p := r.pull
	p.out = PulledResult{} // a batch split by commit is resolved again
	cur, err := getValue(txn, metaKey(p.key))
	if err != nil {
		return result{}, err
	}
	if !bytes.Equal(cur, p.from) || (cur == nil) != (p.from == nil) {
		return result{err: storeline.Errorf(storeline.Conflict, op, "cursor %q moved: the page follows another cursor", p.key)}, nil
	}
	for _, o := range p.ops {
		rec := walRec{T: recMaster, Kind: string(o.kind), MID: o.id, Master: &masterVal{
			Version: l.st.mver + 1, Deleted: o.data == nil, Data: o.data, Keys: o.keys,
		}}
		if err := l.apply(txn, &rec, nil); err != nil {
			return result{}, err
		}
		wb.Recs = append(wb.Recs, rec)
	}
	for _, se := range p.events {
		res, err := l.resolveRemote(txn, &request{kind: reqRemote, se: se}, wb)
		if err != nil {
			return result{}, err
		}
		switch {
		case res.err != nil:
			p.out.Refused = append(p.out.Refused, res.err)
		case res.created:
			p.out.Applied++
		default:
			p.out.Known++
		}
	}
	for i := range p.meta {
		if err := l.apply(txn, &p.meta[i], nil); err != nil {
			return result{}, err
		}
		wb.Recs = append(wb.Recs, p.meta[i])
	}
	if p.sweep != nil {
		if err := l.sweepMaster(txn, p.sweep, &p.out, wb); err != nil {
			return result{}, err
		}
	}
	rec := walRec{T: recMeta, Key: p.key, Val: p.to}
	if err := l.apply(txn, &rec, nil); err != nil {
		return result{}, err
	}
	wb.Recs = append(wb.Recs, rec)
	p.out.MasterVersion = l.st.mver
	return result{created: true, version: l.st.mver}, nil
}

// sweepMaster writes the tombstones of a sweep (see PulledSweep): victims
// are found by the version index first, then written, so the iterator
// never sees the sweep's own writes.
func (l *Ledger) sweepMaster(txn *badger.Txn, sw *PulledSweep, out *PulledResult, wb *walBatch) error {
	kinds := map[storeline.MasterKind]bool{}
	for _, k := range sw.Kinds {
		kinds[k] = true
	}
	type victim struct {
		kind storeline.MasterKind
		id   string
	}
	var vs []victim
	out.SweptTo = sw.Below
	if sw.After == math.MaxUint64 {
		return nil // (After, Below] is empty; After+1 would wrap to 0, sweeping from the first version
	}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tVersion}})
	looked := 0
	for it.Seek(versionKey(sw.After + 1)); it.Valid(); it.Next() {
		ver := getU64(it.Item().Key()[1:])
		if ver > sw.Below {
			break
		}
		if len(vs) == sw.Limit || looked == 16*sw.Limit {
			out.SweptTo = ver - 1
			break
		}
		looked++
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			it.Close()
			return err
		}
		k, id, _ := bytes.Cut(v, []byte{0})
		if !kinds[storeline.MasterKind(k)] {
			continue
		}
		mv, err := getMaster(txn, storeline.MasterKind(k), string(id))
		if err != nil {
			it.Close()
			return err
		}
		if mv != nil && !mv.Deleted && mv.Version == ver {
			vs = append(vs, victim{storeline.MasterKind(k), string(id)})
		}
	}
	it.Close()
	for _, v := range vs {
		rec := walRec{T: recMaster, Kind: string(v.kind), MID: v.id, Master: &masterVal{Version: l.st.mver + 1, Deleted: true}}
		if err := l.apply(txn, &rec, nil); err != nil {
			return err
		}
		wb.Recs = append(wb.Recs, rec)
	}
	out.Swept = len(vs)
	return nil
}

// OwnEpochs returns, for each epoch of this node's own journal, the
// position of its last event, in epoch order. Two seeks per epoch: a node
// has few epochs (one per restore).
func (l *Ledger) OwnEpochs() ([]Position, error) {
	var out []Position
	origin := l.o.Origin
	err := l.view(func(txn *badger.Txn) error {
		prefix := journalPrefix(origin)
		fwd := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer fwd.Close()
		rev := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: true})
		defer rev.Close()
		for epoch := uint64(0); ; {
			fwd.Seek(journalKey(origin, Position{epoch, 0}))
			if !fwd.ValidForPrefix(prefix) {
				return nil
			}
			e := journalPos(fwd.Item().Key()).Epoch
			rev.Seek(journalKey(origin, Position{e, math.MaxUint64}))
			if !rev.ValidForPrefix(prefix) {
				return fmt.Errorf("ledger: journal of epoch %d vanished", e)
			}
			out = append(out, journalPos(rev.Item().Key()))
			if e == math.MaxUint64 {
				return nil
			}
			epoch = e + 1
		}
	})
	return out, l.readErr("ledger.OwnEpochs", err)
}
