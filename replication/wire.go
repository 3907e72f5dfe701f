package replication

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/storeline/storeline"
)

// Wire limits. Decoding checks each count against its limit before it
// allocates, so a hostile length header cannot make a peer allocate more
// than the body it actually sent allows.
const (
	// MaxWireEvents bounds the events of one push batch or one pull page.
	MaxWireEvents = 10000
	// MaxWirePostings bounds the postings of one event.
	MaxWirePostings = 4096
	// MaxWireRecords bounds the master records of one pull page.
	MaxWireRecords = 10000
	// MaxWireRejections bounds the rejections of one answer or page.
	MaxWireRejections = 10000
	// MaxWireMarks bounds the epochs named in one message.
	MaxWireMarks = 1024
)

// Content type of every request and answer body but errors
// (application/problem+json).
const contentType = "application/msgpack"

// Position is a place in an origin's journal: Seq is dense within Epoch.
type Position struct {
	Epoch uint64 `msgpack:"e"`
	Seq   uint64 `msgpack:"s"`
}

// Less orders positions by (Epoch, Seq).
func (p Position) Less(q Position) bool {
	return p.Epoch < q.Epoch || p.Epoch == q.Epoch && p.Seq < q.Seq
}

func (p Position) String() string { return fmt.Sprintf("%d/%d", p.Epoch, p.Seq) }

// WireEvent is an event on the wire: the body is its msgpack bytes, the
// time Unix nanoseconds, amounts the decimal's binary form.
type WireEvent struct {
	ID       [16]byte           `msgpack:"i"`
	Origin   string             `msgpack:"o"`
	Epoch    uint64             `msgpack:"e"`
	Seq      uint64             `msgpack:"s"`
	Schema   uint16             `msgpack:"v"`
	HLC      uint64             `msgpack:"h"`
	Occurred int64              `msgpack:"t"`
	Date     string             `msgpack:"d"`
	Kind     string             `msgpack:"k"`
	Body     msgpack.RawMessage `msgpack:"b"`
	Postings WirePostings       `msgpack:"p"`

	// wire is the event's exact msgpack bytes when Decode read it (a
	// slice of the message), so central stores and forwards a pushed
	// event without encoding it again.
	wire []byte
}

// Wire returns the msgpack bytes w was decoded from by Decode, or nil
// (w was built, or decoded another way). They alias the decoded message.
func (w *WireEvent) Wire() []byte { return w.wire }

// WirePosting is one posting on the wire.
type WirePosting struct {
	Account string `msgpack:"a"`
	Asset   string `msgpack:"s"`
	Amount  []byte `msgpack:"m"` // decimal.Decimal.MarshalBinary
}

// WireRecord is one master-data change: Data is the record's msgpack
// bytes, empty for a tombstone. Version is central's, a uint64 in one
// total order.
type WireRecord struct {
	Version uint64             `msgpack:"n"`
	Kind    string             `msgpack:"k"`
	ID      string             `msgpack:"i"`
	Deleted bool               `msgpack:"x,omitempty"`
	Data    msgpack.RawMessage `msgpack:"d,omitempty"`
}

// WireRejection is a rejection on the wire.
type WireRejection struct {
	Origin string   `msgpack:"o"`
	ID     [16]byte `msgpack:"i"`
	Epoch  uint64   `msgpack:"e"`
	Seq    uint64   `msgpack:"s"`
	Kind   string   `msgpack:"k"`
	Field  string   `msgpack:"f,omitempty"`
	Reason string   `msgpack:"r"`
}

// PushRequest is a batch of the caller's own events of one epoch, in seq
// order and dense. An empty batch asks for the marks.
type PushRequest struct {
	V      uint16     `msgpack:"v"`
	Store  string     `msgpack:"st"`
	Epoch  uint64     `msgpack:"e"`
	Events WireEvents `msgpack:"ev"`
}

// PushResponse answers a push. Acked is the highest applied position of
// the batch's epoch; Gap, if set, is the position central needs next (the
// batch started after it) and nothing was applied. Marks holds the
// store's marks, of its latest MaxWireMarks epochs.
type PushResponse struct {
	V          uint16         `msgpack:"v"`
	Acked      Position       `msgpack:"a"`
	Gap        *Position      `msgpack:"g,omitempty"`
	Marks      WireMarks      `msgpack:"m,omitempty"`
	Applied    int            `msgpack:"n"`
	Duplicates int            `msgpack:"d"`
	Rejections WireRejections `msgpack:"r,omitempty"`
}

// PullRequest asks for the changes after Cursor. WaitMillis > 0 makes it a
// long poll: an empty answer waits up to that long for a change. Own holds,
// for each epoch older than Epoch (the shop's current one), the last
// position of its own journal the shop holds; central sends the shop's own
// acknowledged events beyond them (after a restore). Snapshot continues a
// resync.
type PullRequest struct {
	V          uint16       `msgpack:"v"`
	Store      string       `msgpack:"st"`
	Cursor     uint64       `msgpack:"c"`
	Epoch      uint64       `msgpack:"e"`
	Own        WireMarks    `msgpack:"o,omitempty"`
	WaitMillis int64        `msgpack:"w"`
	MaxItems   int          `msgpack:"mi"`
	Snapshot   *SnapshotPos `msgpack:"sn,omitempty"`
	// Incarnation is central's incarnation the shop's cursor belongs to
	// ("" unknown: a shop that never saw one, or older than version 3).
	Incarnation string `msgpack:"in,omitempty"`
}

// SnapshotPos is how far a resync has got: the snapshot's ID (the cursor
// the shop continues from once it is done) and the key of the last record
// received ("" before the first page).
type SnapshotPos struct {
	ID    uint64 `msgpack:"id"`
	After string `msgpack:"a"`
}

// PullResponse is one page. Cursor is the cursor after this page; More says
// more pages are ready now. Resync, if set, makes this page part of a
// snapshot: its records replace the shop's, and when Resync.Done the
// cursor becomes Resync.ID.
//
// Incarnation names central's history: a cluster restored from a backup
// gets a new one, and a cursor of another incarnation means nothing
// there. Marks are the store's marks (every epoch's) in the state the page
// was read from; they count only when Incarnation is set (a version-3
// central that knows its incarnation), since a missing list is otherwise
// ambiguous.
type PullResponse struct {
	V           uint16         `msgpack:"v"`
	Cursor      uint64         `msgpack:"c"`
	More        bool           `msgpack:"m,omitempty"`
	Records     WireRecords    `msgpack:"rc,omitempty"`
	Events      WireEvents     `msgpack:"ev,omitempty"`
	Rejections  WireRejections `msgpack:"rj,omitempty"`
	Resync      *Resync        `msgpack:"rs,omitempty"`
	Incarnation string         `msgpack:"in,omitempty"`
	Marks       WireMarks      `msgpack:"mk,omitempty"`
}

// Resync marks a snapshot page.
type Resync struct {
	Reason string `msgpack:"why"`
	ID     uint64 `msgpack:"id"`
	// Next is the key to continue after ("" when Done).
	Next string `msgpack:"n,omitempty"`
	Done bool   `msgpack:"d,omitempty"`
}

// Bounded lists: each decodes its length header, checks it, then
// allocates.
type (
	WireEvents     []WireEvent
	WirePostings   []WirePosting
	WireRecords    []WireRecord
	WireRejections []WireRejection
	WireMarks      []Position
)

func decodeLen(d *msgpack.Decoder, what string, limit int) (int, error) {
	n, err := d.DecodeArrayLen()
	if err != nil {
		return 0, err
	}
	if n > limit {
		return 0, fmt.Errorf("%d %s, over %d", n, what, limit)
	}
	// Every element takes at least a byte: a header claiming more than
	// the bytes left is refused before it allocates.
	if sr, ok := d.Buffered().(*sliceReader); ok && n > len(sr.b)-sr.i {
		return 0, fmt.Errorf("%d %s declared, %d bytes left", n, what, len(sr.b)-sr.i)
	}
	return n, nil
}

func (l *WireEvents) DecodeMsgpack(d *msgpack.Decoder) error {
	n, err := decodeLen(d, "events", MaxWireEvents)
	if err != nil || n < 0 {
		*l = nil
		return err
	}
	*l = make(WireEvents, n)
	sr, _ := d.Buffered().(*sliceReader)
	for i := range *l {
		start := 0
		if sr != nil {
			start = sr.i
		}
		// Called directly, not through d.Decode: the same decoding (a nil
		// element falls back to msgpack's, which zeroes it) without
		// msgpack's reflection to find it, per event.
		if err := (*l)[i].DecodeMsgpack(d); err != nil {
			return fmt.Errorf("events[%d]: %w", i, err)
		}
		if sr != nil {
			(*l)[i].wire = sr.b[start:sr.i:sr.i]
		}
	}
	return nil
}

// wireEventFields is WireEvent without its decoder, for the forms the
// hand-written one leaves to msgpack's (an array-encoded struct).
type wireEventFields WireEvent

// DecodeMsgpack decodes a WireEvent as msgpack's struct decoding does
// (unknown keys skipped, nil for zero values), field by field without
// reflection; from Decode, the body and amounts are slices of the message
// rather than copies. Pushes and pulls decode thousands of events a
// second, on every node.
func (w *WireEvent) DecodeMsgpack(d *msgpack.Decoder) error {
	c, err := d.PeekCode()
	if err != nil {
		return err
	}
	if !msgpcode.IsFixedMap(c) && c != msgpcode.Map16 && c != msgpcode.Map32 {
		return d.Decode((*wireEventFields)(w))
	}
	n, err := d.DecodeMapLen()
	if err != nil {
		return err
	}
	*w = WireEvent{}
	sr, _ := d.Buffered().(*sliceReader)
	for range n {
		k, err := decodeKey(d, sr)
		if err != nil {
			return err
		}
		switch string(k) {
		case "i":
			if sr != nil && sr.i+2+len(w.ID) <= len(sr.b) && sr.b[sr.i] == msgpcode.Bin8 && int(sr.b[sr.i+1]) == len(w.ID) {
				// The form an ID is encoded in: taken without reflection.
				copy(w.ID[:], sr.b[sr.i+2:])
				sr.i += 2 + len(w.ID)
				break
			}
			err = d.Decode(&w.ID)
		case "o":
			w.Origin, err = decodeStr(d, sr)
		case "e":
			w.Epoch, err = d.DecodeUint64()
		case "s":
			w.Seq, err = d.DecodeUint64()
		case "v":
			w.Schema, err = d.DecodeUint16()
		case "h":
			w.HLC, err = d.DecodeUint64()
		case "t":
			w.Occurred, err = d.DecodeInt64()
		case "d":
			w.Date, err = decodeStr(d, sr)
		case "k":
			w.Kind, err = decodeStr(d, sr)
		case "b":
			if sr == nil {
				w.Body, err = d.DecodeRaw()
				break
			}
			var end int
			if end, err = skipValue(sr.b, sr.i); err == nil {
				w.Body = sr.b[sr.i:end:end]
				sr.i = end
			}
		case "p":
			err = w.Postings.DecodeMsgpack(d)
		default:
			err = skip(d, sr)
		}
		if err != nil {
			return fmt.Errorf("field %q: %w", k, err)
		}
	}
	return nil
}

// decodeKey reads a map key. From Decode, a short key is a slice of the
// message: the decoders only compare it, so it costs no allocation.
func decodeKey(d *msgpack.Decoder, sr *sliceReader) ([]byte, error) {
	if sr != nil && sr.i < len(sr.b) && msgpcode.IsFixedString(sr.b[sr.i]) {
		n := int(sr.b[sr.i] & msgpcode.FixedStrMask)
		if end := sr.i + 1 + n; end <= len(sr.b) {
			k := sr.b[sr.i+1 : end]
			sr.i = end
			return k, nil
		}
	}
	k, err := d.DecodeString()
	return []byte(k), err
}

// decodeStr decodes a string. From Decode, a short one already met in
// the message is the same string, not a new copy: a push's events name
// the same origin, kind and date, and mostly the same accounts and
// assets, again and again.
func decodeStr(d *msgpack.Decoder, sr *sliceReader) (string, error) {
	if sr != nil && sr.i < len(sr.b) {
		n, at := -1, sr.i+1
		if c := sr.b[sr.i]; msgpcode.IsFixedString(c) {
			n = int(c & msgpcode.FixedStrMask)
		} else if c == msgpcode.Str8 && sr.i+1 < len(sr.b) {
			n, at = int(sr.b[sr.i+1]), sr.i+2
		}
		if n >= 0 && n <= len(sr.b)-at {
			b := sr.b[at : at+n]
			s, ok := sr.strs[string(b)]
			if !ok {
				s = string(b)
				if sr.strs == nil {
					sr.strs = map[string]string{}
				}
				if len(sr.strs) < maxSharedStrings {
					sr.strs[s] = s
				}
			}
			sr.i = at + n
			return s, nil
		}
	}
	return d.DecodeString()
}

// maxSharedStrings bounds the strings one Decode shares (sliceReader.strs).
const maxSharedStrings = 4096

type wirePostingFields WirePosting

// DecodeMsgpack decodes a WirePosting as msgpack's struct decoding does,
// without reflection (see WireEvent.DecodeMsgpack).
func (p *WirePosting) DecodeMsgpack(d *msgpack.Decoder) error {
	c, err := d.PeekCode()
	if err != nil {
		return err
	}
	sr, _ := d.Buffered().(*sliceReader)
	if msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32 {
		return p.decodeArray(d, sr)
	}
	if !msgpcode.IsFixedMap(c) && c != msgpcode.Map16 && c != msgpcode.Map32 {
		return d.Decode((*wirePostingFields)(p))
	}
	n, err := d.DecodeMapLen()
	if err != nil {
		return err
	}
	*p = WirePosting{}
	for range n {
		k, err := decodeKey(d, sr)
		if err != nil {
			return err
		}
		switch string(k) {
		case "a":
			p.Account, err = decodeStr(d, sr)
		case "s":
			p.Asset, err = decodeStr(d, sr)
		case "m":
			if sr != nil && sr.i+1 < len(sr.b) && sr.b[sr.i] == msgpcode.Bin8 && sr.i+2+int(sr.b[sr.i+1]) <= len(sr.b) {
				// The usual form of a decimal's few bytes: take them in place.
				m := int(sr.b[sr.i+1])
				p.Amount = sr.b[sr.i+2 : sr.i+2+m : sr.i+2+m]
				sr.i += 2 + m
				break
			}
			p.Amount, err = decodeBin(d, sr)
		default:
			err = skip(d, sr)
		}
		if err != nil {
			return fmt.Errorf("field %q: %w", k, err)
		}
	}
	return nil
}

// decodeArray decodes the array form of a posting as msgpack's struct
// decoding does (an empty array is the zero posting, any other length but
// the number of fields an error), with the amount read by decodeBin.
func (p *WirePosting) decodeArray(d *msgpack.Decoder, sr *sliceReader) error {
	n, err := d.DecodeArrayLen()
	if err != nil {
		return err
	}
	*p = WirePosting{}
	switch {
	case n <= 0:
		return nil
	case n != 3:
		return fmt.Errorf("posting: array of %d elements, want 3", n)
	}
	if p.Account, err = decodeStr(d, sr); err != nil {
		return fmt.Errorf("field %q: %w", "a", err)
	}
	if p.Asset, err = decodeStr(d, sr); err != nil {
		return fmt.Errorf("field %q: %w", "s", err)
	}
	if p.Amount, err = decodeBin(d, sr); err != nil {
		return fmt.Errorf("field %q: %w", "m", err)
	}
	return nil
}

// binChunk is how much decodeBin reserves at a time when it cannot see
// how many bytes are left.
const binChunk = 64 << 10

// decodeBin reads a msgpack bin (or str) as bytes, nil for nil. From
// Decode it is a slice of the message, refused if its header claims more
// bytes than are left; otherwise it is read as the bytes arrive, at most
// binChunk ahead of them. msgpack's DecodeBytes (and its reflection for a
// []byte field) reserves the declared length up front, so a header of
// five bytes could make a peer allocate 4 GiB.
func decodeBin(d *msgpack.Decoder, sr *sliceReader) ([]byte, error) {
	n, err := d.DecodeBytesLen()
	if err != nil || n < 0 {
		return nil, err
	}
	if sr != nil {
		if n > len(sr.b)-sr.i {
			return nil, fmt.Errorf("%d bytes declared, %d left: %w", n, len(sr.b)-sr.i, io.ErrUnexpectedEOF)
		}
		b := sr.b[sr.i : sr.i+n : sr.i+n]
		sr.i += n
		return b, nil
	}
	b := make([]byte, 0, min(n, binChunk))
	for len(b) < n {
		k := min(n-len(b), binChunk)
		b = slices.Grow(b, k)[:len(b)+k]
		if err := d.ReadFull(b[len(b)-k:]); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// skip steps over the next value: in place from Decode (skipValue),
// else by msgpack's Skip.
func skip(d *msgpack.Decoder, sr *sliceReader) error {
	if sr == nil {
		return d.Skip()
	}
	end, err := skipValue(sr.b, sr.i)
	if err == nil {
		sr.i = end
	}
	return err
}

func (l *WirePostings) DecodeMsgpack(d *msgpack.Decoder) error {
	n, err := decodeLen(d, "postings", MaxWirePostings)
	if err != nil || n < 0 {
		*l = nil
		return err
	}
	*l = make(WirePostings, n)
	for i := range *l {
		if err := (*l)[i].DecodeMsgpack(d); err != nil { // as WireEvents
			return fmt.Errorf("postings[%d]: %w", i, err)
		}
	}
	return nil
}

func (l *WireRecords) DecodeMsgpack(d *msgpack.Decoder) error {
	n, err := decodeLen(d, "records", MaxWireRecords)
	if err != nil || n < 0 {
		*l = nil
		return err
	}
	*l = make(WireRecords, n)
	for i := range *l {
		if err := d.Decode(&(*l)[i]); err != nil {
			return fmt.Errorf("records[%d]: %w", i, err)
		}
	}
	return nil
}

func (l *WireRejections) DecodeMsgpack(d *msgpack.Decoder) error {
	n, err := decodeLen(d, "rejections", MaxWireRejections)
	if err != nil || n < 0 {
		*l = nil
		return err
	}
	*l = make(WireRejections, n)
	for i := range *l {
		if err := d.Decode(&(*l)[i]); err != nil {
			return fmt.Errorf("rejections[%d]: %w", i, err)
		}
	}
	return nil
}

func (l *WireMarks) DecodeMsgpack(d *msgpack.Decoder) error {
	n, err := decodeLen(d, "marks", MaxWireMarks)
	if err != nil || n < 0 {
		*l = nil
		return err
	}
	*l = make(WireMarks, n)
	for i := range *l {
		if err := d.Decode(&(*l)[i]); err != nil {
			return fmt.Errorf("marks[%d]: %w", i, err)
		}
	}
	return nil
}

// Encode returns the msgpack bytes of a wire message.
func Encode(v any) ([]byte, error) { return msgpack.Marshal(v) }

// Decode decodes one wire message from b, refusing trailing bytes. The
// events it decodes alias b (their bodies, amounts and Wire bytes): b
// must not change while they are in use.
func Decode(b []byte, v any) error {
	r := &sliceReader{b: b}
	if err := msgpack.NewDecoder(r).Decode(v); err != nil {
		return storeline.Errorf(storeline.Invalid, "replication.Decode", "malformed msgpack body: %v", err)
	}
	if n := len(b) - r.i; n != 0 {
		return storeline.Errorf(storeline.Invalid, "replication.Decode", "%d bytes after the message", n)
	}
	return nil
}

// sliceReader is the reader Decode gives msgpack: msgpack reads a
// ByteScanner directly (no buffering of its own), so the decoders above
// know where in b they are and can slice it rather than copy.
type sliceReader struct {
	b []byte
	i int
	// strs holds the strings decodeStr made, by value.
	strs map[string]string
}

func (r *sliceReader) Read(p []byte) (int, error) {
	if r.i >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.i:])
	r.i += n
	return n, nil
}

func (r *sliceReader) ReadByte() (byte, error) {
	if r.i >= len(r.b) {
		return 0, io.EOF
	}
	r.i++
	return r.b[r.i-1], nil
}

func (r *sliceReader) UnreadByte() error {
	if r.i == 0 {
		return errors.New("replication: unread at the start")
	}
	r.i--
	return nil
}

// EventToWire converts a domain event.
func EventToWire(ev storeline.Event) (WireEvent, error) {
	body, err := msgpack.Marshal(ev.Body)
	if err != nil {
		return WireEvent{}, fmt.Errorf("replication: encode body of %s: %w", ev.ID, err)
	}
	w := WireEvent{
		ID: ev.ID, Origin: string(ev.Origin), Epoch: ev.Epoch, Seq: ev.Seq,
		Schema: ev.SchemaVersion, HLC: ev.HLC, Occurred: ev.OccurredAt.UnixNano(),
		Date: string(ev.BusinessDate), Kind: string(ev.Kind), Body: body,
	}
	if len(ev.Postings) > 0 {
		w.Postings = make(WirePostings, len(ev.Postings))
		for i, p := range ev.Postings {
			amt, err := p.Amount.MarshalBinary()
			if err != nil {
				return WireEvent{}, fmt.Errorf("replication: amount of %s: %w", ev.ID, err)
			}
			w.Postings[i] = WirePosting{Account: p.Account, Asset: string(p.Asset), Amount: amt}
		}
	}
	return w, nil
}

// EventFromWire converts back, decoding the body by its kind and checking
// the postings sum to zero per asset. Errors are Invalid and name the
// field.
func EventFromWire(w WireEvent) (storeline.Event, error) {
	ev, refused, err := eventFromWire(w, true)
	if err == nil {
		err = refused
	}
	return ev, err
}

// CheckKind refuses an event kind this build does not know, Invalid naming
// kind. A push holding one is refused whole, as a corrupted one is
// (CheckPush); a pulled page holding one has the rest applied and the kind
// remembered, to be pulled again by a build that knows it (client.go).
func CheckKind(k storeline.EventKind) error {
	if _, err := storeline.NewBody(k); err != nil {
		return storeline.Invalidf("kind", "event kind %q unknown to this build", k)
	}
	return nil
}

// eventFromWire is EventFromWire; without decodeBody it checks the kind
// but leaves the body undecoded (Body nil). An event of a kind this build
// does not know (CheckKind) is converted but for its body and answered
// in refused: it is well formed, only not one this build can apply. err
// is for a malformed event.
func eventFromWire(w WireEvent, decodeBody bool) (ev storeline.Event, refused, err error) {
	ev = storeline.Event{
		ID: w.ID, Origin: storeline.StoreID(w.Origin), Epoch: w.Epoch, Seq: w.Seq,
		SchemaVersion: w.Schema, HLC: w.HLC, OccurredAt: time.Unix(0, w.Occurred).UTC(),
		BusinessDate: storeline.Date(w.Date), Kind: storeline.EventKind(w.Kind),
	}
	if ev.ID.IsZero() {
		return ev, nil, storeline.Invalidf("id", "an event needs an ID")
	}
	if err := storeline.CheckID("origin", w.Origin); err != nil {
		return ev, nil, err
	}
	if w.Epoch == 0 || w.Seq == 0 {
		return ev, nil, storeline.Invalidf("seq", "position %d/%d: epoch and seq start at 1", w.Epoch, w.Seq)
	}
	if w.Schema == 0 || w.Schema > storeline.SchemaVersion {
		return ev, nil, storeline.Invalidf("schema", "schema version %d unknown to this build (%d)", w.Schema, storeline.SchemaVersion)
	}
	// An unknown kind's body is not decoded (there is no type to decode it
	// into), but the rest of the event is checked: it is still a
	// well-formed event or the batch is malformed.
	if refused = CheckKind(ev.Kind); refused == nil && decodeBody {
		body, err := storeline.NewBody(ev.Kind)
		if err != nil {
			return ev, nil, storeline.Invalidf("kind", "%v", err)
		}
		if err := checkValue(w.Body); err != nil {
			return ev, nil, storeline.Invalidf("body", "%s body: %v", ev.Kind, err)
		}
		if err := msgpack.Unmarshal(w.Body, body); err != nil {
			return ev, nil, storeline.Invalidf("body", "%s body: %v", ev.Kind, err)
		}
		ev.Body = body
	}
	if len(w.Postings) > 0 {
		ev.Postings = make([]storeline.Posting, len(w.Postings))
		for i, p := range w.Postings {
			ev.Postings[i] = storeline.Posting{Account: p.Account, Asset: storeline.Asset(p.Asset)}
			if err := ev.Postings[i].Amount.UnmarshalBinary(p.Amount); err != nil {
				return ev, nil, storeline.Invalidf(fmt.Sprintf("postings[%d].amount", i), "%v", err)
			}
		}
	}
	if err := storeline.CheckPostings(ev.Postings); err != nil {
		return ev, nil, &storeline.Error{Kind: storeline.Invalid, Field: "postings", Err: err}
	}
	return ev, refused, nil
}

// checkValue reports whether b starts with a whole msgpack value whose
// every length header fits in the bytes that follow it. msgpack's
// reflection (v5.4.1) reserves a slice of structs to its declared length,
// whatever the input holds, so a body or record is checked before it is
// decoded: then no list it decodes can claim more elements than b has
// bytes. (What follows the value is left as msgpack.Unmarshal leaves it.)
func checkValue(b []byte) error {
	_, err := skipValue(b, 0)
	return err
}

// Change is a master-data change at central's version: a record, or a
// tombstone when Record is nil.
type Change struct {
	Version uint64
	Kind    storeline.MasterKind
	ID      string
	Record  storeline.Record
}

// ChangeToWire converts a change.
func ChangeToWire(c Change) (WireRecord, error) {
	w := WireRecord{Version: c.Version, Kind: string(c.Kind), ID: c.ID, Deleted: c.Record == nil}
	if c.Record != nil {
		b, err := msgpack.Marshal(c.Record)
		if err != nil {
			return w, fmt.Errorf("replication: encode %s %s: %w", c.Kind, c.ID, err)
		}
		w.Data = b
	}
	return w, nil
}

// ChangeFromWire converts back, decoding and validating the record.
func ChangeFromWire(w WireRecord) (Change, error) {
	c := Change{Version: w.Version, Kind: storeline.MasterKind(w.Kind), ID: w.ID}
	rec, err := storeline.NewRecord(c.Kind)
	if err != nil {
		return c, storeline.Invalidf("kind", "%v", err)
	}
	if w.ID == "" {
		return c, storeline.Invalidf("id", "a record needs an id")
	}
	if w.Deleted {
		return c, nil
	}
	if err := checkValue(w.Data); err != nil {
		return c, storeline.Invalidf("data", "%s %s: %v", c.Kind, c.ID, err)
	}
	if err := msgpack.Unmarshal(w.Data, rec); err != nil {
		return c, storeline.Invalidf("data", "%s %s: %v", c.Kind, c.ID, err)
	}
	if rec.MasterID() != w.ID {
		return c, storeline.Invalidf("id", "record %s carries id %q", w.ID, rec.MasterID())
	}
	c.Record = rec
	return c, nil
}

// Rejection records that central refused an event for a business reason
// (an unknown item): the event is acknowledged, never resent, and the
// rejection flows back down to its origin.
type Rejection struct {
	Origin storeline.StoreID
	ID     storeline.EventID
	Pos    Position
	Kind   storeline.Kind
	Field  string
	Reason string
}

// RejectionToWire converts a rejection.
func RejectionToWire(r Rejection) WireRejection {
	return WireRejection{Origin: string(r.Origin), ID: r.ID, Epoch: r.Pos.Epoch, Seq: r.Pos.Seq,
		Kind: r.Kind.String(), Field: r.Field, Reason: r.Reason}
}

// RejectionFromWire converts back.
func RejectionFromWire(w WireRejection) Rejection {
	return Rejection{Origin: storeline.StoreID(w.Origin), ID: w.ID, Pos: Position{w.Epoch, w.Seq},
		Kind: storeline.ParseKind(w.Kind), Field: w.Field, Reason: w.Reason}
}
