package replication

import (
	"testing"
)

// TestFirstLost: where the push loop resends from when a probe's answer
// shows central lacking own events it acknowledged.
func TestFirstLost(t *testing.T) {
	p := func(e, s uint64) Position { return Position{e, s} }
	for _, tc := range []struct {
		name        string
		marks, held []Position
		next        Position
		want        Position
		lost        bool
	}{
		{"central holds all", []Position{p(1, 50)}, []Position{p(1, 50)}, p(1, 50), Position{}, false},
		{"central ahead of next (answer raced a push)", []Position{p(1, 60)}, []Position{p(1, 70)}, p(1, 50), Position{}, false},
		{"not yet pushed is not lost", []Position{p(1, 50)}, []Position{p(1, 80)}, p(1, 50), Position{}, false},
		{"current epoch below next", []Position{p(1, 30)}, []Position{p(1, 80)}, p(1, 50), p(1, 30), true},
		{"older epoch below what is held", []Position{p(1, 10), p(2, 40)}, []Position{p(1, 20), p(2, 40)}, p(2, 40), p(1, 10), true},
		{"older epoch central never heard of", []Position{p(2, 40)}, []Position{p(1, 20), p(2, 40)}, p(2, 40), p(1, 0), true},
		{"later epoch not pushed yet", []Position{p(1, 20)}, []Position{p(1, 20), p(2, 40)}, p(1, 20), Position{}, false},
		{"the earliest epoch wins", []Position{p(1, 5), p(2, 1)}, []Position{p(1, 20), p(2, 40)}, p(2, 40), p(1, 5), true},
	} {
		got, lost := firstLost(tc.marks, tc.held, tc.next)
		if got != tc.want || lost != tc.lost {
			t.Errorf("%s: firstLost = %v, %t; want %v, %t", tc.name, got, lost, tc.want, tc.lost)
		}
	}
}

// TestCentralLost: when a pull answer's marks make the shop probe.
func TestCentralLost(t *testing.T) {
	p := func(e, s uint64) Position { return Position{e, s} }
	for _, tc := range []struct {
		name       string
		marks, own []Position
		ack        Position
		want       bool
	}{
		{"nothing acknowledged", nil, nil, Position{}, false},
		{"marks at the ack", []Position{p(1, 50)}, nil, p(1, 50), false},
		{"marks past the ack (an answer not yet read)", []Position{p(1, 60)}, nil, p(1, 50), false},
		{"mark below the ack", []Position{p(1, 30)}, nil, p(1, 50), true},
		{"no mark of the ack's epoch", []Position{p(1, 30)}, nil, p(2, 5), true},
		{"older epoch below what is held", []Position{p(1, 10), p(2, 5)}, []Position{p(1, 20)}, p(2, 5), true},
		{"older epoch whole", []Position{p(1, 20), p(2, 5)}, []Position{p(1, 20)}, p(2, 5), false},
		{"own epoch at the ack's not judged by own", []Position{p(2, 5)}, []Position{p(2, 9)}, p(2, 5), false},
	} {
		if got := centralLost(tc.marks, tc.own, tc.ack); got != tc.want {
			t.Errorf("%s: centralLost = %t, want %t", tc.name, got, tc.want)
		}
	}
}

// TestIncarnationWireCompat: the version-3 fields are only added, so a
// version-2 peer decodes a version-3 message (ignoring them) and a
// version-2 message decodes as "incarnation unknown".
func TestIncarnationWireCompat(t *testing.T) {
	// The version-2 shapes, as a peer of the last release has them.
	type pullRequestV2 struct {
		V          uint16       `msgpack:"v"`
		Store      string       `msgpack:"st"`
		Cursor     uint64       `msgpack:"c"`
		Epoch      uint64       `msgpack:"e"`
		Own        WireMarks    `msgpack:"o,omitempty"`
		WaitMillis int64        `msgpack:"w"`
		MaxItems   int          `msgpack:"mi"`
		Snapshot   *SnapshotPos `msgpack:"sn,omitempty"`
	}
	type pullResponseV2 struct {
		V          uint16         `msgpack:"v"`
		Cursor     uint64         `msgpack:"c"`
		More       bool           `msgpack:"m,omitempty"`
		Records    WireRecords    `msgpack:"rc,omitempty"`
		Events     WireEvents     `msgpack:"ev,omitempty"`
		Rejections WireRejections `msgpack:"rj,omitempty"`
		Resync     *Resync        `msgpack:"rs,omitempty"`
	}
	b, err := Encode(&PullResponse{V: ProtocolVersion, Cursor: 7, Incarnation: "abc", Marks: WireMarks{{1, 2}},
		Resync: &Resync{Reason: "restored", ID: 9}})
	if err != nil {
		t.Fatal(err)
	}
	var old pullResponseV2
	if err := Decode(b, &old); err != nil {
		t.Fatalf("a version-2 shop cannot decode a version-3 answer: %v", err)
	}
	if old.Cursor != 7 || old.Resync == nil || old.Resync.ID != 9 {
		t.Fatalf("version-2 decode = %+v", old)
	}
	var back PullResponse
	if err := Decode(b, &back); err != nil || back.Incarnation != "abc" || len(back.Marks) != 1 || back.Marks[0] != (Position{1, 2}) {
		t.Fatalf("round trip = %+v, %v", back, err)
	}

	b, err = Encode(&pullRequestV2{V: ProtocolVersion - 1, Store: "s1", Cursor: 5, Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	var req PullRequest
	if err := Decode(b, &req); err != nil || req.Incarnation != "" || req.Cursor != 5 {
		t.Fatalf("a version-2 request decodes as %+v, %v; want incarnation unknown", req, err)
	}
	if err := CheckVersion(req.V); err != nil {
		t.Fatalf("a version-2 shop is refused: %v", err)
	}
	// The answer to a page without an incarnation (an older backend)
	// carries no marks: they would read as "central has none".
	w, err := PageToWire(Page{Cursor: 3, Marks: []Position{{1, 2}}})
	if err != nil || w.Marks != nil || w.Incarnation != "" {
		t.Fatalf("page without incarnation = %+v, %v; want no marks", w, err)
	}
}

// TestNewIncarnation: only two known, different incarnations mean
// central's history changed.
func TestNewIncarnation(t *testing.T) {
	for _, tc := range []struct {
		stored, answer string
		want           bool
	}{
		{"", "", false}, {"", "a", false}, {"a", "", false}, {"a", "a", false}, {"a", "b", true},
	} {
		if got := newIncarnation(tc.stored, tc.answer); got != tc.want {
			t.Errorf("newIncarnation(%q, %q) = %t, want %t", tc.stored, tc.answer, got, tc.want)
		}
	}
}
