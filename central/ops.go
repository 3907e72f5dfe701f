package central

import (
	"errors"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// The master-data ops of the FSM.
const (
	OpMasterPut    = "master.put"
	OpMasterDelete = "master.delete"
	OpMasterPrune  = "master.prune"
)

// wireRecord is a record inside a command: its kind, its msgpack body, and
// the API field path that names it in errors ("" for a single record,
// "items[3]" in an import).
type wireRecord struct {
	Kind  storeline.MasterKind `msgpack:"k"`
	Data  []byte               `msgpack:"d"`
	Field string               `msgpack:"f,omitempty"`
}

type putPayload struct {
	Records []wireRecord `msgpack:"r"`
}

type deletePayload struct {
	Kind storeline.MasterKind `msgpack:"k"`
	ID   string               `msgpack:"i"`
}

type prunePayload struct {
	// Before: tombstones of changes made before this time are pruned.
	Before time.Time `msgpack:"b"`
	// Limit bounds the tombstones this entry removes below
	// MaxChangesPerEntry (zero: MaxChangesPerEntry); it is in the entry,
	// so every replica prunes alike.
	Limit int `msgpack:"n,omitempty"`
}

// pruneOutcome is the body of a prune entry's result (nil: as More false).
type pruneOutcome struct {
	// More: the entry removed its limit of tombstones, so some before the
	// cutoff may be left for the next entry.
	More bool `msgpack:"m"`
}

func masterOps() []Op {
	return append([]Op{
		{OpMasterPut, applyPut},
		{OpMasterDelete, applyDelete},
		{OpMasterPrune, applyPrune},
	}, backOfficeOps()...) // backoffice.go
}

func encodeRecord(rec storeline.Record, field string) (wireRecord, error) {
	data, err := msgpack.Marshal(rec)
	if err != nil {
		return wireRecord{}, fmt.Errorf("central: encode %s: %w", rec.MasterKind(), err)
	}
	return wireRecord{Kind: rec.MasterKind(), Data: data, Field: field}, nil
}

func prefix(field, sub string) string {
	switch {
	case field == "":
		return sub
	case sub == "":
		return field
	}
	return field + "." + sub
}

func refErr(field, format string, args ...any) error {
	return storeline.Invalidf(field, format, args...)
}

// applyPut checks every record (Validate, references, group cycles) before
// writing any, then writes them all with consecutive versions.
func applyPut(tx *Tx, payload []byte) ([]byte, error) {
	var p putPayload
	if err := msgpack.Unmarshal(payload, &p); err != nil {
		return nil, storeline.Invalidf("", "undecodable payload: %v", err)
	}
	if len(p.Records) > MaxChangesPerEntry {
		return nil, storeline.Errorf(storeline.TooLarge, "central.put", "%d records in one entry, over %d", len(p.Records), MaxChangesPerEntry)
	}
	pending := map[string]storeline.Record{}
	recs := make([]storeline.Record, len(p.Records))
	for i, w := range p.Records {
		rec, err := storeline.NewRecord(w.Kind)
		if err != nil {
			return nil, storeline.Invalidf(prefix(w.Field, "kind"), "%v", err)
		}
		if err := msgpack.Unmarshal(w.Data, rec); err != nil {
			return nil, storeline.Invalidf(w.Field, "undecodable %s: %v", w.Kind, err)
		}
		if err := rec.Validate(); err != nil {
			return nil, prefixed(w.Field, err)
		}
		recs[i] = rec
		pending[string(w.Kind)+"\x00"+rec.MasterID()] = rec
	}
	fields := make([]string, len(recs))
	for i, rec := range recs {
		if err := checkRefs(tx.ReplicaTxn, pending, rec, p.Records[i].Field); err != nil {
			return nil, err
		}
		fields[i] = p.Records[i].Field
	}
	// Again in the entry: requests through two central nodes can each
	// pass the check made before submitting (pricing_api.go).
	if err := checkRuleOverlaps(txnRuleScan(tx.ReplicaTxn), recs, fields); err != nil {
		return nil, err
	}
	ws := make([]ledger.MasterWrite, len(recs))
	for i, rec := range recs {
		v, err := tx.NextVersion()
		if err != nil {
			return nil, err
		}
		ws[i] = ledger.MasterWrite{Version: v.Pack(), Record: rec}
	}
	assigned, err := noteAssignments(tx, ws)
	if err != nil {
		return nil, err
	}
	if err := tx.PutMasters(ws); err != nil {
		return nil, err
	}
	if err := stampCustomers(tx, ws); err != nil { // customers.go
		return nil, err
	}
	if err := forgetPriceBy(tx, ws); err != nil { // backoffice.go
		return nil, err
	}
	if err := assigned(); err != nil {
		return nil, err
	}
	return nil, markHistory(tx)
}

func applyDelete(tx *Tx, payload []byte) ([]byte, error) {
	var p deletePayload
	if err := msgpack.Unmarshal(payload, &p); err != nil {
		return nil, storeline.Invalidf("", "undecodable payload: %v", err)
	}
	if _, err := storeline.NewRecord(p.Kind); err != nil {
		return nil, err
	}
	v, err := tx.NextVersion()
	if err != nil {
		return nil, err
	}
	ws := []ledger.MasterWrite{{Version: v.Pack(), Kind: p.Kind, ID: p.ID}}
	if err := tx.PutMasters(ws); err != nil {
		return nil, err
	}
	if err := stampCustomers(tx, ws); err != nil { // customers.go
		return nil, err
	}
	if err := forgetPriceBy(tx, ws); err != nil { // backoffice.go
		return nil, err
	}
	return nil, markHistory(tx)
}

// History: the FSM keeps, per hour of leader time, the first version
// written in it ("hist/" hour8 → version8), so a prune can turn a time
// cutoff into a version cutoff deterministically.
const (
	histPrefix = "hist/"
	floorKey   = "feed/floor"
)

func markHistory(tx *Tx) error {
	hour := uint64(tx.At.Unix() / 3600)
	k := histPrefix + string(ledger.PutU64(hour))
	v, err := tx.Meta(k)
	if err != nil || v != nil {
		return err
	}
	return tx.SetMeta(k, ledger.PutU64(Version{Index: tx.Index, Pos: 1}.Pack()))
}

// applyPrune removes tombstones of changes made before p.Before and raises
// the feed's floor: a cursor below it must resync. One entry removes at
// most its limit of tombstones; when it reaches the limit some may be
// left below the cutoff, so it keeps the hours' index it found them by
// and the next prune goes on (PruneTombstones starts at the lowest
// version left): the index of an hour is dropped only once every
// tombstone before the cutoff is gone. The floor never falls. Its result
// (pruneOutcome) says whether it reached its limit.
func applyPrune(tx *Tx, payload []byte) ([]byte, error) {
	var p prunePayload
	if err := msgpack.Unmarshal(payload, &p); err != nil {
		return nil, storeline.Invalidf("", "undecodable payload: %v", err)
	}
	cutHour := uint64(p.Before.Unix() / 3600)
	var cutoff uint64
	var old []string
	err := tx.ScanMeta(histPrefix, func(k string, v []byte) (bool, error) {
		h := ledger.U64([]byte(k[len(histPrefix):]))
		if h >= cutHour {
			cutoff = ledger.U64(v)
			return false, nil
		}
		old = append(old, k)
		return true, nil
	})
	if err != nil || len(old) == 0 {
		return nil, err
	}
	if cutoff == 0 {
		// Every hour with changes is before the cut: prune everything
		// written before this entry.
		cutoff = Version{Index: tx.Index}.Pack()
	}
	limit := MaxChangesPerEntry
	if p.Limit > 0 {
		limit = min(limit, p.Limit)
	}
	pruned, err := tx.PruneTombstones(cutoff, limit)
	if err != nil {
		return nil, err
	}
	// A cursor below a removed tombstone must resync: the floor rises to
	// the cutoff even when some are left for the next prune. A prune
	// with an earlier cut (its hours kept by such a prune) lowers nothing.
	fv, err := tx.Meta(floorKey)
	if err != nil {
		return nil, err
	}
	floor := max(ledger.U64(fv), cutoff)
	if pruned < limit {
		for _, k := range old {
			if err := tx.SetMeta(k, nil); err != nil {
				return nil, err
			}
		}
	}
	if err := tx.SetMeta(floorKey, ledger.PutU64(floor)); err != nil {
		return nil, err
	}
	return msgpack.Marshal(&pruneOutcome{More: pruned >= limit})
}

func prefixed(field string, err error) error {
	if field == "" {
		return err
	}
	f := storeline.FieldOf(err)
	var inner error = fmt.Errorf("%s", errMessage(err))
	var mf malformed
	if errors.As(err, &mf) {
		inner = malformed{inner} // still a 400
	}
	return &storeline.Error{Kind: storeline.KindOf(err), Field: prefix(field, f), Err: inner}
}

// exists reports whether (kind, id) is live in the state or among the
// records of the same command.
func exists(rt *ledger.ReplicaTxn, pending map[string]storeline.Record, kind storeline.MasterKind, id string) (bool, error) {
	if _, ok := pending[string(kind)+"\x00"+id]; ok {
		return true, nil
	}
	return rt.GetMaster(kind, id, nil)
}

func need(rt *ledger.ReplicaTxn, pending map[string]storeline.Record, field string, kind storeline.MasterKind, id string) error {
	if id == "" {
		return nil
	}
	ok, err := exists(rt, pending, kind, id)
	if err != nil {
		return err
	}
	if !ok {
		return refErr(field, "unknown %s %q", kind, id)
	}
	return nil
}

// parentOf returns the parent of group id of kind, from the command's own
// records first.
func parentOf(rt *ledger.ReplicaTxn, pending map[string]storeline.Record, kind storeline.MasterKind, id string) (string, error) {
	rec, ok := pending[string(kind)+"\x00"+id]
	if !ok {
		r, _ := storeline.NewRecord(kind)
		found, err := rt.GetMaster(kind, id, r)
		if err != nil || !found {
			return "", err
		}
		rec = r
	}
	switch g := rec.(type) {
	case *storeline.Group:
		return string(g.Parent), nil
	case *storeline.CustomerGroup:
		return string(g.Parent), nil
	}
	return "", nil
}

// checkCycle refuses a group whose parent chain comes back to it.
func checkCycle(rt *ledger.ReplicaTxn, pending map[string]storeline.Record, kind storeline.MasterKind, id, parent, field string) error {
	seen := map[string]bool{id: true}
	for p := parent; p != ""; {
		if seen[p] {
			return refErr(field, "parent %q would make %s %q its own ancestor", parent, kind, id)
		}
		seen[p] = true
		next, err := parentOf(rt, pending, kind, p)
		if err != nil {
			return err
		}
		p = next
	}
	return nil
}

func checkRefs(rt *ledger.ReplicaTxn, pending map[string]storeline.Record, rec storeline.Record, field string) error {
	f := func(s string) string { return prefix(field, s) }
	switch r := rec.(type) {
	case *storeline.Store:
		for i, l := range r.PriceLists {
			if err := need(rt, pending, f(fmt.Sprintf("price_lists[%d]", i)), storeline.KindPriceList, string(l)); err != nil {
				return err
			}
		}
	case *storeline.Group:
		if err := need(rt, pending, f("parent"), storeline.KindGroup, string(r.Parent)); err != nil {
			return err
		}
		return checkCycle(rt, pending, storeline.KindGroup, string(r.ID), string(r.Parent), f("parent"))
	case *storeline.CustomerGroup:
		if err := need(rt, pending, f("parent"), storeline.KindCustomerGroup, string(r.Parent)); err != nil {
			return err
		}
		return checkCycle(rt, pending, storeline.KindCustomerGroup, string(r.ID), string(r.Parent), f("parent"))
	case *storeline.Item:
		return need(rt, pending, f("group"), storeline.KindGroup, string(r.Group))
	case *storeline.Price:
		if err := need(rt, pending, f("list"), storeline.KindPriceList, string(r.List)); err != nil {
			return err
		}
		return need(rt, pending, f("item"), storeline.KindItem, string(r.Item))
	case *storeline.Customer:
		return need(rt, pending, f("group"), storeline.KindCustomerGroup, string(r.Group))
	case *storeline.CardRecord:
		if err := need(rt, pending, f("customer"), storeline.KindCustomer, string(r.Customer)); err != nil {
			return err
		}
		return need(rt, pending, f("seller"), storeline.KindSeller, string(r.Seller))
	case *storeline.Seller:
		for i, s := range r.Stores {
			if err := need(rt, pending, f(fmt.Sprintf("stores[%d]", i)), storeline.KindStore, string(s)); err != nil {
				return err
			}
		}
	case *storeline.Terminal:
		return need(rt, pending, f("store"), storeline.KindStore, string(r.Store))
	case *storeline.Message:
		for i, s := range r.Stores {
			if err := need(rt, pending, f(fmt.Sprintf("stores[%d]", i)), storeline.KindStore, string(s)); err != nil {
				return err
			}
		}
	case *storeline.Representative:
		return need(rt, pending, f("manufacturer"), storeline.KindManufacturer, string(r.Manufacturer))
	case *storeline.PricePolicy, *storeline.Promotion, *storeline.LoyaltyProgramme:
		return checkRuleRefs(rt, pending, rec, field) // pricing_api.go
	}
	return nil
}
