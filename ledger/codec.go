package ledger

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
)

// The Badger key space. Every key starts with one byte naming its table;
// strings inside keys (origins, accounts, kinds, ids) never hold a zero
// byte, which separates them.
//
//	e origin 0 id16                 → storedEvent            (by (origin, ID): dedup)
//	j origin 0 epoch8 seq8          → id16                   (journal; second copies too)
//	d date10 epoch8 seq8            → id16                   (own-origin events by business date)
//	r original16 origin 0 id16      → ""                     (returns by the receipt they return)
//	s terminal 0 shift              → storedShift            (own-origin shift totals, shifts.go)
//	b account 0 asset               → decimal (binary)       (balances)
//	M kind 0 id                     → masterVal              (master data, tombstones too)
//	U kind 0 uniqueKey              → id                     (unique keys of live records)
//	V version8                      → kind 0 id              (latest change of each record)
//	m key                           → value                  (SetMeta)
//	x name                          → uint64                 (the ledger's own state; xorigin, xboot: strings)
//	p origin                        → epoch8 seq8            (journal pruned through, retention.go)
//	q account 0 asset               → decimal (binary)       (postings of pruned events, retention.go)
const (
	tEvent   = 'e'
	tJournal = 'j'
	tDate    = 'd'
	tReturn  = 'r'
	tShift   = 's'
	tBalance = 'b'
	tMaster  = 'M'
	tUnique  = 'U'
	tVersion = 'V'
	tMeta    = 'm'
	tState   = 'x'
	tPruned  = 'p'
	tCarry   = 'q'
)

// State keys.
var (
	kAppliedLSN    = []byte("xlsn")
	kHLC           = []byte("xhlc")
	kEpoch         = []byte("xepoch")
	kSeq           = []byte("xseq")
	kMasterVersion = []byte("xmver")
	// kOrigin is the store whose ledger the data directory holds: Open
	// refuses another (ErrOriginMismatch).
	kOrigin = []byte("xorigin")
	// kSynced is the LSN through which Badger's values were made durable
	// (by a checkpoint or Close), kBoot the boot that last opened the
	// ledger (vlog.go).
	kSynced = []byte("xsynced")
	kBoot   = []byte("xboot")
	// kRebuild names the views a rebuild at Open left unfinished (vlog.go,
	// invariant 4).
	kRebuild = []byte("xrebuild")
)

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func getU64(b []byte) uint64 {
	if len(b) != 8 {
		panic(fmt.Sprintf("ledger: state value of %d bytes, want 8", len(b)))
	}
	return binary.BigEndian.Uint64(b)
}

func eventKey(origin storeline.StoreID, id storeline.EventID) []byte {
	k := make([]byte, 0, 2+len(origin)+16)
	k = append(k, tEvent)
	k = append(k, origin...)
	k = append(k, 0)
	return append(k, id[:]...)
}

func journalPrefix(origin storeline.StoreID) []byte {
	k := make([]byte, 0, 2+len(origin)+16)
	k = append(k, tJournal)
	k = append(k, origin...)
	return append(k, 0)
}

func journalKey(origin storeline.StoreID, p Position) []byte {
	k := journalPrefix(origin)
	k = binary.BigEndian.AppendUint64(k, p.Epoch)
	return binary.BigEndian.AppendUint64(k, p.Seq)
}

func journalPos(k []byte) Position {
	n := len(k)
	return Position{binary.BigEndian.Uint64(k[n-16 : n-8]), binary.BigEndian.Uint64(k[n-8:])}
}

func dateKey(d storeline.Date, p Position) []byte {
	k := make([]byte, 0, 1+len(d)+16)
	k = append(k, tDate)
	k = append(k, d...)
	k = binary.BigEndian.AppendUint64(k, p.Epoch)
	return binary.BigEndian.AppendUint64(k, p.Seq)
}

func returnPrefix(orig storeline.EventID) []byte {
	return append([]byte{tReturn}, orig[:]...)
}

func returnKey(orig storeline.EventID, origin storeline.StoreID, id storeline.EventID) []byte {
	k := returnPrefix(orig)
	k = append(k, origin...)
	k = append(k, 0)
	return append(k, id[:]...)
}

func balanceKey(account string, asset storeline.Asset) []byte {
	return appendBalanceKey(make([]byte, 0, 2+len(account)+len(asset)), account, asset)
}

// appendBalanceKey appends balanceKey(account, asset) to k.
func appendBalanceKey(k []byte, account string, asset storeline.Asset) []byte {
	k = append(k, tBalance)
	k = append(k, account...)
	k = append(k, 0)
	return append(k, asset...)
}

func parseBalanceKey(k []byte) (string, storeline.Asset) {
	acct, asset, _ := bytes.Cut(k[1:], []byte{0})
	return string(acct), storeline.Asset(asset)
}

func masterKey(kind storeline.MasterKind, id string) []byte {
	return append(append(append([]byte{tMaster}, kind...), 0), id...)
}

func uniqueKey(kind storeline.MasterKind, key string) []byte {
	return append(append(append([]byte{tUnique}, kind...), 0), key...)
}

func versionKey(v uint64) []byte { return binary.BigEndian.AppendUint64([]byte{tVersion}, v) }

func metaKey(key string) []byte { return append([]byte{tMeta}, key...) }

func prunedKey(origin storeline.StoreID) []byte { return append([]byte{tPruned}, origin...) }

// carryKey is balanceKey's twin for the postings of pruned events.
func carryKey(account string, asset storeline.Asset) []byte {
	k := balanceKey(account, asset)
	k[0] = tCarry
	return k
}

// storedEvent is the storage (and WAL) form of an event. It is converted
// from and to storeline.Event by named functions; Body holds the body's
// msgpack bytes as authored, which idempotency compares by value (sameBody).
type storedEvent struct {
	ID       [16]byte           `msgpack:"i"`
	Origin   string             `msgpack:"o"`
	Epoch    uint64             `msgpack:"e"`
	Seq      uint64             `msgpack:"s"`
	Schema   uint16             `msgpack:"v"`
	HLC      uint64             `msgpack:"h"`
	Occurred time.Time          `msgpack:"t"`
	Date     string             `msgpack:"d"`
	Kind     string             `msgpack:"k"`
	Body     msgpack.RawMessage `msgpack:"b"`
	Postings []storedPosting    `msgpack:"p"`
	// Pruned marks the stub retention leaves of a pruned event: no body,
	// no postings (retention.go, invariant 3).
	Pruned bool `msgpack:"x,omitempty"`

	// body is the decoded Body when the caller gave one (Append,
	// ApplyRemote), so the apply path need not decode it again; nil after
	// a decode from storage or the WAL.
	body storeline.Body `msgpack:"-"`
}

type storedPosting struct {
	Account string          `msgpack:"a"`
	Asset   string          `msgpack:"s"`
	Amount  decimal.Decimal `msgpack:"m"`
}

func (se *storedEvent) pos() Position { return Position{se.Epoch, se.Seq} }

// encodeBody returns the canonical msgpack bytes of a body.
func encodeBody(b storeline.Body) ([]byte, error) {
	if b == nil {
		return nil, storeline.Invalidf("body", "an event needs a body")
	}
	// The receipt-shaped bodies encode themselves (storeline's bodyenc.go);
	// msgpack.Marshal of them writes what MarshalMsgpack returns, behind
	// an encoder and a copy this saves on every Append.
	switch v := b.(type) {
	case *storeline.Receipt:
		if v != nil {
			return v.MarshalMsgpack()
		}
	case *storeline.Return:
		if v != nil {
			return v.MarshalMsgpack()
		}
	}
	return msgpack.Marshal(b)
}

// toStored converts a domain event whose body is already encoded.
func toStored(ev *storeline.Event, body []byte) *storedEvent {
	se := &storedEvent{
		ID: ev.ID, Origin: string(ev.Origin), Epoch: ev.Epoch, Seq: ev.Seq,
		Schema: ev.SchemaVersion, HLC: ev.HLC, Occurred: ev.OccurredAt.UTC(),
		Date: string(ev.BusinessDate), Kind: string(ev.Kind), Body: body, body: ev.Body,
	}
	if len(ev.Postings) > 0 {
		se.Postings = make([]storedPosting, len(ev.Postings))
		for i, p := range ev.Postings {
			se.Postings[i] = storedPosting{p.Account, string(p.Asset), p.Amount}
		}
	}
	return se
}

// fromStored converts back, decoding the body by its kind.
func fromStored(se *storedEvent) (storeline.Event, error) {
	ev := storeline.Event{
		ID: se.ID, Origin: storeline.StoreID(se.Origin), Epoch: se.Epoch, Seq: se.Seq,
		SchemaVersion: se.Schema, HLC: se.HLC, OccurredAt: se.Occurred.UTC(),
		BusinessDate: storeline.Date(se.Date), Kind: storeline.EventKind(se.Kind),
	}
	body, err := storeline.NewBody(ev.Kind)
	if err != nil {
		return ev, err
	}
	if err := msgpack.Unmarshal(se.Body, body); err != nil {
		return ev, fmt.Errorf("decode %s body of %s: %w", ev.Kind, ev.ID, err)
	}
	ev.Body = body
	if len(se.Postings) > 0 {
		ev.Postings = make([]storeline.Posting, len(se.Postings))
		for i, p := range se.Postings {
			ev.Postings[i] = storeline.Posting{Account: p.Account, Asset: storeline.Asset(p.Asset), Amount: p.Amount}
		}
	}
	return ev, nil
}

func decodeStored(b []byte) (*storedEvent, error) {
	se := new(storedEvent)
	if err := msgpack.Unmarshal(b, se); err != nil {
		return nil, fmt.Errorf("ledger: decode stored event: %w", err)
	}
	return se, nil
}

// samePostings reports whether two postings lists are equal by value, in
// any order: the same postings (account, asset, amount by value), each as
// many times.
func samePostings(a, b []storedPosting) bool {
	if len(a) != len(b) {
		return false
	}
	inOrder := true
	for i := range a {
		if a[i].Account != b[i].Account || a[i].Asset != b[i].Asset || !a[i].Amount.Equal(b[i].Amount) {
			inOrder = false
			break
		}
	}
	if inOrder {
		return true
	}
	sorted := func(ps []storedPosting) []storedPosting {
		return slices.SortedFunc(slices.Values(ps), func(x, y storedPosting) int {
			return cmp.Or(strings.Compare(x.Account, y.Account), strings.Compare(x.Asset, y.Asset), x.Amount.Cmp(y.Amount))
		})
	}
	sa, sb := sorted(a), sorted(b)
	for i := range sa {
		if sa[i].Account != sb[i].Account || sa[i].Asset != sb[i].Asset || !sa[i].Amount.Equal(sb[i].Amount) {
			return false
		}
	}
	return true
}

// sameBody reports whether two stored bodies of kind are the same body:
// equal bytes, or equal after decoding, decimals compared by value (1.0
// and 1.00 encode differently) and times by instant. Bodies that do not
// decode are the same only if their bytes are.
func sameBody(kind string, a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	da, err := storeline.NewBody(storeline.EventKind(kind))
	if err != nil {
		return false
	}
	db, _ := storeline.NewBody(storeline.EventKind(kind))
	if msgpack.Unmarshal(a, da) != nil || msgpack.Unmarshal(b, db) != nil {
		return false
	}
	return equalByValue(reflect.ValueOf(da), reflect.ValueOf(db))
}

var (
	decimalType = reflect.TypeFor[decimal.Decimal]()
	timeType    = reflect.TypeFor[time.Time]()
)

// equalByValue is reflect.DeepEqual over what msgpack encodes (exported
// fields), with decimals equal by value, times by instant, and a nil and
// an empty slice or map equal (msgpack decodes them alike).
func equalByValue(a, b reflect.Value) bool {
	if a.Type() != b.Type() {
		return false
	}
	switch a.Type() {
	case decimalType:
		return a.Interface().(decimal.Decimal).Equal(b.Interface().(decimal.Decimal))
	case timeType:
		return a.Interface().(time.Time).Equal(b.Interface().(time.Time))
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equalByValue(a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			if !a.Type().Field(i).IsExported() {
				continue
			}
			if !equalByValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !equalByValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			bv := b.MapIndex(k)
			if !bv.IsValid() || !equalByValue(a.MapIndex(k), bv) {
				return false
			}
		}
		return true
	case reflect.Func, reflect.Chan, reflect.UnsafePointer:
		return a.IsNil() && b.IsNil()
	}
	return a.Equal(b)
}

// maxKeyPartBytes bounds a string that goes into a Badger key, far below
// Badger's 65,000 bytes: a longer key fails in the committer's
// transaction, which poisons the ledger, rather than be refused up front.
const maxKeyPartBytes = 4096

// checkKeyPart refuses a string that would break the key layout.
func checkKeyPart(field, s string) error {
	if len(s) > maxKeyPartBytes {
		return storeline.Invalidf(field, "%d bytes, over %d", len(s), maxKeyPartBytes)
	}
	if s == "" || strings.IndexByte(s, 0) >= 0 {
		return storeline.Invalidf(field, "%q is empty or holds a zero byte", s)
	}
	return nil
}

// masterVal is the stored form of a master-data record or tombstone.
type masterVal struct {
	Version uint64   `msgpack:"v"`
	Deleted bool     `msgpack:"x,omitempty"`
	Data    []byte   `msgpack:"d,omitempty"`
	Keys    []string `msgpack:"k,omitempty"`
}

// walBatch is the payload of one WAL frame after its LSN: what one fsync
// made durable. Records are resolved (sequence numbers, HLC times, postings
// and versions assigned), so replaying them needs no clock and no
// derivation.
type walBatch struct {
	HLC  uint64   `msgpack:"h"`
	Recs []walRec `msgpack:"r"`
}

// Record types.
const (
	recEvent  = 1 // a new event (own or remote) at its position
	recCopy   = 2 // a second copy of a known event at a new position of its origin's stream
	recMaster = 3 // a master-data change (record or tombstone)
	recMeta   = 4 // a SetMeta
	// recMetaDel deletes a meta key (a nil value in a pulled page's
	// Meta). A frame holding one is unreadable to versions before it.
	recMetaDel = 5
	// recPrune removes journal entries of Origin through (Epoch, Seq)
	// (retention.go). A frame holding one is unreadable to versions
	// before it.
	recPrune = 6
)

type walRec struct {
	T      uint8              `msgpack:"t"`
	Ev     msgpack.RawMessage `msgpack:"e,omitempty"`
	Origin string             `msgpack:"o,omitempty"`
	ID     [16]byte           `msgpack:"i,omitempty"`
	Epoch  uint64             `msgpack:"pe,omitempty"`
	Seq    uint64             `msgpack:"ps,omitempty"`
	Kind   string             `msgpack:"k,omitempty"`
	MID    string             `msgpack:"m,omitempty"`
	Master *masterVal         `msgpack:"mv,omitempty"`
	Key    string             `msgpack:"mk,omitempty"`
	Val    []byte             `msgpack:"val,omitempty"`
	Pruned []prunedEntry      `msgpack:"pr,omitempty"`
}
