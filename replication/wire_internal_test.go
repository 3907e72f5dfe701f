package replication

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
)

// sameWireEvent reports how a and b differ (nil if they do not), byte
// slices compared by content.
func sameWireEvent(a, b *WireEvent) error {
	if a.ID != b.ID || a.Origin != b.Origin || a.Epoch != b.Epoch || a.Seq != b.Seq || a.Schema != b.Schema ||
		a.HLC != b.HLC || a.Occurred != b.Occurred || a.Date != b.Date || a.Kind != b.Kind {
		return fmt.Errorf("header %+v, want %+v", a, b)
	}
	if !bytes.Equal(a.Body, b.Body) {
		return fmt.Errorf("body %x, want %x", a.Body, b.Body)
	}
	if len(a.Postings) != len(b.Postings) || (a.Postings == nil) != (b.Postings == nil) {
		return fmt.Errorf("%d postings, want %d", len(a.Postings), len(b.Postings))
	}
	for i, p := range a.Postings {
		q := b.Postings[i]
		if p.Account != q.Account || p.Asset != q.Asset || !bytes.Equal(p.Amount, q.Amount) {
			return fmt.Errorf("posting %d %+v, want %+v", i, p, q)
		}
	}
	return nil
}

func testWireEvent(t testing.TB, seq uint64) []byte {
	t.Helper()
	ev := storeline.Event{ID: storeline.NewEventID(), Origin: "s1", Epoch: 1, Seq: seq, SchemaVersion: storeline.SchemaVersion,
		HLC: 7, OccurredAt: time.Unix(1700000000, 5).UTC(), BusinessDate: "2026-11-29", Kind: storeline.KindTransfer, Body: &storeline.Transfer{Reason: "delivery", Ref: "d1"},
		Postings: []storeline.Posting{{Account: "cash/s1/t1", Asset: "EUR", Amount: decimal.RequireFromString("2.50")},
			{Account: "revenue/s1", Asset: "EUR", Amount: decimal.RequireFromString("-2.50")}}}
	w, err := EventToWire(ev)
	if err != nil {
		t.Fatal(err)
	}
	b, err := msgpack.Marshal(&w)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWireEventDecoder: the hand-written WireEvent decoder gives what
// msgpack's struct decoding gives, from Decode (slices of the message,
// with the event's exact bytes as Wire) and from msgpack.Unmarshal.
func TestWireEventDecoder(t *testing.T) {
	evs := []msgpack.RawMessage{testWireEvent(t, 1), testWireEvent(t, 2)}
	body, err := msgpack.Marshal(map[string]any{"v": 2, "st": "s1", "e": 1, "ev": evs, "zz": []int{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	var req PushRequest
	if err := Decode(body, &req); err != nil {
		t.Fatal(err)
	}
	if len(req.Events) != 2 {
		t.Fatalf("%d events", len(req.Events))
	}
	for i := range evs {
		var want wireEventFields
		if err := msgpack.Unmarshal(evs[i], &want); err != nil {
			t.Fatal(err)
		}
		if err := sameWireEvent(&req.Events[i], (*WireEvent)(&want)); err != nil {
			t.Errorf("event %d by Decode: %v", i, err)
		}
		if !bytes.Equal(req.Events[i].Wire(), evs[i]) {
			t.Errorf("event %d: Wire() is not the event's bytes", i)
		}
		var got WireEvent
		if err := msgpack.Unmarshal(evs[i], &got); err != nil {
			t.Fatal(err)
		}
		if err := sameWireEvent(&got, (*WireEvent)(&want)); err != nil {
			t.Errorf("event %d by Unmarshal: %v", i, err)
		}
		if got.Wire() != nil {
			t.Errorf("event %d by Unmarshal has Wire bytes", i)
		}
	}
}

// FuzzWireEventDecoder: on any bytes, the hand-written decoder and
// msgpack's struct decoding agree: both fail, or both give the same event.
func FuzzWireEventDecoder(f *testing.F) {
	f.Add(testWireEvent(f, 1))
	f.Add([]byte{0xc0})
	f.Add([]byte{0x91, 0x80})
	f.Add([]byte{0x81, 0xa1, 'p', 0x91, 0x81, 0xa1, 'm', 0xc4, 0x02, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var want wireEventFields
		errWant := msgpack.Unmarshal(b, &want)
		var got WireEvent
		errGot := Decode(b, &got)
		if errWant != nil {
			if errGot == nil {
				t.Fatalf("Decode accepted what msgpack refuses (%v)", errWant)
			}
			return
		}
		if errGot != nil {
			// Decode refuses trailing bytes msgpack.Unmarshal ignores.
			var n int
			d := msgpack.NewDecoder(bytes.NewReader(b))
			if d.Skip() == nil {
				n = len(b) - d.Buffered().(*bytes.Reader).Len()
			}
			if n == len(b) {
				t.Fatalf("msgpack decodes, Decode refuses: %v", errGot)
			}
			return
		}
		if err := sameWireEvent(&got, (*WireEvent)(&want)); err != nil {
			t.Fatal(err)
		}
	})
}

// TestListHeaderBeyondBody: a list header claiming more elements than the
// body has bytes left is refused (Invalid) before anything is allocated
// for it, so a few bytes cannot make central allocate megabytes.
func TestListHeaderBeyondBody(t *testing.T) {
	// {"v": 2, "st": "s1", "e": 1, "ev": array32 of 10,000}, then nothing.
	b := []byte{0x84, 0xa1, 'v', 0x02, 0xa2, 's', 't', 0xa2, 's', '1', 0xa1, 'e', 0x01, 0xa2, 'e', 'v', 0xdd, 0x00, 0x00, 0x27, 0x10}
	var req PushRequest
	err := Decode(b, &req)
	if storeline.KindOf(err) != storeline.Invalid || !strings.Contains(err.Error(), "declared") {
		t.Fatalf("Decode: %v; want Invalid naming the declared length", err)
	}
	if allocs := testing.AllocsPerRun(20, func() { _ = Decode(b, &PushRequest{}) }); allocs > 40 {
		t.Errorf("%v allocations to refuse it", allocs)
	}
}

// TestWireListsDecoder: the event and posting lists, which call their
// elements' decoders directly, decode a nil element and an array-encoded
// one as msgpack's reflection does.
func TestWireListsDecoder(t *testing.T) {
	ev := testWireEvent(t, 1)
	var w wireEventFields
	if err := msgpack.Unmarshal(ev, &w); err != nil {
		t.Fatal(err)
	}
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	var buf bytes.Buffer
	enc.Reset(&buf)
	enc.UseArrayEncodedStructs(true)
	if err := enc.Encode(&w); err != nil {
		t.Fatal(err)
	}
	asArray := buf.Bytes()
	// An event whose postings hold a nil and an array-encoded posting.
	p := []any{nil, []any{"cash/s1", "EUR", []byte{1, 2}}, map[string]any{"a": "x", "s": "EUR", "m": []byte{3}}}
	odd, err := msgpack.Marshal(map[string]any{"i": w.ID[:], "o": "s1", "e": 1, "s": 4, "p": p})
	if err != nil {
		t.Fatal(err)
	}
	body, err := msgpack.Marshal(map[string]any{"v": 2, "st": "s1", "e": 1,
		"ev": []msgpack.RawMessage{ev, {0xc0}, asArray, odd}})
	if err != nil {
		t.Fatal(err)
	}
	var got PushRequest
	if err := Decode(body, &got); err != nil {
		t.Fatal(err)
	}
	// The reference: msgpack's reflection all the way down (postings
	// included, so no decoder of this package is involved).
	type refEvent struct {
		ID       [16]byte            `msgpack:"i"`
		Origin   string              `msgpack:"o"`
		Epoch    uint64              `msgpack:"e"`
		Seq      uint64              `msgpack:"s"`
		Schema   uint16              `msgpack:"v"`
		HLC      uint64              `msgpack:"h"`
		Occurred int64               `msgpack:"t"`
		Date     string              `msgpack:"d"`
		Kind     string              `msgpack:"k"`
		Body     msgpack.RawMessage  `msgpack:"b"`
		Postings []wirePostingFields `msgpack:"p"`
	}
	var want struct {
		Events []refEvent `msgpack:"ev"`
	}
	if err := msgpack.Unmarshal(body, &want); err != nil {
		t.Fatal(err)
	}
	if len(got.Events) != len(want.Events) {
		t.Fatalf("%d events, want %d", len(got.Events), len(want.Events))
	}
	for i := range got.Events {
		r := want.Events[i]
		wi := WireEvent{ID: r.ID, Origin: r.Origin, Epoch: r.Epoch, Seq: r.Seq, Schema: r.Schema, HLC: r.HLC,
			Occurred: r.Occurred, Date: r.Date, Kind: r.Kind, Body: r.Body}
		for _, p := range r.Postings {
			wi.Postings = append(wi.Postings, WirePosting(p))
		}
		if err := sameWireEvent(&got.Events[i], &wi); err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}
}
