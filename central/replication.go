package central

// Replication at central: shops push their journals up and pull master
// data and others' events down (package replication owns the protocol;
// this file is its Backend over the cluster).
//
// Invariants:
//
//  1. A push is one Raft entry per batch (a shop's batch over
//     maxPushEntryEvents is split into several entries, in order). The
//     FSM runs replication.Ingest inside the entry's Badger transaction,
//     so the per-(store, epoch) high-water marks, the (origin, ID) seen
//     set, the stored events, the balances and the per-shop statistics
//     move together with the applied index: an entry replayed after a
//     restart applies nothing twice, and every replica decides the same.
//  2. An event central refuses for a business reason (an unknown item)
//     is a rejection: it advances the mark, changes no balance, and is
//     put in its origin's feed so it flows back down.
//  3. Each store has its own feed of the non-master things it must pull
//     (events of other origins touching its accounts, its rejections),
//     numbered densely per store and stamped with the central Version of
//     the entry that wrote them; master changes keep their own versions.
//     A pull cursor is one packed Version: the page merges both streams
//     in version order and never moves the cursor past a version it has
//     not looked at in either.
//  4. A cursor below the feed's floor (pruned tombstones), or below the
//     version at which the store's price lists changed, gets a resync: a
//     paged snapshot of the records that concern the store, then its feed
//     entries between the old cursor and the snapshot's version. Feed
//     entries below the floor are pruned too (feed.go); a resync from a
//     cursor below a store's pruned entries first sends the
//     central-authored events touching the store from the event store.
//  5. Every read a pull makes is of this node's local state: any node
//     serves pulls, and a pull to a node that lags the shop's cursor waits
//     until it has caught up rather than moving the cursor back.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// The replication ops of the FSM.
const (
	// OpReplicationPush ingests one batch of a shop's journal.
	OpReplicationPush = "replication.push"
	// OpReplicationTransfer applies an event authored by head office
	// (origin storeline.Central), such as stock delivered to a shop.
	OpReplicationTransfer = "replication.transfer"
)

// seenRetention is how long an (origin, ID) is remembered after its first
// ingest, so a till's retry after a shop restore is still counted once. A
// constant, not a config field: every replica must forget the same IDs at
// the same entry.
const seenRetention = 90 * 24 * time.Hour

// maxPushEntryEvents and maxPushEntryBytes bound one push entry, so its
// transaction fits Badger's limits on every replica whatever a shop sends.
const (
	maxPushEntryEvents = 500
	maxPushEntryBytes  = 2 << 20
)

// maxPageBytes bounds the items of a pull page, whatever the shop asks
// for, below a node's smallest commit batch (MaxBatchBytes, 1 MiB by
// default), so a page of big records still applies at the shop. A resync
// snapshot page is bounded by maxSnapshotItems instead.
const (
	maxPageBytes     = 512 << 10
	maxSnapshotItems = 1000
)

// Keys of the replication state, all metadata of the replica.
const (
	rpMark   = "repl/mark/" // store \0 epoch8 → seq8
	rpEvent  = "repl/ev/"   // origin \0 epoch8 seq8 → msgpack WireEvent
	rpBal    = "repl/bal/"  // account \0 asset → decimal string
	rpFeed   = "repl/f/"    // store \0 n8 → msgpack feedEntry
	rpFeedN  = "repl/fn/"   // store → n8, the store's feed length
	rpStat   = "repl/stat/" // store → msgpack ShopStats
	rpAssign = "repl/asg/"  // store → version8 of its last price-list change
	rpHQSeq  = "repl/hqseq" // → seq8 of the last central-authored event
	// rpEpochs lists the epochs a store has marks of, so a push reads
	// them by point lookups rather than a scan (a scan inside the FSM's
	// write transaction sorts all its pending writes). Absent in state
	// written before it existed: the first push rebuilds it by a scan.
	rpEpochs = "repl/mep/" // store → epoch8...
	// rpSeenLow is a lower bound on the times of the seen set's expiry
	// entries (all ones: there are none), so a push scans for expired
	// entries only when some may be due. Absent: unknown, scan.
	rpSeenLow = "repl/seenlow" // → at8
	// rpSeen is the seen set: origin \0 id16 → at8 (Unix ms) idx8, idx
	// the Raft index of the entry whose expiry record lists the ID (state
	// written before the records existed: at8 alone).
	rpSeen = "repl/seen/"
	// rpSeenX is the expiry order of the seen set, one record per entry
	// that stamped IDs: at8 \0 idx8 → (origin \0 id16)..., pruned as a
	// unit. State written before the records existed has a key per ID
	// instead, at8 origin \0 id16 → "" (an origin is a non-empty ID, so
	// the byte after at8 tells the two forms apart); both are pruned.
	rpSeenX = "repl/seenx/"
	// rpHQID indexes central-authored events by ID: id16 → seq8 (epoch
	// 1), so a transfer retried after its idempotency record and its
	// seen entry were pruned finds what it did. Absent for events applied
	// before it existed.
	rpHQID = "repl/hqid/"
	// rpResv indexes a shop's reservations of goods by ID: origin \0
	// id16 → epoch8 seq8 of the stored event (reservations.go).
	rpResv = "repl/resv/"
	// rpSaleDate indexes a shop's receipts and returns by business date:
	// origin \0 date \0 epoch8 seq8 → "", so a report over a few dates
	// reads their sales rather than the whole history (turnover.go).
	// Events are never deleted from central's state, so neither are these.
	rpSaleDate = "repl/sd/"
	// rpSaleLow is, per origin and epoch, the seq of the first event of
	// the epoch a build with rpSaleDate applied: origin \0 epoch8 →
	// seq8. An epoch's events apply in seq order (above its mark), so
	// every sale at or above it is indexed and none below; an epoch
	// without one holds only sales of earlier builds. Kept per epoch, not
	// per store, because an older epoch's tail may arrive after a newer
	// epoch's events (a shop restored from a backup).
	rpSaleLow = "repl/sdlow/"
)

func saleDateKey(origin storeline.StoreID, date storeline.Date, epoch, seq uint64) string {
	return rpSaleDate + string(origin) + "\x00" + string(date) + "\x00" + string(ledger.PutU64(epoch)) + string(ledger.PutU64(seq))
}

func saleLowKey(origin storeline.StoreID, epoch uint64) string {
	return rpSaleLow + string(origin) + "\x00" + string(ledger.PutU64(epoch))
}

func reservationKey(origin storeline.StoreID, id storeline.EventID) string {
	return rpResv + string(origin) + "\x00" + string(id[:])
}

func markKey(store storeline.StoreID, epoch uint64) string {
	return rpMark + string(store) + "\x00" + string(ledger.PutU64(epoch))
}

func seenKey(origin storeline.StoreID, id storeline.EventID) string {
	return rpSeen + string(origin) + "\x00" + string(id[:])
}

func eventKey(origin storeline.StoreID, epoch, seq uint64) string {
	return rpEvent + string(origin) + "\x00" + string(ledger.PutU64(epoch)) + string(ledger.PutU64(seq))
}

func balKey(account string, asset storeline.Asset) string {
	return rpBal + account + "\x00" + string(asset)
}

func feedKey(store storeline.StoreID, n uint64) string {
	return rpFeed + string(store) + "\x00" + string(ledger.PutU64(n))
}

// feedEntry is one item of a store's feed: a stored event (by origin and
// position) or a rejection.
type feedEntry struct {
	Version uint64                     `msgpack:"v"`
	Origin  string                     `msgpack:"o,omitempty"`
	Epoch   uint64                     `msgpack:"e,omitempty"`
	Seq     uint64                     `msgpack:"s,omitempty"`
	Rej     *replication.WireRejection `msgpack:"r,omitempty"`
}

// ShopStats is what central's state knows of one shop's replication; it
// is FSM state, so every node reports the same.
type ShopStats struct {
	// LastPush is the leader's time of the last batch (Unix ms).
	LastPushMs int64 `msgpack:"t"`
	// Acked is the highest applied position of the shop's latest epoch.
	Acked replication.Position `msgpack:"a"`
	// Batches counts push entries; Events events applied (rejections
	// included); Duplicates events skipped as already seen by ID; Below
	// events resent at or below the mark; Rejections events refused;
	// Gaps batches answered with a gap.
	Batches    uint64 `msgpack:"b"`
	Events     uint64 `msgpack:"n"`
	Duplicates uint64 `msgpack:"d"`
	Below      uint64 `msgpack:"w"`
	Rejections uint64 `msgpack:"r"`
	Gaps       uint64 `msgpack:"g"`
}

func replicationOps() []Op {
	return []Op{
		{OpReplicationPush, applyPush},
		{OpReplicationTransfer, applyHQTransfer},
		{OpFeedPrune, applyFeedPrune}, // feed.go
	}
}

// pushPayload is a push entry: the batch as the shop sent it (wire form),
// checked by the server of the node that took it.
type pushPayload struct {
	Store string `msgpack:"s"`
	Epoch uint64 `msgpack:"e"`
	// Events are msgpack WireEvents, stored as they are.
	Events []msgpack.RawMessage `msgpack:"ev"`
}

// pushOutcome is the body of a push entry's result.
type pushOutcome struct {
	Acked      replication.Position       `msgpack:"a"`
	Gap        *replication.Position      `msgpack:"g,omitempty"`
	Applied    int                        `msgpack:"n"`
	Duplicates int                        `msgpack:"d"`
	Below      int                        `msgpack:"b"`
	Rejections replication.WireRejections `msgpack:"r,omitempty"`
	Marks      replication.WireMarks      `msgpack:"m,omitempty"`
}

// txIngest is replication.IngestStore over an entry's transaction. It
// remembers what SeenAt read, so SetSeen of the same ID does not read it
// again, the IDs it stamped, for the entry's expiry record (written by
// writeExpiry), and the earliest time it stamped, for rpSeenLow.
type txIngest struct {
	tx    *Tx
	seen  map[string][]byte
	minAt int64
	wrote bool
	// stamped lists, by time stamped, the origin \0 id16 of each ID.
	stamped map[int64][]byte
	// mark0 is the last mark Mark read: for a push, the mark before it.
	mark0 uint64
}

func newTxIngest(tx *Tx) *txIngest {
	return &txIngest{tx: tx, seen: map[string][]byte{}, stamped: map[int64][]byte{}}
}

func (s *txIngest) Mark(store storeline.StoreID, epoch uint64) (uint64, error) {
	v, err := s.tx.Meta(markKey(store, epoch))
	s.mark0 = ledger.U64(v)
	return s.mark0, err
}

func (s *txIngest) SetMark(store storeline.StoreID, epoch, seq uint64) error {
	k := markKey(store, epoch)
	old, err := s.tx.Meta(k)
	if err != nil {
		return err
	}
	if old == nil {
		if err := addEpoch(s.tx, store, epoch); err != nil {
			return err
		}
	}
	return s.tx.SetMeta(k, ledger.PutU64(seq))
}

func (s *txIngest) SeenAt(origin storeline.StoreID, id storeline.EventID) (int64, bool, error) {
	k := seenKey(origin, id)
	v, err := s.tx.Meta(k)
	if err != nil {
		return 0, false, err
	}
	s.seen[k] = v
	if v == nil {
		return 0, false, nil
	}
	// at8, then (since the expiry records) the entry's index.
	return int64(ledger.U64(v[:min(len(v), 8)])), true, nil
}

func (s *txIngest) SetSeen(origin storeline.StoreID, id storeline.EventID, at int64) error {
	k := seenKey(origin, id)
	old, known := s.seen[k]
	if !known {
		var err error
		if old, err = s.tx.Meta(k); err != nil {
			return err
		}
	}
	if old != nil {
		// A duplicate beyond retention: forget the old expiry entry, or
		// the old record would forget the ID when it expires.
		if err := forgetExpiry(s.tx, old, k[len(rpSeen):]); err != nil {
			return err
		}
	}
	if err := s.tx.SetMeta(k, append(ledger.PutU64(uint64(at)), ledger.PutU64(s.tx.Index)...)); err != nil {
		return err
	}
	if !s.wrote || at < s.minAt {
		s.minAt, s.wrote = at, true
	}
	s.stamped[at] = append(s.stamped[at], k[len(rpSeen):]...)
	return nil
}

// expiryKey is the key of the expiry record of the IDs entry idx stamped
// at at.
func expiryKey(at, idx uint64) string {
	return rpSeenX + string(ledger.PutU64(at)) + "\x00" + string(ledger.PutU64(idx))
}

// writeExpiry writes the expiry record of the IDs SetSeen stamped: one
// key per entry (and time), not one per ID. Another txIngest of the same
// entry (a push's cost transfer) may have written the record already: it
// is extended, not replaced.
func (s *txIngest) writeExpiry() error {
	ats := make([]int64, 0, len(s.stamped))
	for at := range s.stamped {
		ats = append(ats, at)
	}
	sort.Slice(ats, func(i, j int) bool { return ats[i] < ats[j] })
	for _, at := range ats {
		k := expiryKey(uint64(at), s.tx.Index)
		v, err := s.tx.Meta(k)
		if err != nil {
			return err
		}
		if err := s.tx.SetMeta(k, append(append([]byte(nil), v...), s.stamped[at]...)); err != nil {
			return err
		}
	}
	clear(s.stamped)
	return nil
}

// forgetExpiry takes the ID oid (origin \0 id16), whose seen entry holds
// old, out of the seen set's expiry order: its own key (old form) or its
// entry's record.
func forgetExpiry(tx *Tx, old []byte, oid string) error {
	if len(old) != 16 {
		return tx.SetMeta(rpSeenX+string(old)+oid, nil)
	}
	k := expiryKey(ledger.U64(old[:8]), ledger.U64(old[8:]))
	v, err := tx.Meta(k)
	if err != nil || v == nil {
		return err
	}
	out := make([]byte, 0, len(v))
	for _, x := range expiryIDs(v) {
		if x != oid {
			out = append(out, x...)
		}
	}
	if len(out) == 0 {
		return tx.SetMeta(k, nil)
	}
	return tx.SetMeta(k, out)
}

// expiryIDs splits an expiry record into its origin \0 id16 items. It
// stops at a malformed tail (none is ever written), which is dropped
// with the record rather than stopping every replica's apply.
func expiryIDs(v []byte) []string {
	var out []string
	for len(v) > 0 {
		i := bytes.IndexByte(v, 0)
		if i < 1 || len(v) < i+1+16 {
			break
		}
		out = append(out, string(v[:i+1+16]))
		v = v[i+1+16:]
	}
	return out
}

// addEpoch records that store has a mark of epoch in rpEpochs.
func addEpoch(tx *Tx, store storeline.StoreID, epoch uint64) error {
	es, err := markEpochs(tx, store)
	if err != nil {
		return err
	}
	i := sort.Search(len(es), func(i int) bool { return es[i] >= epoch })
	if i < len(es) && es[i] == epoch {
		return nil
	}
	es = append(es, 0)
	copy(es[i+1:], es[i:])
	es[i] = epoch
	return putEpochs(tx, store, es)
}

func putEpochs(tx *Tx, store storeline.StoreID, es []uint64) error {
	b := make([]byte, 0, 8*len(es))
	for _, e := range es {
		b = append(b, ledger.PutU64(e)...)
	}
	return tx.SetMeta(rpEpochs+string(store), b)
}

// markEpochs returns the epochs store has marks of, in order, from
// rpEpochs, or (state written before rpEpochs existed) from a scan of the
// marks, which it then records.
func markEpochs(tx *Tx, store storeline.StoreID) ([]uint64, error) {
	v, err := tx.Meta(rpEpochs + string(store))
	if err != nil {
		return nil, err
	}
	if v != nil {
		es := make([]uint64, 0, len(v)/8)
		for i := 0; i+8 <= len(v); i += 8 {
			es = append(es, ledger.U64(v[i:i+8]))
		}
		return es, nil
	}
	ps, err := marks(tx.ReplicaTxn, store)
	if err != nil {
		return nil, err
	}
	es := make([]uint64, len(ps))
	for i, p := range ps {
		es[i] = p.Epoch
	}
	return es, putEpochs(tx, store, es)
}

// entryMarks is marks within an entry: point lookups of the epochs
// rpEpochs lists.
func entryMarks(tx *Tx, store storeline.StoreID) ([]replication.Position, error) {
	es, err := markEpochs(tx, store)
	if err != nil {
		return nil, err
	}
	var out []replication.Position
	for _, e := range es {
		v, err := tx.Meta(markKey(store, e))
		if err != nil {
			return nil, err
		}
		if v != nil {
			out = append(out, replication.Position{Epoch: e, Seq: ledger.U64(v)})
		}
	}
	return out, nil
}

// marks returns every epoch's mark of store.
func marks(rt *ledger.ReplicaTxn, store storeline.StoreID) ([]replication.Position, error) {
	var out []replication.Position
	p := rpMark + string(store) + "\x00"
	err := rt.ScanMeta(p, func(k string, v []byte) (bool, error) {
		out = append(out, replication.Position{Epoch: ledger.U64([]byte(k[len(p):])), Seq: ledger.U64(v)})
		return true, nil
	})
	return out, err
}

// pruneSeen forgets seen entries older than the retention, at most limit.
// It scans only when rpSeenLow says some may be due, and keeps rpSeenLow a
// lower bound of the expiry entries' times; st is the entry's ingest
// store (nil if it stamped nothing).
func pruneSeen(tx *Tx, st *txIngest, limit int) error {
	horizon := uint64(tx.At.Add(-seenRetention).UnixMilli())
	lv, err := tx.Meta(rpSeenLow)
	if err != nil {
		return err
	}
	if lv != nil && ledger.U64(lv) >= horizon {
		if st != nil && st.wrote && uint64(st.minAt) < ledger.U64(lv) {
			return tx.SetMeta(rpSeenLow, ledger.PutU64(uint64(st.minAt)))
		}
		return nil
	}
	// victims are the expiry keys due, each with the IDs it forgets; at
	// most limit IDs, but always the first key, whatever its size (a
	// record lists at most one entry's IDs), so pruning moves on.
	type victim struct {
		key string
		ids []string
	}
	var victims []victim
	n := 0
	low := uint64(1<<64 - 1) // no expiry entry left
	err = tx.ScanMeta(rpSeenX, func(k string, v []byte) (bool, error) {
		rest := k[len(rpSeenX):]
		if len(rest) < 8 {
			low = 0 // malformed: keep scanning every entry, as before
			return false, nil
		}
		at := ledger.U64([]byte(rest[:8]))
		if at >= horizon {
			low = at
			return false, nil
		}
		ids := []string{rest[8:]} // a key per ID (state from before records)
		if len(rest) > 8 && rest[8] == 0 {
			ids = expiryIDs(v)
		}
		if len(victims) > 0 && n+len(ids) > limit {
			low = at
			return false, nil
		}
		victims = append(victims, victim{k, ids})
		n += len(ids)
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, vc := range victims {
		if err := tx.SetMeta(vc.key, nil); err != nil {
			return err
		}
		for _, id := range vc.ids {
			if err := tx.SetMeta(rpSeen+id, nil); err != nil {
				return err
			}
		}
	}
	return tx.SetMeta(rpSeenLow, ledger.PutU64(low))
}

// lowerSeenLow keeps rpSeenLow a lower bound after an expiry entry at at
// was written outside a push.
func lowerSeenLow(tx *Tx, at int64) error {
	lv, err := tx.Meta(rpSeenLow)
	if err != nil || lv == nil || uint64(at) >= ledger.U64(lv) {
		return err
	}
	return tx.SetMeta(rpSeenLow, ledger.PutU64(uint64(at)))
}

// applier applies accepted events of one entry: it stores them, adds
// their postings to the balances (written once per entry), and feeds each
// to the other stores whose accounts it touches.
type applier struct {
	tx     *Tx
	deltas map[string]decimal.Decimal
	order  []string
	items  map[storeline.ItemID]bool
	// excise is each item's excise flag, read with its existence for the
	// back office's index (false for an item that does not exist).
	excise map[storeline.ItemID]bool
	stores map[storeline.StoreID]bool
	raw    map[uint64][]byte // wire bytes of a push's events, by seq
	// lines holds the items each receipt of a push sells, by seq (the
	// push's bodies are not decoded; see receiptLines).
	lines map[uint64][]storeline.ItemID
	// stored lists the events accept stored, in order, and keys the
	// balKeys of each one's postings (accept appends them; a push appends
	// to stored each event accept took, so the two stay aligned).
	stored []*storeline.Event
	keys   [][]string
	// balances holds what flush wrote, by balKey (zero for a deleted
	// balance).
	balances map[string]decimal.Decimal
	// stock, when not nil, holds every stock balance of the pushing store
	// as the entry stood before flush (pushStockBook): flush takes the
	// old values of those from it rather than reading each.
	stock *txBook
	// saleLows holds the rpSaleLow keys this entry found or wrote, so a
	// push reads its epoch's once.
	saleLows map[string]bool
}

func newApplier(tx *Tx) *applier {
	return &applier{tx: tx, deltas: map[string]decimal.Decimal{}, items: map[storeline.ItemID]bool{},
		excise: map[storeline.ItemID]bool{}, stores: map[storeline.StoreID]bool{}, saleLows: map[string]bool{}}
}

func (a *applier) itemExists(id storeline.ItemID) (bool, error) {
	if ok, seen := a.items[id]; seen {
		return ok, nil
	}
	f, cached := a.tx.items[id]
	if !cached {
		var p itemPeek
		ok, err := a.tx.GetMaster(storeline.KindItem, string(id), &p)
		if err != nil {
			return false, err
		}
		f = itemFlags{exists: ok, excise: ok && p.excise}
		if a.tx.items != nil {
			if len(a.tx.items) >= maxCachedItems {
				clear(a.tx.items) // bounded memory, whatever the catalogue
			}
			a.tx.items[id] = f
		}
	}
	a.items[id] = f.exists
	a.excise[id] = f.excise
	return f.exists, nil
}

// maxCachedItems bounds the FSM's item cache (FSM.items).
const maxCachedItems = 1 << 16

// itemPeek decodes of a stored storeline.Item only its Excise flag: the
// applier reads an item once for its existence and the back office's
// excise index, without decoding the rest.
type itemPeek struct{ excise bool }

var _ storeline.Record = (*itemPeek)(nil)

func (*itemPeek) MasterKind() storeline.MasterKind { return storeline.KindItem }
func (*itemPeek) MasterID() string                 { return "" }
func (*itemPeek) UniqueKeys() []string             { return nil }
func (*itemPeek) Validate() error                  { return nil }

// DecodeMsgpack reads the item's map (field names as keys, as msgpack
// encodes a storeline.Item), keeping Excise and skipping the rest.
func (p *itemPeek) DecodeMsgpack(d *msgpack.Decoder) error {
	n, err := d.DecodeMapLen()
	if err != nil {
		return err
	}
	for range max(n, 0) {
		k, err := d.DecodeString()
		if err != nil {
			return err
		}
		if k == "Excise" {
			p.excise, err = d.DecodeBool()
		} else {
			err = d.Skip()
		}
		if err != nil {
			return fmt.Errorf("item field %q: %w", k, err)
		}
	}
	return nil
}

func (a *applier) storeExists(id storeline.StoreID) (bool, error) {
	if ok, seen := a.stores[id]; seen {
		return ok, nil
	}
	ok, err := a.tx.GetMaster(storeline.KindStore, string(id), nil)
	if err != nil {
		return false, err
	}
	a.stores[id] = ok
	return ok, nil
}

// check returns the business error that refuses ev, or nil: a shop's
// event moves only its own accounts (and may hand rights back to head
// office), and every item a receipt sells, and every item whose units a
// posting moves, must exist at central.
func (a *applier) check(ev *storeline.Event) (error, error) {
	if bad := foreignPosting(ev); bad != nil {
		return bad, nil
	}
	items := a.lines[ev.Seq]
	if r, ok := ev.Body.(*storeline.Receipt); ok {
		items = make([]storeline.ItemID, len(r.Lines))
		for j, ln := range r.Lines {
			items[j] = ln.Item
		}
	}
	for j, item := range items {
		ok, err := a.itemExists(item)
		if err != nil {
			return nil, err
		}
		if !ok {
			return &storeline.Error{Op: "central.ingest", Kind: storeline.NotFound, Field: fmt.Sprintf("lines[%d].item", j),
				Err: fmt.Errorf("unknown item %q", item)}, nil
		}
	}
	for j, p := range ev.Postings {
		id, ok := strings.CutPrefix(string(p.Asset), "item:")
		if !ok {
			continue
		}
		ok, err := a.itemExists(storeline.ItemID(id))
		if err != nil {
			return nil, err
		}
		if !ok {
			return &storeline.Error{Op: "central.ingest", Kind: storeline.NotFound, Field: fmt.Sprintf("postings[%d].asset", j),
				Err: fmt.Errorf("unknown item %q", id)}, nil
		}
	}
	return nil, nil
}

// foreignPosting refuses a shop's event whose postings move an account
// that is not the shop's own (storeOfAccount): another shop's stock or
// rights, or an account of no shop. Only head office moves balances
// between holders; every debit of an account is authored by its holder
// (DESIGN.md, "Safety while offline"). The one exception is a credit to
// head office's account (a PointsHandback). Central's own events are not
// checked.
func foreignPosting(ev *storeline.Event) error {
	if ev.Origin == storeline.Central {
		return nil
	}
	for j, p := range ev.Postings {
		s, ok := storeOfAccount(p.Account)
		if ok && (s == ev.Origin || s == storeline.Central && p.Amount.IsPositive()) {
			continue
		}
		return &storeline.Error{Op: "central.ingest", Kind: storeline.Forbidden, Field: fmt.Sprintf("postings[%d].account", j),
			Err: fmt.Errorf("an event of %s moves account %q, not its own", ev.Origin, p.Account)}
	}
	return nil
}

// touched returns the stores other than ev's origin whose accounts ev's
// postings move (an account is kind/store/...).
func (a *applier) touched(ev *storeline.Event) ([]storeline.StoreID, error) {
	var out []storeline.StoreID
	for _, p := range ev.Postings {
		s, ok := storeOfAccount(p.Account)
		if !ok || s == ev.Origin || !storeline.ValidID(string(s)) || slicesContains(out, s) {
			continue
		}
		ok, err := a.storeExists(s)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// storeOfAccount names the store an account belongs to: the second
// segment (stock/<store>/…, cash/<store>/…), except for the accounts of a
// supplier (payable/<supplier>, supplier/<supplier>), of a buyer
// (receivable/<buyer>: a buyer may share a shop's ID) and of a bank
// (bank/<bank>), which belong to no store, and a customer's points
// (points/<programme>/<customer>/<store>), whose store comes last.
//
// It cuts the segments it needs rather than splitting the account (every
// posting of every pushed event comes through here), with the same
// answers as strings.Split's parts (storeOfAccountSplit, the test's
// reference).
func storeOfAccount(acct string) (storeline.StoreID, bool) {
	kind, rest, ok := strings.Cut(acct, "/")
	if !ok {
		return "", false
	}
	second, rest, more := strings.Cut(rest, "/")
	switch kind {
	case "payable", "supplier", "receivable", "bank":
		return "", false
	case "points":
		if !more {
			return "", false
		}
		_, rest, ok := strings.Cut(rest, "/")
		if !ok {
			return "", false
		}
		fourth, _, _ := strings.Cut(rest, "/")
		return storeline.StoreID(fourth), true
	}
	return storeline.StoreID(second), true
}

func slicesContains(ss []storeline.StoreID, s storeline.StoreID) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// accept stores ev, queues its postings, and feeds it to the stores it
// touches.
func (a *applier) accept(ev storeline.Event) error {
	enc := a.raw[ev.Seq]
	if enc == nil {
		w, err := replication.EventToWire(ev)
		if err != nil {
			return err
		}
		if enc, err = msgpack.Marshal(&w); err != nil {
			return err
		}
	}
	if err := a.tx.SetMeta(eventKey(ev.Origin, ev.Epoch, ev.Seq), enc); err != nil {
		return err
	}
	if err := a.indexSale(&ev); err != nil {
		return err
	}
	switch ev.Kind {
	case storeline.KindCustomerRegistered:
		if err := mergeRegistration(a.tx, &ev, enc); err != nil { // customers.go
			return err
		}
	case storeline.KindReservation:
		pos := append(ledger.PutU64(ev.Epoch), ledger.PutU64(ev.Seq)...)
		if err := a.tx.SetMeta(reservationKey(ev.Origin, ev.ID), pos); err != nil {
			return err
		}
	}
	keys := make([]string, len(ev.Postings))
	a.keys = append(a.keys, keys)
	for i, p := range ev.Postings {
		k := balKey(p.Account, p.Asset)
		keys[i] = k
		d, ok := a.deltas[k]
		if !ok {
			a.order = append(a.order, k)
			a.deltas[k] = zeroPlus(p.Amount)
			continue
		}
		a.deltas[k] = d.Add(p.Amount)
	}
	stores, err := a.touched(&ev)
	if err != nil {
		return err
	}
	for _, s := range stores {
		if err := appendFeed(a.tx, s, feedEntry{Origin: string(ev.Origin), Epoch: ev.Epoch, Seq: ev.Seq}); err != nil {
			return err
		}
	}
	return nil
}

// indexSale keeps the sales date index (rpSaleDate) of ev, and its
// epoch's rpSaleLow: the first event of the epoch this build applies
// marks where the index starts.
func (a *applier) indexSale(ev *storeline.Event) error {
	if lk := saleLowKey(ev.Origin, ev.Epoch); !a.saleLows[lk] {
		v, err := a.tx.Meta(lk)
		if err != nil {
			return err
		}
		if v == nil {
			if err := a.tx.SetMeta(lk, ledger.PutU64(ev.Seq)); err != nil {
				return err
			}
		}
		a.saleLows[lk] = true
	}
	if ev.Kind != storeline.KindReceipt && ev.Kind != storeline.KindReturn {
		return nil
	}
	return a.tx.SetMeta(saleDateKey(ev.Origin, ev.BusinessDate, ev.Epoch, ev.Seq), []byte{})
}

// flush writes the queued balances, and the points owed (rpDebtOwed,
// loyalty.go) by what they moved of debt balances.
func (a *applier) flush() error {
	var debt debtMoves
	for _, k := range a.order {
		var cur decimal.Decimal
		if a.stock != nil && strings.HasPrefix(k, a.stock.whole) {
			// What the read below gives: the stored string parsed, or
			// decimal.Zero if there is none.
			if cur = a.stock.decimal(k); a.stock.err != nil {
				return a.stock.err
			}
		} else {
			var err error
			if cur, err = a.tx.cache.balance(a.tx.ReplicaTxn, k); err != nil { // backoffice_cogs.go
				return err
			}
		}
		was := cur
		cur, v, read, err := balanceSum(cur, a.deltas[k]) // balsum.go
		if err != nil {
			return fmt.Errorf("balance %q: %w", k, err)
		}
		debt.note(k, was, read)
		if a.balances != nil {
			a.balances[k] = cur
		}
		if err := a.tx.SetMeta(k, v); err != nil {
			return err
		}
		a.tx.cache.wroteBalance(k, v, read)
	}
	return debt.write(a.tx.ReplicaTxn)
}

// appendFeed adds an entry to store's feed at the next version of tx.
func appendFeed(tx *Tx, store storeline.StoreID, e feedEntry) error {
	v, err := tx.NextVersion()
	if err != nil {
		return err
	}
	e.Version = v.Pack()
	nv, err := tx.Meta(rpFeedN + string(store))
	if err != nil {
		return err
	}
	n := ledger.U64(nv) + 1
	enc, err := msgpack.Marshal(&e)
	if err != nil {
		return err
	}
	if err := tx.SetMeta(feedKey(store, n), enc); err != nil {
		return err
	}
	return tx.SetMeta(rpFeedN+string(store), ledger.PutU64(n))
}

// receiptLines returns, by seq, the items each receipt of evs sells, read
// from its body without decoding the rest; an unreadable body refuses the
// entry (Invalid), as decoding it whole did.
func receiptLines(evs replication.WireEvents) (map[uint64][]storeline.ItemID, error) {
	out := map[uint64][]storeline.ItemID{}
	for i := range evs {
		if storeline.EventKind(evs[i].Kind) != storeline.KindReceipt {
			continue
		}
		items, err := receiptItems(evs[i].Body)
		if err != nil {
			return nil, storeline.Invalidf(fmt.Sprintf("ev[%d].body", i), "receipt body: %v", err)
		}
		out[evs[i].Seq] = items
	}
	return out, nil
}

// receiptItems reads Lines[].Item of a storeline.Receipt's msgpack body
// (map-encoded, field names as keys), skipping everything else: in place
// (receiptItemsInPlace) when the body has the forms msgpack encodes a
// receipt in, else through msgpack's decoder, which also gives the error
// of a body that is not a receipt's.
func receiptItems(body []byte) ([]storeline.ItemID, error) {
	if items, ok := receiptItemsInPlace(body); ok && !slowBooks.Load() { // slowBooks: the general path tests compare with
		return items, nil
	}
	return receiptItemsDecoded(body)
}

// receiptItemsInPlace is receiptItemsDecoded over the body's bytes, with
// no decoder and no copy of what it steps over (a receipt's body is most
// of a pushed event, and every replica reads it). It reads only the
// usual forms (a map header, short string keys, a string item) and
// answers ok false on anything else, or on anything malformed, for
// receiptItemsDecoded to decide: where it answers, it must answer what
// receiptItemsDecoded does (TestReceiptItemsInPlace).
func receiptItemsInPlace(body []byte) (items []storeline.ItemID, ok bool) {
	r := msgSlice{b: body}
	n, ok := r.mapLen()
	if !ok {
		return nil, false
	}
	for range n {
		k, ok := r.str()
		if !ok {
			return nil, false
		}
		if string(k) != "Lines" {
			if !r.skip() {
				return nil, false
			}
			continue
		}
		m, ok := r.arrayLen()
		if !ok || m > len(r.b)-r.i {
			return nil, false
		}
		items = make([]storeline.ItemID, m)
		for j := range items {
			fields, ok := r.mapLen()
			if !ok {
				return nil, false
			}
			for range fields {
				f, ok := r.str()
				if !ok {
					return nil, false
				}
				if string(f) != "Item" {
					if !r.skip() {
						return nil, false
					}
					continue
				}
				item, ok := r.str()
				if !ok {
					return nil, false
				}
				items[j] = storeline.ItemID(item)
			}
		}
	}
	return items, true
}

// msgSlice reads a few msgpack forms in place (receiptItemsInPlace).
type msgSlice struct {
	b []byte
	i int
}

// mapLen reads a map header (fixmap, map16).
func (r *msgSlice) mapLen() (int, bool) {
	if r.i >= len(r.b) {
		return 0, false
	}
	switch c := r.b[r.i]; {
	case msgpcode.IsFixedMap(c):
		r.i++
		return int(c & msgpcode.FixedMapMask), true
	case c == msgpcode.Map16 && r.i+3 <= len(r.b):
		n := int(r.b[r.i+1])<<8 | int(r.b[r.i+2])
		r.i += 3
		return n, true
	}
	return 0, false
}

// arrayLen reads an array header (fixarray, array16).
func (r *msgSlice) arrayLen() (int, bool) {
	if r.i >= len(r.b) {
		return 0, false
	}
	switch c := r.b[r.i]; {
	case msgpcode.IsFixedArray(c):
		r.i++
		return int(c & msgpcode.FixedArrayMask), true
	case c == msgpcode.Array16 && r.i+3 <= len(r.b):
		n := int(r.b[r.i+1])<<8 | int(r.b[r.i+2])
		r.i += 3
		return n, true
	}
	return 0, false
}

// str reads a string (fixstr, str8), as a slice of the body.
func (r *msgSlice) str() ([]byte, bool) {
	if r.i >= len(r.b) {
		return nil, false
	}
	n, at := 0, r.i+1
	switch c := r.b[r.i]; {
	case msgpcode.IsFixedString(c):
		n = int(c & msgpcode.FixedStrMask)
	case c == msgpcode.Str8 && r.i+2 <= len(r.b):
		n, at = int(r.b[r.i+1]), r.i+2
	default:
		return nil, false
	}
	if n > len(r.b)-at {
		return nil, false
	}
	r.i = at + n
	return r.b[at:r.i], true
}

// skip steps over one value of any form.
func (r *msgSlice) skip() bool {
	n, err := replication.SkipValue(r.b[r.i:])
	r.i += n
	return err == nil
}

// receiptItemsDecoded is receiptItems through msgpack's decoder.
func receiptItemsDecoded(body []byte) ([]storeline.ItemID, error) {
	d := msgpack.GetDecoder()
	defer msgpack.PutDecoder(d)
	d.Reset(bytes.NewReader(body))
	n, err := d.DecodeMapLen()
	if err != nil {
		return nil, err
	}
	var items []storeline.ItemID
	for range n {
		k, err := d.DecodeString()
		if err != nil {
			return nil, err
		}
		if k != "Lines" {
			if err := d.Skip(); err != nil {
				return nil, err
			}
			continue
		}
		m, err := d.DecodeArrayLen()
		if err != nil {
			return nil, err
		}
		items = make([]storeline.ItemID, max(m, 0))
		for j := range items {
			fields, err := d.DecodeMapLen()
			if err != nil {
				return nil, fmt.Errorf("Lines[%d]: %w", j, err)
			}
			for range fields {
				f, err := d.DecodeString()
				if err == nil {
					if f == "Item" {
						var item string
						item, err = d.DecodeString()
						items[j] = storeline.ItemID(item)
					} else {
						err = d.Skip()
					}
				}
				if err != nil {
					return nil, fmt.Errorf("Lines[%d]: %w", j, err)
				}
			}
		}
	}
	return items, nil
}

// pushPayloadWire is pushPayload as replication.Decode reads it: the
// events decoded, each with its wire bytes (a slice of the payload).
type pushPayloadWire struct {
	Store  string                 `msgpack:"s"`
	Epoch  uint64                 `msgpack:"e"`
	Events replication.WireEvents `msgpack:"ev"`
}

// decodePushPayload decodes a push entry in one pass, keeping each event's
// wire bytes as a slice of payload (stored as they are). ok is false if
// the payload is not a well-formed push entry or holds too many events:
// the caller then decodes it the general way, which refuses it or not
// exactly as before.
func decodePushPayload(payload []byte) (p pushPayload, evs replication.WireEvents, ok bool) {
	var w pushPayloadWire
	if err := replication.Decode(payload, &w); err != nil || len(w.Events) > maxPushEntryEvents {
		return p, nil, false
	}
	p = pushPayload{Store: w.Store, Epoch: w.Epoch}
	if w.Events != nil {
		p.Events = make([]msgpack.RawMessage, len(w.Events))
		for i := range w.Events {
			p.Events[i] = w.Events[i].Wire()
		}
	}
	return p, w.Events, true
}

func applyPush(tx *Tx, payload []byte) ([]byte, error) {
	p, evs, ok := decodePushPayload(payload)
	if !ok {
		p = pushPayload{}
		if err := msgpack.Unmarshal(payload, &p); err != nil {
			return nil, storeline.Invalidf("", "undecodable push: %v", err)
		}
		if len(p.Events) > maxPushEntryEvents {
			return nil, storeline.Errorf(storeline.TooLarge, "central.push", "%d events in one entry, over %d", len(p.Events), maxPushEntryEvents)
		}
		evs = make(replication.WireEvents, len(p.Events))
		for i, r := range p.Events {
			if err := msgpack.Unmarshal(r, &evs[i]); err != nil {
				return nil, storeline.Invalidf(fmt.Sprintf("ev[%d]", i), "undecodable event: %v", err)
			}
		}
	}
	// The node that took the batch checked it whole (replication.CheckPush,
	// bodies decoded). Check it again but for the bodies, so an entry no
	// node checked cannot reach Ingest; of the bodies, every replica reads
	// only what it decides on (the items a receipt sells), and the same way.
	req := replication.PushRequest{V: replication.ProtocolVersion, Store: p.Store, Epoch: p.Epoch, Events: evs}
	raw := make(map[uint64][]byte, len(p.Events))
	for i, r := range p.Events {
		raw[evs[i].Seq] = r
	}
	b, err := replication.CheckPushEntry(storeline.StoreID(p.Store), &req)
	if err != nil {
		return nil, err
	}
	a := newApplier(tx)
	a.raw = raw
	a.balances = map[string]decimal.Decimal{}
	if a.stock, err = pushStockBook(tx, b.Store, evs); err != nil { // backoffice_cogs.go
		return nil, err
	}
	if a.lines, err = receiptLines(evs); err != nil {
		return nil, err
	}
	apply := func(evs []storeline.Event) ([]error, error) {
		errs := make([]error, len(evs))
		for i := range evs {
			// Its dates and postings are read here, as every replica
			// reads them; the body's arithmetic was the shop's (Compute),
			// and the body is not decoded here (CheckPushEntry).
			if bad := evs[i].CheckFromShop(); bad != nil {
				errs[i] = bad
				continue
			}
			bad, err := a.check(&evs[i])
			if err != nil {
				return nil, err
			}
			if bad != nil {
				errs[i] = bad
				continue
			}
			if err := a.accept(evs[i]); err != nil {
				return nil, err
			}
			a.stored = append(a.stored, &evs[i])
		}
		return errs, a.flush()
	}
	st := newTxIngest(tx)
	res, err := replication.Ingest(st, b, tx.At.UnixMilli(), seenRetention, apply)
	if err != nil {
		return nil, err
	}
	if err := st.writeExpiry(); err != nil {
		return nil, err
	}
	out := pushOutcome{Acked: res.Acked, Gap: res.Gap, Applied: res.Applied, Duplicates: res.Duplicates, Below: res.Below}
	if out.Marks, err = entryMarks(tx, b.Store); err != nil {
		return nil, err
	}
	// Cost of sales and the back office's indexes (backoffice_cogs.go),
	// from what this entry has read and decoded already.
	if err := backOfficeAfterPush(tx, b.Store, pushedOf(a, st.mark0, &res, evs, out.Marks)); err != nil {
		return nil, err
	}
	for _, rj := range res.Rejections {
		w := replication.RejectionToWire(rj)
		out.Rejections = append(out.Rejections, w)
		if err := appendFeed(tx, b.Store, feedEntry{Rej: &w}); err != nil {
			return nil, err
		}
	}
	if err := updateStats(tx, b.Store, func(s *ShopStats) {
		s.LastPushMs = tx.At.UnixMilli()
		s.Batches++
		s.Events += uint64(res.Applied)
		s.Duplicates += uint64(res.Duplicates)
		s.Below += uint64(res.Below)
		s.Rejections += uint64(len(res.Rejections))
		if res.Gap != nil {
			s.Gaps++
		}
		if !res.Acked.Less(s.Acked) {
			s.Acked = res.Acked
		}
	}); err != nil {
		return nil, err
	}
	if err := pruneSeen(tx, st, 2*len(b.Events)+64); err != nil {
		return nil, err
	}
	return msgpack.Marshal(&out)
}

// pushedOf is what applyPush hands its back-office hook: the store's
// marks after the batch, and every event of the batch above mark0 (the
// mark before it) with whether the applier stored it, its wire form and
// its postings.
func pushedOf(a *applier, mark0 uint64, res *replication.IngestResult, evs replication.WireEvents, marks []replication.Position) *pushedEntry {
	p := &pushedEntry{marks: marks, excise: a.excise, balances: a.balances, stock: a.stock}
	if res.Gap != nil {
		return p // nothing applied: the hook reads what it needs
	}
	p.events = make(map[replication.Position]*pushedEvent, len(evs))
	for i := range evs {
		if evs[i].Seq > mark0 {
			p.events[replication.Position{Epoch: evs[i].Epoch, Seq: evs[i].Seq}] = nil
		}
	}
	bySeq := make(map[uint64]*replication.WireEvent, len(evs))
	for i := range evs {
		bySeq[evs[i].Seq] = &evs[i]
	}
	for i, ev := range a.stored {
		pos := replication.Position{Epoch: ev.Epoch, Seq: ev.Seq}
		if _, ok := p.events[pos]; ok {
			var keys []string // none: the cost pass builds them
			if len(a.keys) == len(a.stored) {
				keys = a.keys[i]
			}
			p.events[pos] = &pushedEvent{w: bySeq[ev.Seq], ps: ev.Postings, keys: keys}
		}
	}
	return p
}

func updateStats(tx *Tx, store storeline.StoreID, fn func(*ShopStats)) error {
	var s ShopStats
	v, err := tx.Meta(rpStat + string(store))
	if err != nil {
		return err
	}
	if v != nil {
		if err := msgpack.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("stats of %s: %w", store, err)
		}
	}
	fn(&s)
	enc, err := msgpack.Marshal(&s)
	if err != nil {
		return err
	}
	return tx.SetMeta(rpStat+string(store), enc)
}

// transferPayload is a central-authored event: its ID (chosen by the
// submitter, so a retry is recognised), why, and its postings.
type transferPayload struct {
	ID       storeline.EventID         `msgpack:"i"`
	Reason   string                    `msgpack:"r"`
	Ref      string                    `msgpack:"f,omitempty"`
	Postings []replication.WirePosting `msgpack:"p"`
}

func applyTransfer(tx *Tx, payload []byte) ([]byte, error) {
	var p transferPayload
	if err := msgpack.Unmarshal(payload, &p); err != nil {
		return nil, storeline.Invalidf("", "undecodable transfer: %v", err)
	}
	if p.ID.IsZero() {
		return nil, storeline.Invalidf("id", "a transfer needs an ID")
	}
	ev := storeline.Event{ID: p.ID, Origin: storeline.Central, Epoch: 1, SchemaVersion: storeline.SchemaVersion,
		Kind: storeline.KindTransfer, Body: &storeline.Transfer{Reason: p.Reason, Ref: p.Ref},
		OccurredAt: tx.At, BusinessDate: storeline.Date(tx.At.Format("2006-01-02"))}
	for i, w := range p.Postings {
		var amt decimal.Decimal
		if err := amt.UnmarshalBinary(w.Amount); err != nil {
			return nil, storeline.Invalidf(fmt.Sprintf("postings[%d].amount", i), "%v", err)
		}
		ev.Postings = append(ev.Postings, storeline.Posting{Account: w.Account, Asset: storeline.Asset(w.Asset), Amount: amt})
	}
	ev.Postings = storeline.MergePostings(ev.Postings)
	if len(ev.Postings) == 0 {
		return nil, storeline.Invalidf("postings", "a transfer moves something")
	}
	if err := storeline.CheckPostings(ev.Postings); err != nil {
		return nil, &storeline.Error{Kind: storeline.Invalid, Field: "postings", Err: err}
	}
	if seq, err := tx.Meta(rpHQID + string(ev.ID[:])); err != nil || seq != nil {
		return nil, err // a retry: applied already
	}
	if at, err := tx.Meta(seenKey(ev.Origin, ev.ID)); err != nil || at != nil {
		return nil, err // a retry: applied already
	}
	a := newApplier(tx)
	bad, err := a.check(&ev)
	if err != nil {
		return nil, err
	}
	if bad != nil {
		return nil, bad
	}
	seq8, err := tx.Meta(rpHQSeq)
	if err != nil {
		return nil, err
	}
	ev.Seq = ledger.U64(seq8) + 1
	if err := a.accept(ev); err != nil {
		return nil, err
	}
	if err := a.flush(); err != nil {
		return nil, err
	}
	// The stock positions it moves may go below zero or back above.
	ix, err := openIndex(tx)
	if err != nil {
		return nil, err
	}
	for i := range ev.Postings {
		if si, ok := stockItem(&ev.Postings[i]); ok {
			ix.touched[si] = true
		}
	}
	if err := ix.flush(); err != nil {
		return nil, err
	}
	st := newTxIngest(tx)
	if err := st.SetSeen(ev.Origin, ev.ID, tx.At.UnixMilli()); err != nil {
		return nil, err
	}
	if err := st.writeExpiry(); err != nil {
		return nil, err
	}
	if err := lowerSeenLow(tx, tx.At.UnixMilli()); err != nil {
		return nil, err
	}
	if err := tx.SetMeta(rpHQSeq, ledger.PutU64(ev.Seq)); err != nil {
		return nil, err
	}
	if err := tx.SetMeta(rpHQID+string(ev.ID[:]), ledger.PutU64(ev.Seq)); err != nil {
		return nil, err
	}
	// A supplier's statement rows (settlements.go, invariant 2).
	if err := indexPayables(tx, &ev); err != nil {
		return nil, err
	}
	// A buyer's statement rows (receivables.go, invariant 2).
	if err := indexReceivables(tx, &ev); err != nil {
		return nil, err
	}
	return msgpack.Marshal(&replication.Position{Epoch: 1, Seq: ev.Seq})
}

// applyHQTransfer is the op of Node.Transfer: applyTransfer, and for a
// transfer applied by an earlier entry whose idempotency record was
// pruned since (fsm.go invariant 4), the answer the first got: the
// event's position, or a Conflict naming the ID if the event differs
// (the ID reused for another transfer) or its position is not indexed
// (applied before rpHQID existed). Either way nothing is applied again.
func applyHQTransfer(tx *Tx, payload []byte) ([]byte, error) {
	body, err := applyTransfer(tx, payload)
	if err != nil || body != nil {
		return body, err
	}
	var p transferPayload
	if err := msgpack.Unmarshal(payload, &p); err != nil {
		return nil, storeline.Invalidf("", "undecodable transfer: %v", err)
	}
	seq8, err := tx.Meta(rpHQID + string(p.ID[:]))
	if err != nil {
		return nil, err
	}
	if seq8 == nil {
		return nil, &storeline.Error{Kind: storeline.Conflict, Field: "id", Err: fmt.Errorf(
			"transfer %s was applied before and its position is no longer recorded; nothing was applied again", p.ID)}
	}
	pos := replication.Position{Epoch: 1, Seq: ledger.U64(seq8)}
	v, err := tx.Meta(eventKey(storeline.Central, pos.Epoch, pos.Seq))
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fmt.Errorf("transfer %s: no event at its position %d/%d", p.ID, pos.Epoch, pos.Seq)
	}
	ev, err := decodeEvent(v)
	if err != nil {
		return nil, fmt.Errorf("transfer %s at %d/%d: %w", p.ID, pos.Epoch, pos.Seq, err)
	}
	if !sameTransfer(&ev, &p) {
		return nil, &storeline.Error{Kind: storeline.Conflict, Field: "id", Err: fmt.Errorf(
			"transfer %s was applied at %d/%d with another reason, reference or postings; nothing was applied again", p.ID, pos.Epoch, pos.Seq)}
	}
	return msgpack.Marshal(&pos)
}

// sameTransfer reports whether ev is the transfer p asks for: same
// reason, reference and (merged) postings.
func sameTransfer(ev *storeline.Event, p *transferPayload) bool {
	tr, ok := ev.Body.(*storeline.Transfer)
	if !ok || tr.Reason != p.Reason || tr.Ref != p.Ref {
		return false
	}
	var ps []storeline.Posting
	for _, w := range p.Postings {
		var amt decimal.Decimal
		if err := amt.UnmarshalBinary(w.Amount); err != nil {
			return false
		}
		ps = append(ps, storeline.Posting{Account: w.Account, Asset: storeline.Asset(w.Asset), Amount: amt})
	}
	ps = storeline.MergePostings(ps)
	if len(ps) != len(ev.Postings) {
		return false
	}
	for i := range ps {
		q := ev.Postings[i]
		if ps[i].Account != q.Account || ps[i].Asset != q.Asset || !ps[i].Amount.Equal(q.Amount) {
			return false
		}
	}
	return true
}

// noteAssignments finds, among the store records of a put, those whose
// price lists change, and returns a function that records the version of
// each change (called once the put succeeded): a shop whose cursor is
// older must resync, because prices of a newly assigned list are older
// than its cursor.
func noteAssignments(tx *Tx, ws []ledger.MasterWrite) (func() error, error) {
	var changed []ledger.MasterWrite
	for _, w := range ws {
		s, ok := w.Record.(*storeline.Store)
		if !ok {
			continue
		}
		var old storeline.Store
		found, err := tx.GetMaster(storeline.KindStore, string(s.ID), &old)
		if err != nil {
			return nil, err
		}
		if !found || !slicesEqual(old.PriceLists, s.PriceLists) {
			changed = append(changed, w)
		}
	}
	return func() error {
		for _, w := range changed {
			if err := tx.SetMeta(rpAssign+w.Record.MasterID(), ledger.PutU64(w.Version)); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

func slicesEqual(a, b []storeline.PriceListID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Transfer applies an event authored by head office (origin
// storeline.Central) that moves balances by postings, such as stock
// delivered to a shop: central's balances change and every store whose
// accounts it touches pulls it. id makes it idempotent: a retry with the
// same id applies nothing. It returns the event's position.
func (n *Node) Transfer(ctx context.Context, id storeline.EventID, reason, ref string, postings []storeline.Posting) (replication.Position, error) {
	const op = "central.Transfer"
	p := transferPayload{ID: id, Reason: reason, Ref: ref}
	for _, ps := range postings {
		amt, err := ps.Amount.MarshalBinary()
		if err != nil {
			return replication.Position{}, storeline.E(op, storeline.Invalid, err)
		}
		p.Postings = append(p.Postings, replication.WirePosting{Account: ps.Account, Asset: string(ps.Asset), Amount: amt})
	}
	body, err := msgpack.Marshal(&p)
	if err != nil {
		return replication.Position{}, storeline.E(op, storeline.Internal, err)
	}
	res, err := n.Submit(ctx, OpReplicationTransfer, "transfer/"+id.String(), body)
	if err != nil {
		return replication.Position{}, err
	}
	if err := res.Err(); err != nil {
		return replication.Position{}, err
	}
	var pos replication.Position
	if len(res.Body) > 0 {
		if err := msgpack.Unmarshal(res.Body, &pos); err != nil {
			return pos, storeline.E(op, storeline.Internal, err)
		}
	}
	return pos, nil
}

// PutRecords writes master records through Raft (ImportChunk per entry),
// as the head-office API's import does, and returns the last version.
func (n *Node) PutRecords(ctx context.Context, key string, recs ...storeline.Record) (Version, error) {
	fields := make([]string, len(recs))
	for i := range fields {
		fields[i] = fmt.Sprintf("records[%d]", i)
	}
	if err := n.precheck(ctx, recs, fields); err != nil {
		return Version{}, err
	}
	v, _, err := n.submitRecords(ctx, key, recs, fields)
	return v, err
}

// Balance returns central's balance of (account, asset), from this node's
// state.
func (n *Node) Balance(account string, asset storeline.Asset) (decimal.Decimal, error) {
	v, err := n.rep.Meta(balKey(account, asset))
	if err != nil || v == nil {
		return decimal.Zero, err
	}
	return decimal.NewFromString(string(v))
}

// Balance is one account's balance of one asset.
type Balance struct {
	Account string
	Asset   storeline.Asset
	Amount  decimal.Decimal
}

// Balances returns every non-zero balance of accounts with the prefix, in
// (account, asset) order, from this node's state.
func (n *Node) Balances(prefix string) ([]Balance, error) {
	var out []Balance
	err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		return rt.ScanMeta(rpBal+prefix, func(k string, v []byte) (bool, error) {
			acct, asset, _ := strings.Cut(k[len(rpBal):], "\x00")
			d, err := decimal.NewFromString(string(v))
			if err != nil {
				return false, err
			}
			out = append(out, Balance{Account: acct, Asset: storeline.Asset(asset), Amount: d})
			return true, nil
		})
	})
	return out, err
}

// ScanEvents calls fn for each event of origin central holds, in (epoch,
// seq) order, until fn returns false.
func (n *Node) ScanEvents(origin storeline.StoreID, fn func(storeline.Event) bool) error {
	return n.rep.View(func(rt *ledger.ReplicaTxn) error {
		return rt.ScanMeta(rpEvent+string(origin)+"\x00", func(_ string, v []byte) (bool, error) {
			ev, err := decodeEvent(v)
			if err != nil {
				return false, err
			}
			return fn(ev), nil
		})
	})
}

func decodeEvent(v []byte) (storeline.Event, error) {
	var w replication.WireEvent
	if err := msgpack.Unmarshal(v, &w); err != nil {
		return storeline.Event{}, fmt.Errorf("central: stored event: %w", err)
	}
	return replication.EventFromWire(w)
}

// ShopStats returns the replication statistics of store, from this node's
// state (zero if it never pushed).
func (n *Node) ShopStats(store storeline.StoreID) (ShopStats, error) {
	var s ShopStats
	v, err := n.rep.Meta(rpStat + string(store))
	if err != nil || v == nil {
		return s, err
	}
	return s, msgpack.Unmarshal(v, &s)
}

// Marks returns every epoch's high-water mark of store.
func (n *Node) Marks(store storeline.StoreID) ([]replication.Position, error) {
	var out []replication.Position
	err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		var err error
		out, err = marks(rt, store)
		return err
	})
	return out, err
}

// backend is replication.Backend over the node.
type backend struct{ n *Node }

var _ replication.Backend = backend{}

// Push submits the batch as Raft entries of at most maxPushEntryEvents
// events and maxPushEntryBytes bytes each; a follower forwards them to
// the leader.
func (b backend) Push(ctx context.Context, batch replication.Batch) (replication.PushResult, error) {
	const op = "central.Push"
	var out replication.PushResult
	out.Acked = replication.Position{Epoch: batch.Epoch}
	evs, wire := batch.Events, batch.Wire
	if len(wire) != len(evs) {
		wire = nil
	}
	for first := true; first || len(evs) > 0; first = false {
		p := pushPayload{Store: string(batch.Store), Epoch: batch.Epoch}
		size := 0
		for len(evs) > 0 && len(p.Events) < maxPushEntryEvents {
			// The shop's own bytes when the server kept them (the FSM
			// decodes and checks them again); else encode the event.
			var r []byte
			if wire != nil {
				r = wire[0]
			} else {
				w, err := replication.EventToWire(evs[0])
				if err != nil {
					return out, storeline.E(op, storeline.Invalid, err)
				}
				if r, err = msgpack.Marshal(&w); err != nil {
					return out, storeline.E(op, storeline.Internal, err)
				}
			}
			if len(p.Events) > 0 && size+len(r) > maxPushEntryBytes {
				break
			}
			size += len(r)
			p.Events = append(p.Events, r)
			evs = evs[1:]
			if wire != nil {
				wire = wire[1:]
			}
		}
		var buf bytes.Buffer
		buf.Grow(size + len(p.Store) + 32)
		if err := msgpack.NewEncoder(&buf).Encode(&p); err != nil {
			return out, storeline.E(op, storeline.Internal, err)
		}
		body := buf.Bytes()
		res, err := b.n.Submit(ctx, OpReplicationPush, "", body)
		if err != nil {
			return out, err
		}
		if err := res.Err(); err != nil {
			return out, err
		}
		var o pushOutcome
		if err := msgpack.Unmarshal(res.Body, &o); err != nil {
			return out, storeline.E(op, storeline.Internal, fmt.Errorf("push outcome: %w", err))
		}
		out.Acked, out.Gap, out.Marks = o.Acked, o.Gap, o.Marks
		out.Applied += o.Applied
		out.Duplicates += o.Duplicates
		out.Below += o.Below
		for _, w := range o.Rejections {
			out.Rejections = append(out.Rejections, replication.RejectionFromWire(w))
		}
		if o.Gap != nil {
			break // nothing of this entry applied; the rest would gap too
		}
	}
	return out, nil
}

// pullItem is one item of a page before it is cut to size.
type pullItem struct {
	version uint64
	change  *replication.Change
	feed    *feedEntry
}

// top is the highest version this node's state can hold now.
func (n *Node) topVersion() uint64 {
	return Version{Index: n.rep.AppliedIndex(), Pos: MaxChangesPerEntry}.Pack()
}

// Pull serves a page from this node's state, read in one transaction: the
// floor, the store's assignments, the master changes and the feed are of
// one instant, so a prune that raises the floor and drops tombstones is
// seen whole or not at all (invariant 5).
func (b backend) Pull(ctx context.Context, q replication.PullQuery) (replication.Page, error) {
	// A cursor past this node's history: the node lags the one the shop
	// last pulled from, or the whole cluster went back in time (restored
	// from an old backup), and changes made since would get versions at
	// or below the cursor and never be sent. A read barrier tells the two
	// apart: after it this node has applied everything committed.
	wentBack := false
	if q.Snapshot == nil && q.Cursor > b.n.topVersion() {
		wentBack = b.n.Linearize(ctx) == nil && q.Cursor > b.n.topVersion()
	}
	// The shop's cursor belongs to another incarnation than this node's:
	// the cluster was restored from a backup, or this node has not yet
	// applied the change the shop saw at another. After a read barrier
	// this node's incarnation is the cluster's; without one, answering
	// from a stale state would send the shop into a resync it would
	// restart at the next node.
	if q.Incarnation != "" && q.Incarnation != b.n.Incarnation() {
		if err := b.n.Linearize(ctx); err != nil {
			return replication.Page{}, fmt.Errorf("central: the shop's cursor is of incarnation %s, this node's %s, and the cluster's is unknown: %w",
				q.Incarnation, b.n.Incarnation(), err)
		}
	}
	var page replication.Page
	err := b.n.rep.View(func(rt *ledger.ReplicaTxn) error {
		inc, err := incarnationOf(rt) // restore.go
		if err != nil {
			return err
		}
		if page, err = b.pull(rt, q, wentBack, inc); err != nil {
			return err
		}
		// Every answer names the history it is of, and the store's marks
		// in it, so a shop with nothing to push still learns what central
		// lost (RELIABILITY.md, "Central restored from an old backup").
		if page.Incarnation = inc; inc != "" {
			page.Marks, err = marks(rt, q.Store)
		}
		return err
	})
	return page, err
}

func (b backend) pull(rt *ledger.ReplicaTxn, q replication.PullQuery, wentBack bool, inc string) (replication.Page, error) {
	idx, err := rt.AppliedIndex()
	if err != nil {
		return replication.Page{}, err
	}
	top := Version{Index: idx, Pos: MaxChangesPerEntry}.Pack()
	var s storeline.Store
	found, err := rt.GetMaster(storeline.KindStore, string(q.Store), &s)
	if err != nil {
		return replication.Page{}, err
	}
	if !found {
		s = storeline.Store{ID: q.Store} // not set up yet: chain-wide data only
	}
	floor, err := rt.Meta(floorKey)
	if err != nil {
		return replication.Page{}, err
	}
	assign, err := rt.Meta(rpAssign + string(q.Store))
	if err != nil {
		return replication.Page{}, err
	}
	switch {
	case q.Incarnation != "" && inc != "" && q.Incarnation != inc:
		// A cursor (or a resync under way) of another history says
		// nothing of what the shop holds: a resync from scratch, as for
		// cursor 0 (the shop asks the rest of it so).
		fresh := q
		fresh.Cursor, fresh.Snapshot = 0, nil
		return b.snapshot(rt, fresh, &s, top, fmt.Sprintf("central was restored from a backup (incarnation %s, the shop's cursor is of %s)", inc, q.Incarnation))
	case q.Snapshot != nil && q.Snapshot.ID > top:
		// The resync began at a node further ahead (the shop failed over):
		// this node's records and feed would miss what lies between, and
		// the shop would take the resync's version as its cursor.
		return replication.Page{}, storeline.Errorf(storeline.Unavailable, "central.pull",
			"this node has not yet applied up to the resync at version %d; retry", q.Snapshot.ID)
	case q.Snapshot != nil:
		return b.snapshot(rt, q, &s, top, "")
	case wentBack:
		// The resync ends below the cursor even if entries were applied
		// since the barrier, so every page of it sends the whole feed
		// (snapshot: a cursor past the resync's version counts as none).
		return b.snapshot(rt, q, &s, min(top, q.Cursor-1), "the cursor is past central's history (central restored from an old backup)")
	case q.Cursor < ledger.U64(floor):
		return b.snapshot(rt, q, &s, top, "the cursor is older than central's history")
	case q.Cursor > 0 && q.Cursor < ledger.U64(assign):
		return b.snapshot(rt, q, &s, top, "the shop's price lists changed")
	}
	page := replication.Page{Cursor: q.Cursor}
	if q.Cursor >= top {
		// This node lags the shop (it pulled from another node): wait.
		return page, nil
	}
	var items []pullItem
	// Master changes after the cursor, up to top.
	mDone, mLast := false, q.Cursor
	relevant, scanned := 0, 0
	for relevant < q.MaxItems && scanned < feedScanFactor*q.MaxItems && !mDone {
		cs, err := rt.MasterChanges(mLast, min(1000, feedScanFactor*q.MaxItems-scanned))
		if err != nil {
			return page, err
		}
		if len(cs) == 0 {
			mDone = true
		}
		for _, c := range cs {
			if c.Version > top {
				mDone = true
				break
			}
			scanned++
			mLast = c.Version
			if c, ok := feedChange(&s, c); ok {
				ch := replication.Change{Version: c.Version, Kind: c.Kind, ID: c.ID, Record: c.Record}
				if c.Deleted {
					ch.Record = nil
				}
				items = append(items, pullItem{version: c.Version, change: &ch})
				if relevant++; relevant == q.MaxItems {
					break
				}
			}
		}
	}
	// The store's own feed after the cursor, up to top.
	es, fDone, err := feedAfter(rt, q.Store, q.Cursor, top, q.MaxItems)
	if err != nil {
		return page, err
	}
	fLast := q.Cursor
	for i := range es {
		fLast = es[i].Version
		items = append(items, pullItem{version: es[i].Version, feed: &es[i]})
	}
	horizon := top
	if !mDone {
		horizon = min(horizon, mLast)
	}
	if !fDone {
		horizon = min(horizon, fLast)
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].version < items[j].version })
	page.Cursor = horizon
	taken, size := 0, 0
	for _, it := range items {
		if it.version > horizon {
			break
		}
		if taken == q.MaxItems || size >= maxPageBytes {
			page.Cursor = items[taken-1].version
			break
		}
		n, err := addItem(rt, &page, it)
		if err != nil {
			return page, err
		}
		taken++
		size += n
	}
	page.More = page.Cursor < top
	// After a restore: the shop's own acknowledged events it lacks.
	if err := ownEvents(rt, &page, q); err != nil {
		return page, err
	}
	return page, nil
}

// addItem adds an item to page and returns about how many bytes it adds
// to the answer.
func addItem(rt *ledger.ReplicaTxn, page *replication.Page, it pullItem) (int, error) {
	if it.change != nil {
		page.Changes = append(page.Changes, *it.change)
		n := 64
		if it.change.Record != nil {
			enc, err := msgpack.Marshal(it.change.Record)
			if err != nil {
				return 0, err
			}
			n += len(enc)
		}
		return n, nil
	}
	e := it.feed
	if e.Rej != nil {
		page.Rejections = append(page.Rejections, replication.RejectionFromWire(*e.Rej))
		return 128 + len(e.Rej.Reason), nil
	}
	v, err := rt.Meta(eventKey(storeline.StoreID(e.Origin), e.Epoch, e.Seq))
	if err != nil {
		return 0, err
	}
	if v == nil {
		return 0, fmt.Errorf("central: feed names event %s/%d/%d that is not stored", e.Origin, e.Epoch, e.Seq)
	}
	ev, err := decodeEvent(v)
	if err != nil {
		return 0, err
	}
	page.Events = append(page.Events, ev)
	return len(v), nil
}

func ownEvents(rt *ledger.ReplicaTxn, page *replication.Page, q replication.PullQuery) error {
	budget := q.MaxItems - len(page.Changes) - len(page.Events) - len(page.Rejections)
	for _, have := range q.Own {
		if budget <= 0 {
			return nil // the next page has room
		}
		mv, err := rt.Meta(markKey(q.Store, have.Epoch))
		if err != nil {
			return err
		}
		mark := ledger.U64(mv)
		if have.Seq >= mark {
			continue
		}
		// Seek over the stored events: a rejected one was never stored,
		// and reading the range a seq at a time cost every pull (and
		// every wake of a long poll) as much as the rejections in it.
		prefix := rpEvent + string(q.Store) + "\x00" + string(ledger.PutU64(have.Epoch))
		err = rt.ScanMetaFrom(prefix, string(ledger.PutU64(have.Seq+1)), func(k string, v []byte) (bool, error) {
			if len(k) != len(prefix)+8 || ledger.U64([]byte(k[len(prefix):])) > mark {
				return false, nil
			}
			ev, err := decodeEvent(v)
			if err != nil {
				return false, err
			}
			page.Events = append(page.Events, ev)
			budget--
			return budget > 0, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// feedAfter returns up to limit entries of store's feed with versions in
// (after, top], and whether it reached the end of them. The feed is
// numbered densely from its first kept entry, so the first entry is found
// by binary search.
func feedAfter(rt *ledger.ReplicaTxn, store storeline.StoreID, after, top uint64, limit int) ([]feedEntry, bool, error) {
	nv, err := rt.Meta(rpFeedN + string(store))
	if err != nil {
		return nil, false, err
	}
	count := ledger.U64(nv)
	first, err := feedLo(rt, store) // entries before it were pruned
	if err != nil {
		return nil, false, err
	}
	get := func(i uint64) (feedEntry, error) {
		var e feedEntry
		v, err := rt.Meta(feedKey(store, i))
		if err != nil {
			return e, err
		}
		if v == nil {
			return e, fmt.Errorf("central: feed of %s lacks entry %d of %d", store, i, count)
		}
		return e, msgpack.Unmarshal(v, &e)
	}
	lo, hi := first, count+1 // first i in [lo, hi) with version > after
	for lo < hi {
		mid := lo + (hi-lo)/2
		e, err := get(mid)
		if err != nil {
			return nil, false, err
		}
		if e.Version > after {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	var out []feedEntry
	for i := lo; i <= count; i++ {
		if len(out) == limit {
			return out, false, nil
		}
		e, err := get(i)
		if err != nil {
			return nil, false, err
		}
		if e.Version > top {
			return out, true, nil
		}
		out = append(out, e)
	}
	return out, true, nil
}

// snapshot serves a resync page: first the records that concern the
// store (After "r:<token>"), then, if feed entries after the shop's
// cursor were pruned, the central-authored events touching the store
// (After "e:<event key>", see feed.go), then its feed entries between the
// shop's cursor and the snapshot's version (After "f:<version>").
func (b backend) snapshot(rt *ledger.ReplicaTxn, q replication.PullQuery, s *storeline.Store, top uint64, reason string) (replication.Page, error) {
	rs := &replication.Resync{Reason: reason, ID: top}
	after := ""
	if q.Snapshot != nil {
		rs.ID, after = q.Snapshot.ID, q.Snapshot.After
		if rs.Reason == "" {
			rs.Reason = "continuing a resync"
		}
	}
	page := replication.Page{Cursor: q.Cursor, Resync: rs}
	// A cursor past the snapshot (central went back in time) says
	// nothing of what the shop holds: the feed is sent whole, which the
	// shop applies idempotently by (origin, ID).
	cursor := q.Cursor
	if cursor > rs.ID {
		cursor = 0
	}
	cv, err := rt.Meta(rpFeedCut + string(q.Store))
	if err != nil {
		return page, err
	}
	cut := ledger.U64(cv) // the last pruned entry's version
	if e, ok := strings.CutPrefix(after, "e:"); ok {
		k, err := hex.DecodeString(e)
		if err != nil {
			return page, storeline.Invalidf("sn.a", "bad snapshot position %q", after)
		}
		evs, next, err := centralEventsTouching(rt, q.Store, string(k), q.MaxItems, feedScanFactor*q.MaxItems)
		if err != nil {
			return page, err
		}
		page.Events = append(page.Events, evs...)
		rs.Next = "e:" + hex.EncodeToString([]byte(next))
		if next == "" {
			// The feed after the pruned part.
			rs.Next = "f:" + strconv.FormatUint(max(cursor, cut), 10)
		}
		return page, nil
	}
	if f, ok := strings.CutPrefix(after, "f:"); ok {
		from, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return page, storeline.Invalidf("sn.a", "bad snapshot position %q", after)
		}
		if max(from, cursor) < cut {
			// Entries this phase was to send were pruned since the resync
			// chose it (a feed prune applied between two pages): their
			// events come from the event store, as if pruned before.
			rs.Next = "e:"
			return page, nil
		}
		es, done, err := feedAfter(rt, q.Store, max(from, cursor), rs.ID, q.MaxItems)
		if err != nil {
			return page, err
		}
		last := from
		for i := range es {
			if _, err := addItem(rt, &page, pullItem{version: es[i].Version, feed: &es[i]}); err != nil {
				return page, err
			}
			last = es[i].Version
		}
		rs.Done = done
		if !done {
			rs.Next = "f:" + strconv.FormatUint(last, 10)
		}
		return page, nil
	}
	token, _ := strings.CutPrefix(after, "r:")
	if after != "" && !strings.HasPrefix(after, "r:") {
		return page, storeline.Invalidf("sn.a", "bad snapshot position %q", after)
	}
	sp, err := snapshotRecords(rt, s, token, "sn.a", min(q.MaxItems, maxSnapshotItems), true)
	if err != nil {
		return page, err
	}
	for _, rec := range sp.Records {
		page.Changes = append(page.Changes, replication.Change{Version: rs.ID, Kind: rec.MasterKind(), ID: rec.MasterID(), Record: rec})
	}
	for _, g := range sp.Gone {
		page.Changes = append(page.Changes, replication.Change{Version: rs.ID, Kind: g.Kind, ID: g.ID}) // a tombstone
	}
	switch {
	case sp.Next != "":
		rs.Next = "r:" + sp.Next
	case cursor < cut:
		// Feed entries the shop has not pulled are pruned: their events
		// come from the event store.
		rs.Next = "e:"
	default:
		rs.Next = "f:" + strconv.FormatUint(cursor, 10)
	}
	return page, nil
}

// Wait returns once this node has applied an entry after cursor's, or
// when ctx ends.
func (b backend) Wait(ctx context.Context, store storeline.StoreID, cursor uint64) error {
	for {
		ch := b.n.applied.wait()
		if cursor < b.n.topVersion() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// appliedSignal wakes long polls when the FSM applies entries.
type appliedSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

func newAppliedSignal() *appliedSignal { return &appliedSignal{ch: make(chan struct{})} }

func (s *appliedSignal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *appliedSignal) bump() {
	s.mu.Lock()
	close(s.ch)
	s.ch = make(chan struct{})
	s.mu.Unlock()
}

// startReplication starts the replication listener, if configured.
func (n *Node) startReplication() error {
	if n.cfg.ReplicationAddr == "" {
		return nil
	}
	sc := replication.DefaultServerConfig()
	sc.Backend = backend{n}
	sc.Tokens = n.cfg.ReplicationTokens
	sc.MaxWait = n.cfg.ReplicationMaxWait
	sc.MaxPageItems = n.cfg.ReplicationPageItems
	if n.cfg.Registerer != nil {
		n.replReg = &trackingRegisterer{Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"node": n.cfg.NodeID}, n.cfg.Registerer)}
		sc.Registerer = n.replReg
	}
	sc.Logger = n.log.With("api", "replication")
	srv, err := replication.NewServer(sc)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", n.cfg.ReplicationAddr)
	if err != nil {
		return fmt.Errorf("replication listener: %w", err)
	}
	if n.cfg.ReplicationTLS != nil {
		tc := n.cfg.ReplicationTLS.Clone()
		if tc.ClientCAs != nil && tc.ClientAuth == tls.NoClientCert {
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
		ln = tls.NewListener(ln, tc)
	}
	n.replLn = ln
	n.repl = &http.Server{Handler: n.serve(n.loyaltyHandler(srv)), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelWarn)}
	go n.serveOn(n.repl, ln, "replication")
	return nil
}

// trackingRegisterer remembers what it registered, so Close can
// unregister the replication server's metrics (a node reopened in the
// same process registers them again).
type trackingRegisterer struct {
	prometheus.Registerer
	mu sync.Mutex
	cs []prometheus.Collector
}

func (r *trackingRegisterer) Register(c prometheus.Collector) error {
	if err := r.Registerer.Register(c); err != nil {
		return err
	}
	r.mu.Lock()
	r.cs = append(r.cs, c)
	r.mu.Unlock()
	return nil
}

func (r *trackingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *trackingRegisterer) unregisterAll() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.cs {
		r.Registerer.Unregister(c)
	}
	r.cs = nil
}

// ReplicationAddr returns the bound host:port of the replication listener
// ("" if it is off).
func (n *Node) ReplicationAddr() string {
	if n.replLn == nil {
		return ""
	}
	return n.replLn.Addr().String()
}

// ReplicationURL returns the base URL shops use ("" if off).
func (n *Node) ReplicationURL() string {
	if n.replLn == nil {
		return ""
	}
	scheme := "http"
	if n.cfg.ReplicationTLS != nil {
		scheme = "https"
	}
	return scheme + "://" + n.ReplicationAddr()
}

// shopCollector exports per-shop replication metrics derived from FSM
// state, so every node answers the same.
type shopCollector struct {
	n                                                    *Node
	lastPush, acked, events, dups, below, rejected, gaps *prometheus.Desc
	batches                                              *prometheus.Desc
}

func newShopCollector(n *Node) *shopCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("storeline_central_replication_"+name, help, labels, prometheus.Labels{"node": n.cfg.NodeID})
	}
	return &shopCollector{n: n,
		lastPush: d("last_push_timestamp_seconds", "Leader time of the shop's last pushed batch.", "store"),
		acked:    d("acked_seq", "Highest applied seq of the shop's latest epoch.", "store"),
		events:   d("events_ingested_total", "Events of the shop applied (rejections included).", "store"),
		dups:     d("duplicates_total", "Events of the shop skipped as seen by (origin, ID).", "store"),
		below:    d("resent_total", "Events of the shop resent at or below the mark.", "store"),
		rejected: d("rejections_total", "Events of the shop rejected for a business reason.", "store"),
		gaps:     d("gaps_total", "Batches of the shop answered with a gap.", "store"),
		batches:  d("batches_total", "Push entries of the shop.", "store"),
	}
}

func (c *shopCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.lastPush, c.acked, c.events, c.dups, c.below, c.rejected, c.gaps, c.batches} {
		ch <- d
	}
}

func (c *shopCollector) Collect(ch chan<- prometheus.Metric) {
	stats := map[string]ShopStats{}
	_ = c.n.rep.View(func(rt *ledger.ReplicaTxn) error {
		return rt.ScanMeta(rpStat, func(k string, v []byte) (bool, error) {
			var s ShopStats
			if err := msgpack.Unmarshal(v, &s); err == nil {
				stats[k[len(rpStat):]] = s
			}
			return true, nil
		})
	})
	for st, s := range stats {
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, st)
		}
		cn := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), st)
		}
		g(c.lastPush, float64(s.LastPushMs)/1e3)
		g(c.acked, float64(s.Acked.Seq))
		cn(c.events, s.Events)
		cn(c.dups, s.Duplicates)
		cn(c.below, s.Below)
		cn(c.rejected, s.Rejections)
		cn(c.gaps, s.Gaps)
		cn(c.batches, s.Batches)
	}
}
