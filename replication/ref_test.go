package replication_test

// The reference backend: what central does for replication, over a real
// ledger (origin "central") and the package's own IngestState, so the
// client and the handlers are exercised end to end before central's Raft
// FSM exists. Pushes are serialised (as Raft entries are); new events of a
// batch are applied concurrently, so the ledger group-commits them. The
// change feed is kept in memory, one entry per master change, central
// event or rejection, its index the cursor.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

type feedEntry struct {
	kind   storeline.MasterKind // a master change when set
	id     string
	ev     *storeline.Event       // a central event
	rej    *replication.Rejection // a rejection
	stores map[storeline.StoreID]bool
}

type refCentral struct {
	t         testing.TB
	l         *ledger.Ledger
	retention time.Duration

	pushMu sync.Mutex // one batch at a time, as Raft entries
	ingest *replication.IngestState

	mu      sync.Mutex
	feed    []feedEntry
	horizon uint64 // a cursor below it gets a resync
	changed chan struct{}

	hqSeq    uint64
	created  map[storeline.EventID]int // ApplyRemote created counts, per ID
	batches  int
	pushSeen []replication.Position // first position of each batch received
}

func newRefCentral(t testing.TB) *refCentral {
	t.Helper()
	o := ledger.DefaultOptions(t.TempDir(), storeline.Central)
	o.Clock = crdt.NewClock(time.Now, time.Minute)
	o.WALSegmentBytes = 16 << 20
	o.MaxBatchBytes = 2 << 20
	o.MemTableBytes = 32 << 20
	l, err := ledger.Open(o)
	if err != nil {
		t.Fatalf("central ledger: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return &refCentral{t: t, l: l, retention: 90 * 24 * time.Hour, ingest: replication.NewIngestState(),
		changed: make(chan struct{}), created: map[storeline.EventID]int{}}
}

func (c *refCentral) appendFeed(es ...feedEntry) {
	c.mu.Lock()
	c.feed = append(c.feed, es...)
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// putMaster stores records at central and feeds them to every shop.
func (c *refCentral) putMaster(recs ...storeline.Record) {
	c.t.Helper()
	if _, err := c.l.PutMaster(context.Background(), recs); err != nil {
		c.t.Fatalf("central PutMaster: %v", err)
	}
	es := make([]feedEntry, len(recs))
	for i, r := range recs {
		es[i] = feedEntry{kind: r.MasterKind(), id: r.MasterID()}
	}
	c.appendFeed(es...)
}

// transfer authors an event of head office ("hq") moving qty of item into
// store's stock; central applies it with its postings and feeds it to the
// store.
func (c *refCentral) transfer(store storeline.StoreID, item storeline.ItemID, qty int64) storeline.Event {
	c.t.Helper()
	q := decimal.NewFromInt(qty)
	c.mu.Lock()
	c.hqSeq++
	seq := c.hqSeq
	c.mu.Unlock()
	ev := storeline.Event{ID: storeline.NewEventID(), Origin: "hq", Epoch: 1, Seq: seq,
		SchemaVersion: storeline.SchemaVersion, Kind: storeline.KindTransfer,
		Body: &storeline.Transfer{Reason: "delivery"}, OccurredAt: time.Now().UTC(), BusinessDate: "2026-11-28",
		Postings: storeline.MergePostings([]storeline.Posting{
			{Account: storeline.StockAccount(store, "food", item), Asset: storeline.ItemAsset(item), Amount: q},
			{Account: "warehouse/" + string(item), Asset: storeline.ItemAsset(item), Amount: q.Neg()},
		})}
	if _, err := c.l.ApplyRemote(context.Background(), ev); err != nil {
		c.t.Fatalf("central transfer: %v", err)
	}
	c.appendFeed(feedEntry{ev: &ev, stores: map[storeline.StoreID]bool{store: true}})
	return ev
}

// Push implements replication.Backend.
func (c *refCentral) Push(ctx context.Context, b replication.Batch) (replication.PushResult, error) {
	c.pushMu.Lock()
	defer c.pushMu.Unlock()
	c.mu.Lock()
	c.batches++
	if len(b.Events) > 0 {
		c.pushSeen = append(c.pushSeen, replication.Position{Epoch: b.Epoch, Seq: b.Events[0].Seq})
	}
	c.mu.Unlock()
	res, err := replication.Ingest(c.ingest, b, time.Now().UnixMilli(), c.retention, c.apply)
	if err != nil {
		return replication.PushResult{}, err
	}
	if len(res.Rejections) > 0 {
		es := make([]feedEntry, len(res.Rejections))
		for i := range res.Rejections {
			es[i] = feedEntry{rej: &res.Rejections[i], stores: map[storeline.StoreID]bool{b.Store: true}}
		}
		c.appendFeed(es...)
	}
	return replication.PushResult{IngestResult: res, Marks: c.ingest.Marks(b.Store)}, nil
}

// apply checks each event's business rules (every item of a receipt must
// exist at central) and applies the good ones concurrently.
func (c *refCentral) apply(evs []storeline.Event) ([]error, error) {
	errs := make([]error, len(evs))
	fatal := make([]error, len(evs))
	var wg sync.WaitGroup
	for i, ev := range evs {
		if r, ok := ev.Body.(*storeline.Receipt); ok {
			for j, ln := range r.Lines {
				var it storeline.Item
				if err := c.l.GetMaster(storeline.KindItem, string(ln.Item), &it); err != nil {
					errs[i] = &storeline.Error{Kind: storeline.NotFound, Field: fmt.Sprintf("lines[%d].item", j),
						Err: fmt.Errorf("unknown item %q", ln.Item)}
					break
				}
			}
		}
		if errs[i] != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			created, err := c.l.ApplyRemote(context.Background(), ev)
			switch k := storeline.KindOf(err); {
			case err == nil:
				if created {
					c.mu.Lock()
					c.created[ev.ID]++
					c.mu.Unlock()
				}
			case k == storeline.Invalid || k == storeline.Conflict:
				errs[i] = err
			default:
				fatal[i] = err
			}
		}()
	}
	wg.Wait()
	return errs, errors.Join(fatal...)
}

func (c *refCentral) relevant(e feedEntry, store storeline.StoreID) bool {
	return e.kind != "" || e.stores[store]
}

// Pull implements replication.Backend.
func (c *refCentral) Pull(ctx context.Context, q replication.PullQuery) (replication.Page, error) {
	c.mu.Lock()
	n := uint64(len(c.feed))
	horizon := c.horizon
	c.mu.Unlock()
	if q.Snapshot != nil || q.Cursor < horizon {
		return c.snapshot(q, n)
	}
	var p replication.Page
	p.Cursor = q.Cursor
	scan := 0
	for v := q.Cursor + 1; v <= n && len(p.Changes)+len(p.Events)+len(p.Rejections) < q.MaxItems; v++ {
		if scan++; scan > 20*q.MaxItems {
			break
		}
		c.mu.Lock()
		e := c.feed[v-1]
		c.mu.Unlock()
		p.Cursor = v
		if !c.relevant(e, q.Store) {
			continue
		}
		switch {
		case e.kind != "":
			ch, err := c.change(e.kind, e.id, v)
			if err != nil {
				return p, err
			}
			p.Changes = append(p.Changes, ch)
		case e.ev != nil:
			p.Events = append(p.Events, *e.ev)
		case e.rej != nil:
			p.Rejections = append(p.Rejections, *e.rej)
		}
	}
	p.More = p.Cursor < n
	// After a restore: the shop's own acknowledged events it lacks.
	for _, have := range q.Own {
		c.pushMu.Lock() // IngestState is the pushes' alone: read it under their lock
		mark, _ := c.ingest.Mark(q.Store, have.Epoch)
		c.pushMu.Unlock()
		if mark <= have.Seq {
			continue
		}
		evs, err := c.l.Journal(q.Store, ledger.Position{Epoch: have.Epoch, Seq: have.Seq + 1}, q.MaxItems)
		if err != nil {
			return p, err
		}
		for _, ev := range evs {
			if ev.Epoch == have.Epoch {
				p.Events = append(p.Events, ev)
			}
		}
	}
	return p, nil
}

func (c *refCentral) change(kind storeline.MasterKind, id string, v uint64) (replication.Change, error) {
	rec, err := storeline.NewRecord(kind)
	if err != nil {
		return replication.Change{}, err
	}
	ch := replication.Change{Version: v, Kind: kind, ID: id}
	switch err := c.l.GetMaster(kind, id, rec); {
	case err == nil:
		ch.Record = rec
	case storeline.KindOf(err) != storeline.NotFound:
		return ch, err
	}
	return ch, nil
}

// snapshot serves a resync: every record's current state by central's
// ledger version after Snapshot.After; the snapshot's ID is the feed
// length when it started.
func (c *refCentral) snapshot(q replication.PullQuery, n uint64) (replication.Page, error) {
	rs := &replication.Resync{Reason: "cursor older than central's history", ID: n}
	var after uint64
	if q.Snapshot != nil {
		rs.ID = q.Snapshot.ID
		after, _ = strconv.ParseUint(q.Snapshot.After, 10, 64)
	}
	chs, err := c.l.MasterChanges(after, q.MaxItems)
	if err != nil {
		return replication.Page{}, err
	}
	p := replication.Page{Cursor: q.Cursor, Resync: rs}
	for _, mc := range chs {
		p.Changes = append(p.Changes, replication.Change{Version: mc.Version, Kind: mc.Kind, ID: mc.ID, Record: mc.Record})
		after = mc.Version
	}
	rs.Next = strconv.FormatUint(after, 10)
	if len(chs) < q.MaxItems {
		rs.Done, rs.Next = true, ""
	}
	return p, nil
}

// Wait implements replication.Backend.
func (c *refCentral) Wait(ctx context.Context, store storeline.StoreID, cursor uint64) error {
	c.mu.Lock()
	if uint64(len(c.feed)) > cursor {
		c.mu.Unlock()
		return nil
	}
	ch := c.changed
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// serve starts the replication handlers on loopback with a token per
// store.
func (c *refCentral) serve(t testing.TB, tokens map[string]storeline.StoreID) *httptest.Server {
	t.Helper()
	cfg := replication.DefaultServerConfig()
	cfg.Backend = c
	cfg.Tokens = tokens
	cfg.MaxWait = 2 * time.Second
	s, err := replication.NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

// journalIDs returns the IDs of store's events central holds, counting
// each copy.
func (c *refCentral) journalIDs(t testing.TB, store storeline.StoreID) map[storeline.EventID]int {
	t.Helper()
	out := map[storeline.EventID]int{}
	from := ledger.Position{}
	for {
		evs, err := c.l.Journal(store, from, ledger.MaxJournalLimit)
		if err != nil {
			t.Fatalf("central Journal: %v", err)
		}
		for _, ev := range evs {
			out[ev.ID]++
		}
		if len(evs) < ledger.MaxJournalLimit {
			return out
		}
		last := evs[len(evs)-1]
		from = ledger.Position{Epoch: last.Epoch, Seq: last.Seq + 1}
	}
}

func hasPrefixAny(s string, ps ...string) bool {
	for _, p := range ps {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

var _ http.Handler = http.NotFoundHandler()
