package central

import (
	"slices"
	"strings"

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

// Changes returns up to limit changes after the cursor that concern store.
func (n *Node) Changes(store storeline.StoreID, after Version, limit int) (ChangesPage, error) {
	const op = "central.Changes"
	if limit <= 0 {
		limit = DefaultFeedLimit
	}
	limit = min(limit, MaxFeedLimit)
	var s storeline.Store
	if err := n.rep.GetMaster(storeline.KindStore, string(store), &s); err != nil {
		return ChangesPage{}, err
	}
	floor, err := n.rep.Meta(floorKey)
	if err != nil {
		return ChangesPage{}, err
	}
	if after.Pack() < ledger.U64(floor) {
		return ChangesPage{Resync: true, Next: after}, nil
	}
	page := ChangesPage{Next: after}
	cursor := after.Pack()
	scanned := 0
	for len(page.Changes) < limit && scanned < feedScanFactor*limit {
		cs, err := n.rep.MasterChanges(cursor, min(1000, feedScanFactor*limit-scanned))
		if err != nil {
			return ChangesPage{}, storeline.E(op, storeline.KindOf(err), err)
		}
		if len(cs) == 0 {
			return page, nil
		}
		for _, c := range cs {
			scanned++
			cursor = c.Version
			page.Next = Unpack(c.Version)
			if concerns(&s, c) {
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
	AsOf    Version
	Next    string
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
	var s storeline.Store
	if err := n.rep.GetMaster(storeline.KindStore, string(store), &s); err != nil {
		return SnapshotPage{}, err
	}
	page := SnapshotPage{AsOf: Version{Index: n.rep.AppliedIndex(), Pos: MaxChangesPerEntry}}
	kindIdx, after := 0, ""
	if token != "" {
		k, id, ok := strings.Cut(token, ":")
		kindIdx = slices.Index(storeline.MasterKinds, storeline.MasterKind(k))
		if !ok || kindIdx < 0 {
			return SnapshotPage{}, storeline.E(op, storeline.Invalid, storeline.Invalidf("page", "bad page token %q", token))
		}
		after = id
	}
	for ; kindIdx < len(storeline.MasterKinds); kindIdx, after = kindIdx+1, "" {
		kind := storeline.MasterKinds[kindIdx]
		err := n.rep.ScanMasterAfter(kind, after, func(rec storeline.Record) (bool, error) {
			if len(page.Records) == limit {
				page.Next = string(kind) + ":" + after
				return false, nil
			}
			after = rec.MasterID()
			if concerns(&s, ledger.MasterChange{Kind: kind, ID: rec.MasterID(), Record: rec}) {
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
