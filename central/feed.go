package central

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// Limits of the change feed.
const (
	DefaultFeedLimit = 500
	MaxFeedLimit     = 5000
	// feedScanFactor bounds the changes scanned per answer to this many
	// times the limit, so a store that few changes concern still gets a
	// prompt (possibly empty) page with an advanced cursor.
	feedScanFactor = 20
)

// Change is one master-data change in a store's feed: the record, or a
// tombstone (Deleted, Record nil).
type Change struct {
	Version Version              `json:"version"`
	Kind    storeline.MasterKind `json:"kind"`
	ID      string               `json:"id"`
	Deleted bool                 `json:"deleted,omitempty"`
	Record  storeline.Record     `json:"-"`
}

// ChangesPage is an answer of Changes. When Resync is true the cursor is
// older than the retained history: the caller must take a Snapshot and
// continue from its AsOf version.
type ChangesPage struct {
	Changes []Change
	// Next is the cursor to ask with next (the last change scanned, which
	// may be beyond the last change returned).
	Next Version
	// More is true if changes after Next may exist now.
	More   bool
	Resync bool
}

// concerns says whether a change belongs in store s's feed (DESIGN.md,
// "Master data"). Tombstones go to every store: the deleted record's
// scope is gone with it, and an unknown ID's tombstone is harmless.
func concerns(s *storeline.Store, c ledger.MasterChange) bool {
	if c.Deleted {
		return true
	}
	switch r := c.Record.(type) {
	case *storeline.Store:
		return r.ID == s.ID
	case *storeline.PriceList:
		return slices.Contains(s.PriceLists, r.ID)
	case *storeline.Price:
		return slices.Contains(s.PriceLists, r.List)
	case *storeline.Seller:
		return r.WorksAt(s.ID)
	case *storeline.Terminal:
		return r.Store == s.ID
	case *storeline.Message:
		return len(r.Stores) == 0 || slices.Contains(r.Stores, s.ID)
	case *storeline.Supplier, *storeline.Buyer, *storeline.Manufacturer, *storeline.Representative, *storeline.Bank:
		return false // head office's registries; shops do not need them
	}
	return true // chain-wide: goods, groups, customers, cards, promotions, policies
}

// feedChange returns c as store s's feed carries it, and whether it does.
// A seller who does not work at s, or a message not for s, is sent to it
// as a tombstone: s may hold an earlier version of the record that
// concerned it (head office moved the seller to another shop, or narrowed
// the seller's or the message's shops), and the history keeps only a
// record's latest version, so which shops that one concerned is not known
// here. Without it s would keep the old record: the seller would log in
// with their PIN, the tills would show the message. A shop that never
// held the record applies the tombstone harmlessly, as it does those of
// deletions.
func feedChange(s *storeline.Store, c ledger.MasterChange) (ledger.MasterChange, bool) {
	if c.Deleted {
		return c, true
	}
	switch r := c.Record.(type) {
	case *storeline.Seller:
		if !r.WorksAt(s.ID) {
			c.Deleted, c.Record = true, nil
		}
		return c, true
	case *storeline.Message:
		if !concerns(s, c) {
			c.Deleted, c.Record = true, nil
		}
		return c, true
	}
	return c, concerns(s, c)
}

// changesReadHook, if set, runs in Changes after it has read the floor
// and before it reads the changes. Only tests set it.
var changesReadHook func()

// snapshotReadHook, if set, runs in Snapshot once its read transaction
// has begun, before it reads anything. Only tests set it.
var snapshotReadHook func()

// Changes returns up to limit changes after the cursor that concern store.
func (n *Node) Changes(store storeline.StoreID, after Version, limit int) (ChangesPage, error) {
	const op = "central.Changes"
	if limit <= 0 {
		limit = DefaultFeedLimit
	}
	limit = min(limit, MaxFeedLimit)
	// The store, the floor, the store's assignments and the changes are
	// read at one instant: a prune that raises the floor and drops
	// tombstones, or a change of the store's price lists, is seen whole
	// or not at all.
	var page ChangesPage
	err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		var err error
		page, err = changesIn(rt, store, after, limit)
		return err
	})
	if err != nil {
		return ChangesPage{}, storeline.E(op, storeline.KindOf(err), err)
	}
	return page, nil
}

// changesIn is Changes read in rt.
func changesIn(rt *ledger.ReplicaTxn, store storeline.StoreID, after Version, limit int) (ChangesPage, error) {
	var s storeline.Store
	found, err := rt.GetMaster(storeline.KindStore, string(store), &s)
	if err != nil {
		return ChangesPage{}, err
	}
	if !found {
		return ChangesPage{}, storeline.Errorf(storeline.NotFound, "central.Changes", "no %s %q", storeline.KindStore, store)
	}
	floor, err := rt.Meta(floorKey)
	if err != nil {
		return ChangesPage{}, err
	}
	// A cursor below the floor missed pruned tombstones; one below the
	// store's last change of price lists misses the prices of a list
	// assigned since, which are older than the cursor (as a pull).
	assign, err := rt.Meta(rpAssign + string(store))
	if err != nil {
		return ChangesPage{}, err
	}
	if after.Pack() < ledger.U64(floor) || after.Pack() > 0 && after.Pack() < ledger.U64(assign) {
		return ChangesPage{Resync: true, Next: after}, nil
	}
	if changesReadHook != nil {
		changesReadHook()
	}
	page := ChangesPage{Next: after}
	cursor := after.Pack()
	scanned := 0
	for len(page.Changes) < limit && scanned < feedScanFactor*limit {
		cs, err := rt.MasterChanges(cursor, min(1000, feedScanFactor*limit-scanned))
		if err != nil {
			return ChangesPage{}, err
		}
		if len(cs) == 0 {
			return page, nil
		}
		for _, c := range cs {
			scanned++
			cursor = c.Version
			page.Next = Unpack(c.Version)
			if c, ok := feedChange(&s, c); ok {
				page.Changes = append(page.Changes, Change{Version: Unpack(c.Version), Kind: c.Kind, ID: c.ID, Deleted: c.Deleted, Record: c.Record})
				if len(page.Changes) == limit {
					break
				}
			}
		}
	}
	page.More = true
	return page, nil
}

// SnapshotPage is a page of a store's resync snapshot: the live records
// that concern it. AsOf is the version to continue the feed from, set on
// every page (take it from the first); Next is "" on the last page.
type SnapshotPage struct {
	Records []storeline.Record
	// Gone are tombstones for live sellers the store may hold from
	// before but who no longer work there (see feedChange): a resync does
	// not sweep sellers, which a shop's admin API may issue too (it does
	// sweep messages: replication.SweptKinds). Only a shop's resync
	// through replication gets them.
	Gone []Change
	AsOf Version
	Next string
}

// Snapshot returns a page of every live record that concerns store, kind
// by kind in storeline.MasterKinds order. token is "" for the first page,
// then the previous page's Next.
func (n *Node) Snapshot(store storeline.StoreID, token string, limit int) (SnapshotPage, error) {
	const op = "central.Snapshot"
	if limit <= 0 {
		limit = DefaultFeedLimit
	}
	limit = min(limit, MaxFeedLimit)
	var page SnapshotPage
	// The store (its price lists) is read with the records and AsOf, at
	// one instant: records filtered by lists a later change replaced,
	// under a version past that change, would never be sent again.
	err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		if snapshotReadHook != nil {
			snapshotReadHook()
		}
		var s storeline.Store
		found, err := rt.GetMaster(storeline.KindStore, string(store), &s)
		if err != nil {
			return err
		}
		if !found {
			return storeline.Errorf(storeline.NotFound, op, "no %s %q", storeline.KindStore, store)
		}
		idx, err := rt.AppliedIndex()
		if err != nil {
			return err
		}
		page, err = snapshotRecords(rt, &s, token, "page", limit, false)
		page.AsOf = Version{Index: idx, Pos: MaxChangesPerEntry}
		return err
	})
	if err != nil {
		return SnapshotPage{}, storeline.E(op, storeline.KindOf(err), err)
	}
	return page, nil
}

// snapshotRecords is a page of Snapshot read in rt (AsOf unset); field
// names where token came from, for the Invalid error of a bad one. gone
// adds the sellers' tombstones (SnapshotPage.Gone) for a shop's resync,
// counted in limit; the head-office API's snapshot, which has no place
// for them, leaves them out rather than answer pages short of records.
// Node.Snapshot's pages carry no Gone.
func snapshotRecords(rt *ledger.ReplicaTxn, s *storeline.Store, token, field string, limit int, gone bool) (SnapshotPage, error) {
	var page SnapshotPage
	kindIdx, after := 0, ""
	if token != "" {
		k, id, ok := strings.Cut(token, ":")
		kindIdx = slices.Index(storeline.MasterKinds, storeline.MasterKind(k))
		if !ok || kindIdx < 0 {
			return SnapshotPage{}, storeline.Invalidf(field, "bad page token %q", token)
		}
		after = id
	}
	for ; kindIdx < len(storeline.MasterKinds); kindIdx, after = kindIdx+1, "" {
		kind := storeline.MasterKinds[kindIdx]
		err := rt.ScanMasterAfter(kind, after, func(rec storeline.Record) (bool, error) {
			if len(page.Records)+len(page.Gone) == limit {
				page.Next = string(kind) + ":" + after
				return false, nil
			}
			after = rec.MasterID()
			c, ok := feedChange(s, ledger.MasterChange{Kind: kind, ID: rec.MasterID(), Record: rec})
			switch {
			case ok && c.Deleted:
				if gone && kind == storeline.KindSeller {
					page.Gone = append(page.Gone, Change{Kind: kind, ID: c.ID, Deleted: true})
				}
			case ok:
				page.Records = append(page.Records, rec)
			}
			return true, nil
		})
		if err != nil {
			return SnapshotPage{}, err
		}
		if page.Next != "" {
			return page, nil
		}
	}
	return page, nil
}

// Pruning the per-store feeds (central/replication.go, invariant 3).
// Feed entries with versions below the history floor (raised by
// OpMasterPrune) are dropped, at most feedPrunePerEntry of them and
// feedPruneStoresPerEntry stores visited per Raft entry, resuming where the
// previous entry stopped; the leader submits entries until none is left.
// A store's feed then starts at rpFeedLo, and rpFeedCut records the
// version of its last dropped entry: a resync of a cursor below it cannot
// take those events from the feed, so it sends the central-authored events
// touching the store from the event store instead (snapshot, "e:" phase).
// An entry naming another shop's event is never dropped (nor what follows
// it). Rejections dropped this way are not sent again: a shop offline for
// longer than the history window loses the reasons for its old rejections,
// never an effect (a rejected event changed nothing).
const (
	// OpFeedPrune drops feed entries below the history floor.
	OpFeedPrune = "replication.feedprune"

	feedPrunePerEntry       = 4096
	feedPruneStoresPerEntry = 1024

	rpFeedLo  = "repl/flo/"  // store → n8 of its first kept feed entry (absent: 1)
	rpFeedCut = "repl/fcut/" // store → version8 of its last dropped entry
	rpFeedPC  = "repl/fpc"   // → the store the next prune entry resumes at
)

// feedPrunePayload bounds one prune entry's work below the constants
// (zero: the constants); it is in the entry, so every replica prunes alike.
type feedPrunePayload struct {
	Entries int `msgpack:"n,omitempty"`
	Stores  int `msgpack:"s,omitempty"`
}

// feedPruneOutcome is the body of a prune entry's result.
type feedPruneOutcome struct {
	Dropped int  `msgpack:"n"`
	More    bool `msgpack:"m"`
}

func feedLo(rt *ledger.ReplicaTxn, store storeline.StoreID) (uint64, error) {
	v, err := rt.Meta(rpFeedLo + string(store))
	if err != nil || v == nil {
		return 1, err
	}
	return ledger.U64(v), nil
}

// applyFeedPrune drops feed entries below the floor, within the bounds.
func applyFeedPrune(tx *Tx, payload []byte) ([]byte, error) {
	var p feedPrunePayload
	if len(payload) > 0 {
		if err := msgpack.Unmarshal(payload, &p); err != nil {
			return nil, storeline.Invalidf("", "undecodable feed prune: %v", err)
		}
	}
	perEntry, perStores := feedPrunePerEntry, feedPruneStoresPerEntry
	if p.Entries > 0 {
		perEntry = min(perEntry, p.Entries)
	}
	if p.Stores > 0 {
		perStores = min(perStores, p.Stores)
	}
	fv, err := tx.Meta(floorKey)
	if err != nil {
		return nil, err
	}
	floor := ledger.U64(fv)
	resume, err := tx.Meta(rpFeedPC)
	if err != nil {
		return nil, err
	}
	var out feedPruneOutcome
	var stores []storeline.StoreID
	more := false
	// Resume at the store itself: its feed may be half pruned.
	err = tx.ScanMetaFrom(rpFeedN, string(resume), func(k string, _ []byte) (bool, error) {
		st := k[len(rpFeedN):]
		if len(stores) == perStores {
			more = true
			resume = []byte(st)
			return false, nil
		}
		stores = append(stores, storeline.StoreID(st))
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	for _, st := range stores {
		done, err := pruneStoreFeed(tx, st, floor, perEntry-out.Dropped, &out.Dropped)
		if err != nil {
			return nil, err
		}
		if !done {
			more, resume = true, []byte(st) // the budget ran out in this store
			break
		}
	}
	out.More = more
	if more {
		err = tx.SetMeta(rpFeedPC, resume)
	} else {
		err = tx.SetMeta(rpFeedPC, nil)
	}
	if err != nil {
		return nil, err
	}
	return msgpack.Marshal(&out)
}

// pruneStoreFeed drops store's leading entries below floor, at most
// budget; done is false if the budget ran out first.
func pruneStoreFeed(tx *Tx, store storeline.StoreID, floor uint64, budget int, dropped *int) (done bool, err error) {
	if budget <= 0 {
		return false, nil
	}
	nv, err := tx.Meta(rpFeedN + string(store))
	if err != nil {
		return false, err
	}
	count := ledger.U64(nv)
	lo, err := feedLo(tx.ReplicaTxn, store)
	if err != nil {
		return false, err
	}
	i, cut := lo, uint64(0)
	for ; i <= count; i++ {
		if budget == 0 {
			break
		}
		v, err := tx.Meta(feedKey(store, i))
		if err != nil {
			return false, err
		}
		var e feedEntry
		if v == nil {
			return false, fmt.Errorf("central: feed of %s lacks entry %d of %d", store, i, count)
		}
		if err := msgpack.Unmarshal(v, &e); err != nil {
			return false, fmt.Errorf("central: feed of %s, entry %d: %w", store, i, err)
		}
		if e.Version >= floor || e.Rej == nil && e.Origin != string(storeline.Central) {
			// A shop's event touching this store is not in the event
			// store's central part a resync reads instead: such an entry
			// (none today: documents are posted by head office) stops the
			// pruning of this feed rather than be lost.
			break
		}
		if err := tx.SetMeta(feedKey(store, i), nil); err != nil {
			return false, err
		}
		cut = e.Version
		budget--
		*dropped++
	}
	if i == lo {
		return true, nil
	}
	if err := tx.SetMeta(rpFeedLo+string(store), ledger.PutU64(i)); err != nil {
		return false, err
	}
	if err := tx.SetMeta(rpFeedCut+string(store), ledger.PutU64(cut)); err != nil {
		return false, err
	}
	return budget > 0 || i > count, nil
}

// PruneFeeds submits feed prune entries until none is left, or ctx ends,
// and returns how many feed entries they dropped. The leader's prune loop
// calls it after each prune of the master history.
func (n *Node) PruneFeeds(ctx context.Context) (int, error) {
	total, _, err := n.pruneFeeds(ctx, feedPrunePayload{})
	return total, err
}

// pruneFeeds is PruneFeeds with the bounds of p; it also returns how many
// entries it submitted.
func (n *Node) pruneFeeds(ctx context.Context, p feedPrunePayload) (total, entries int, err error) {
	body, err := msgpack.Marshal(&p)
	if err != nil {
		return 0, 0, storeline.E("central.PruneFeeds", storeline.Internal, err)
	}
	for {
		entries++
		res, err := n.Submit(ctx, OpFeedPrune, "", body)
		if err != nil {
			return total, entries, err
		}
		if err := res.Err(); err != nil {
			return total, entries, err
		}
		var o feedPruneOutcome
		if err := msgpack.Unmarshal(res.Body, &o); err != nil {
			return total, entries, storeline.E("central.PruneFeeds", storeline.Internal, err)
		}
		total += o.Dropped
		if !o.More {
			return total, entries, nil
		}
	}
}

// centralEventsTouching returns up to limit events of origin central,
// after the event key after ("" from the start), whose postings move
// store's accounts, looking at most scan events; next is the key to
// continue after ("" when the scan reached the end).
func centralEventsTouching(rt *ledger.ReplicaTxn, store storeline.StoreID, after string, limit, scan int) (evs []storeline.Event, next string, err error) {
	prefix := rpEvent + string(storeline.Central) + "\x00"
	looked := 0
	err = rt.ScanMetaFrom(prefix, after, func(k string, v []byte) (bool, error) {
		if after != "" && k == prefix+after {
			return true, nil
		}
		if len(evs) == limit || looked == scan {
			return false, nil
		}
		looked++
		next = k[len(prefix):]
		if !bytes.Contains(v, []byte("/"+string(store))) {
			return true, nil // cheap filter: no account of the store
		}
		ev, err := decodeEvent(v)
		if err != nil {
			return false, err
		}
		for _, p := range ev.Postings {
			if s, ok := storeOfAccount(p.Account); ok && s == store {
				evs = append(evs, ev)
				break
			}
		}
		return true, nil
	})
	if err != nil {
		return nil, "", err
	}
	if len(evs) < limit && looked < scan {
		next = "" // the end
	}
	return evs, next, nil
}

// PruneHistory prunes the change history before before (as the leader's
// prune loop does with ChangeRetention): tombstones and the floor, in
// entries until none is left or ctx ends, then the shops' feeds below it.
// It returns the feed entries dropped.
func (n *Node) PruneHistory(ctx context.Context, before time.Time) (int, error) {
	if _, _, err := n.pruneHistory(ctx, prunePayload{Before: before}, 0, true); err != nil {
		return 0, err
	}
	return n.PruneFeeds(ctx)
}

// pruneHistory submits prune entries of p while the last one reached its
// limit (pruneOutcome.More), at most maxEntries of them (zero: no bound
// but ctx); mayForward as submit's. It returns how many it submitted and
// whether tombstones before the cutoff may be left.
func (n *Node) pruneHistory(ctx context.Context, p prunePayload, maxEntries int, mayForward bool) (entries int, more bool, err error) {
	const op = "central.PruneHistory"
	body, err := msgpack.Marshal(&p)
	if err != nil {
		return 0, true, storeline.E(op, storeline.Internal, err)
	}
	for maxEntries <= 0 || entries < maxEntries {
		entries++
		res, err := n.submit(ctx, &command{Op: OpMasterPrune, AtMs: n.now().UnixMilli(), Payload: body}, mayForward)
		if err != nil {
			return entries, true, err
		}
		if err := res.Err(); err != nil {
			return entries, true, err
		}
		var o pruneOutcome
		if len(res.Body) > 0 {
			if err := msgpack.Unmarshal(res.Body, &o); err != nil {
				return entries, true, storeline.E(op, storeline.Internal, fmt.Errorf("prune entry %d's result: %w", res.Index, err))
			}
		}
		if !o.More {
			return entries, false, nil
		}
	}
	return entries, true, nil
}
