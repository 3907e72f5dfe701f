package main

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
)

// Central ingest: each client is a shop pushing batches of its own events
// (receipts with their postings, numbered by (epoch, seq) as a store node's
// journal numbers them). Every central contender commits the same bytes:
// etcd as one transaction of one put per event, the raw Raft harness as one
// log entry per batch, and the Storeline central contender (to be added;
// see doc.go) through its own push path.

// shopEvents returns n receipt events of shop, seq from..from+n-1, with
// their postings derived, as a store node would push them.
func shopEvents(w *workload, rng *rand.Rand, shop storeline.StoreID, from uint64, n int) ([]storeline.Event, error) {
	evs := make([]storeline.Event, n)
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	for i := range evs {
		r := w.receipt(rng, "till-1")
		ev := receiptEvent(r, at.Add(time.Duration(from+uint64(i))*time.Second))
		ev.Origin, ev.Epoch, ev.Seq, ev.SchemaVersion = shop, 1, from+uint64(i), storeline.SchemaVersion
		ev.HLC = uint64(ev.OccurredAt.UnixMilli()) << 16
		ps, err := storeline.DerivePostings(shop, r)
		if err != nil {
			return nil, fmt.Errorf("bench: postings of %s: %w", ev.ID, err)
		}
		ev.Postings = ps
		evs[i] = ev
	}
	return evs, nil
}

// encodedPool is a shop's pool of encoded events; batches cycle through it
// so that encoding costs nothing during a slice.
type encodedPool struct {
	shop storeline.StoreID
	evs  [][]byte
	next uint64 // seq of the next event pushed
}

// poolSize is how many distinct encoded events a shop cycles through.
const poolSize = 256

func newEncodedPool(w *workload, shop storeline.StoreID, seed uint64) (*encodedPool, error) {
	evs, err := shopEvents(w, rand.New(rand.NewPCG(seed, 5)), shop, 1, poolSize)
	if err != nil {
		return nil, err
	}
	p := &encodedPool{shop: shop, next: 1}
	for i := range evs {
		b, err := msgpack.Marshal(&evs[i])
		if err != nil {
			return nil, fmt.Errorf("bench: encode event: %w", err)
		}
		p.evs = append(p.evs, b)
	}
	return p, nil
}

// batch returns the next n events' sequence numbers and bytes.
func (p *encodedPool) batch(n int) (first uint64, evs [][]byte) {
	first = p.next
	evs = make([][]byte, n)
	for i := range evs {
		evs[i] = p.evs[(p.next+uint64(i))%poolSize]
	}
	p.next += uint64(n)
	return first, evs
}

// eventBytes is the mean encoded size of the pool's events.
func (p *encodedPool) eventBytes() int {
	n := 0
	for _, b := range p.evs {
		n += len(b)
	}
	return n / len(p.evs)
}
