package main

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/replication"
)

// Central ingest: each client is a shop pushing batches of its own events
// (receipts with their postings, numbered by (epoch, seq) as a store node's
// journal numbers them). Every central contender commits the same bytes,
// each event in replication's wire form (replication.WireEvent, msgpack):
// etcd as one transaction of one put per event, the raw Raft harness as
// one log entry per batch (a msgpack array of the events), and the
// Storeline central as the body of a push to its replication listener.

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

// shopEpoch is the epoch of every benchmark shop's journal.
const shopEpoch = 1

// eventPool is a shop's pool of receipt events in wire form. A batch
// takes the next templates in turn and gives each a fresh ID and the
// shop's next seq before encoding it, so every event pushed is a new one
// (central's seen set would skip a repeated ID) while the cost of
// building receipts and postings stays out of the slices. Every contender
// pays the same per-event encoding in its client.
type eventPool struct {
	shop storeline.StoreID
	evs  []replication.WireEvent
	next uint64 // seq of the next event pushed
}

// poolSize is how many distinct receipts a shop cycles through.
const poolSize = 256

func newEventPool(w *workload, shop storeline.StoreID, seed uint64) (*eventPool, error) {
	evs, err := shopEvents(w, rand.New(rand.NewPCG(seed, 5)), shop, 1, poolSize)
	if err != nil {
		return nil, err
	}
	p := &eventPool{shop: shop, next: 1}
	for i := range evs {
		we, err := replication.EventToWire(evs[i])
		if err != nil {
			return nil, fmt.Errorf("bench: wire form of %s: %w", evs[i].ID, err)
		}
		p.evs = append(p.evs, we)
	}
	return p, nil
}

// batch returns the next n events: the seq of the first and each event's
// wire bytes. The pool moves on whether or not the caller commits them:
// a client whose batch failed stops the run.
func (p *eventPool) batch(n int) (first uint64, evs []msgpack.RawMessage, err error) {
	first = p.next
	evs = make([]msgpack.RawMessage, n)
	for i := range evs {
		seq := p.next + uint64(i)
		we := p.evs[seq%poolSize]
		we.ID = storeline.NewEventID()
		we.Seq = seq
		if evs[i], err = msgpack.Marshal(&we); err != nil {
			return 0, nil, fmt.Errorf("bench: encode event %s/%d: %w", p.shop, seq, err)
		}
	}
	p.next += uint64(n)
	return first, evs, nil
}

// pushed is how many events the pool has handed out.
func (p *eventPool) pushed() uint64 { return p.next - 1 }

// eventBytes is the mean encoded size of one event.
func (p *eventPool) eventBytes() int {
	n := 0
	for i := range p.evs {
		b, err := msgpack.Marshal(&p.evs[i])
		if err != nil {
			return 0
		}
		n += len(b)
	}
	return n / len(p.evs)
}

// shopID names the benchmark's i-th shop (0-based), one per central client.
func shopID(i int) storeline.StoreID { return storeline.StoreID(fmt.Sprintf("shop-%03d", i+1)) }
