package ledger

import (
	"errors"
	"hash/maphash"
	"math/bits"

	"github.com/dgraph-io/badger/v4"

	"github.com/storeline/storeline"
)

// The IDs of this origin's events, as a Bloom filter in front of the
// dedup lookup of Append. Nearly every Append carries a new ID, and
// finding that an ID is absent costs Badger a search of every memtable
// and a bloom probe of every level's tables: about a twentieth of a
// receipt's CPU at 64 writers. The filter answers most of those with a
// few bit probes.
//
// Invariants:
//
//  1. No false negatives: once installed, the filter holds the ID of every
//     own event key in Badger or in a batch being resolved. Until then
//     Append looks every ID up. Open, once it has replayed the WAL, starts
//     filling a filter from a snapshot of Badger's own event keys in the
//     background (a shop's keys read at about a million a second would
//     otherwise hold its restart) and from then on applyEvent, the one
//     place that writes a new event key (Append, ApplyRemote, a pulled
//     page), keeps each new own ID aside (pendingIDs) until the filter is
//     installed, then adds it there, before writing the key. The
//     committer installs the filled filter at the start of a batch, adding
//     the IDs kept aside: an ID applied before the snapshot is in it, one
//     applied after was kept aside (one in both is added twice, which is
//     harmless). Retention's stubs and the read-back's rewrites replace
//     keys that exist.
//  2. A false positive costs only the lookup the filter would have saved,
//     and an ID added for a batch that was then refused (its frame never
//     synced) is one: the filter only ever says "maybe".
//  3. The installed filter and pendingIDs are the committer's: read and
//     written by the holder of the commit token (resolve, apply) and by
//     Open before any holder exists, so they need no lock (commit.go
//     invariant 1). The fill owns the filter it builds until it hands it
//     over on filled; Close stops the fill and waits for it before Badger
//     closes.
//  4. It grows by layers (a scalable Bloom filter): when a layer holds
//     its capacity, a new one of twice the capacity takes the adds, and
//     nothing is rehashed. Every layer is as tight as the first (about
//     0.8% once full) and a lookup probes them all, so the false-positive
//     rates add up with the layers: about 3% at a million own events, 5%
//     at four million (a lookup each, invariant 2). Memory is 1.25 bytes
//     per ID a layer can take: 1.25 to 2.5 bytes per own event, as the
//     newest layer is allocated whole.
//
// Only own IDs are filtered: Append's are the hot path; a replica or
// central holds other origins' events by the million and would pay for
// their filter at every Open.

const (
	filterFirstCap  = 1 << 16 // IDs in the first layer
	filterBitsPerID = 10
	filterProbes    = 7 // optimal for 10 bits per ID: ~0.8% per full layer
)

type idFilter struct {
	seed   maphash.Seed
	layers []filterLayer
}

type filterLayer struct {
	bits  []uint64
	m     uint64 // bits in the layer
	n     int    // IDs added
	limit int    // capacity
}

func newIDFilter() *idFilter {
	f := &idFilter{seed: maphash.MakeSeed()}
	f.grow(filterFirstCap)
	return f
}

func (f *idFilter) grow(capacity int) {
	m := uint64(capacity) * filterBitsPerID
	m = (m + 63) &^ 63
	f.layers = append(f.layers, filterLayer{bits: make([]uint64, m/64), m: m, limit: capacity})
}

// probes gives the filter's two hashes of id (double hashing: probe i
// is h1 + i·h2).
func (f *idFilter) probes(id storeline.EventID) (h1, h2 uint64) {
	h := maphash.Bytes(f.seed, id[:])
	return h, bits.RotateLeft64(h, 32) | 1
}

func (f *idFilter) add(id storeline.EventID) {
	last := &f.layers[len(f.layers)-1]
	if last.n >= last.limit {
		f.grow(2 * last.limit)
		last = &f.layers[len(f.layers)-1]
	}
	h1, h2 := f.probes(id)
	for i := range uint64(filterProbes) {
		b := (h1 + i*h2) % last.m
		last.bits[b/64] |= 1 << (b % 64)
	}
	last.n++
}

// mayHave reports whether id may be an own event's: false means it is
// certainly not.
func (f *idFilter) mayHave(id storeline.EventID) bool {
	h1, h2 := f.probes(id)
	for li := range f.layers {
		l := &f.layers[li]
		hit := true
		for i := range uint64(filterProbes) {
			b := (h1 + i*h2) % l.m
			if l.bits[b/64]&(1<<(b%64)) == 0 {
				hit = false
				break
			}
		}
		if hit {
			return true
		}
	}
	return false
}

// startOwnIDs starts filling the filter of own IDs in the background
// (invariant 1). Open calls it once replay is done and before any
// committer runs.
func (l *Ledger) startOwnIDs() {
	l.fillingIDs = true
	l.filled = make(chan *idFilter, 1)
	l.fillDone = make(chan struct{})
	go func() {
		defer close(l.fillDone)
		f, err := l.fillOwnIDs()
		if err != nil {
			if !errors.Is(err, errFillStopped) {
				l.log.Warn("ledger: own event IDs not filtered, every Append looks its ID up", "err", err)
			}
			f = nil // the committer stops keeping IDs aside
		}
		l.filled <- f
		if l.seams.Filled != nil {
			l.seams.Filled()
		}
	}()
}

// installOwnIDs installs the filled filter, if it is ready, with the IDs
// kept aside meanwhile; the committer calls it before each batch.
func (l *Ledger) installOwnIDs() {
	if !l.fillingIDs {
		return
	}
	select {
	case f := <-l.filled:
		if f != nil {
			for _, id := range l.pendingIDs {
				f.add(id)
			}
		}
		l.ownIDs, l.pendingIDs, l.fillingIDs = f, nil, false // nil: a failed fill, every ID looked up
	default:
	}
}

// noteOwnID records a new own event's ID before its key is written
// (invariant 1).
func (l *Ledger) noteOwnID(id storeline.EventID) {
	switch {
	case l.ownIDs != nil:
		l.ownIDs.add(id)
	case l.fillingIDs:
		l.pendingIDs = append(l.pendingIDs, id)
	}
}

var errFillStopped = errors.New("ledger: closing")

// fillOwnIDs returns a filter of the ID of every own event key in a
// snapshot of Badger, reading keys only; it stops early when the ledger
// closes.
func (l *Ledger) fillOwnIDs() (*idFilter, error) {
	f := newIDFilter()
	prefix := eventKey(l.o.Origin, storeline.EventID{})
	prefix = prefix[:len(prefix)-16]
	// Not ver.view: its beforeView is a test's hook into the views of a
	// read it makes once Open has returned, and the fill runs beside it.
	if err := l.ver.enter(); err != nil {
		return nil, err
	}
	defer l.ver.leave()
	txn := l.ver.begin(false)
	defer l.ver.end(txn)
	err := func() error {
		if l.seams.FillOwnIDs != nil {
			l.seams.FillOwnIDs() // the snapshot is taken
		}
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		n := 0
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			if n++; n%4096 == 0 {
				select {
				case <-l.quit:
					return errFillStopped
				default:
				}
			}
			k := it.Item().Key()
			if len(k) != len(prefix)+16 {
				continue
			}
			f.add(storeline.EventID(k[len(prefix):]))
		}
		return nil
	}()
	return f, err
}
