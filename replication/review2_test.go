package replication_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

// allocated returns the bytes fn allocated.
func allocated(fn func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	fn()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestReview2PostingAmountHeaderBeyondBody: a posting's amount whose bin32
// header claims 256 MiB, in a body of a few dozen bytes, in the map form
// and the array form of a posting, is refused (Invalid) without
// allocating what the header claims. Before, the amount was read by
// msgpack's DecodeBytes (or its reflection, for the array form), which
// reserves the whole declared length up front: any shop (or a central
// answering a pull) could make its peer allocate 4 GiB per request.
func TestReview2PostingAmountHeaderBeyondBody(t *testing.T) {
	bin32 := []byte{0xc6, 0x10, 0x00, 0x00, 0x00} // bin32 of 256 MiB, then nothing
	push := func(posting []byte) []byte {
		// {"v": 3, "st": "s1", "e": 1, "ev": [{"p": [posting]}]}
		b := []byte{0x84, 0xa1, 'v', 0x03, 0xa2, 's', 't', 0xa2, 's', '1', 0xa1, 'e', 0x01, 0xa2, 'e', 'v', 0x91,
			0x81, 0xa1, 'p', 0x91}
		return append(b, posting...)
	}
	pull := func(posting []byte) []byte {
		// {"v": 3, "c": 1, "ev": [{"p": [posting]}]}
		b := []byte{0x83, 0xa1, 'v', 0x03, 0xa1, 'c', 0x01, 0xa2, 'e', 'v', 0x91, 0x81, 0xa1, 'p', 0x91}
		return append(b, posting...)
	}
	forms := map[string][]byte{
		"map":   append([]byte{0x81, 0xa1, 'm'}, bin32...),
		"array": append([]byte{0x93, 0xa1, 'a', 0xa3, 'E', 'U', 'R'}, bin32...),
	}
	for name, posting := range forms {
		for what, body := range map[string][]byte{"push": push(posting), "pull": pull(posting)} {
			var err error
			n := allocated(func() {
				if what == "push" {
					err = replication.Decode(body, &replication.PushRequest{})
				} else {
					err = replication.Decode(body, &replication.PullResponse{})
				}
			})
			if storeline.KindOf(err) != storeline.Invalid {
				t.Errorf("%s, %s form: Decode = %v, want Invalid", what, name, err)
			}
			if n > 8<<20 {
				t.Errorf("%s, %s form: %d MiB allocated to refuse a %d-byte body", what, name, n>>20, len(body))
			}
		}
	}
}

// pagesFail is a node that cannot store pulled pages (its disk is full)
// while everything else works; it counts the pages refused.
type pagesFail struct {
	replication.Local
	refused *atomic.Int32
}

func (l pagesFail) ApplyPage(context.Context, replication.LocalPage) (replication.PageResult, error) {
	l.refused.Add(1)
	return replication.PageResult{}, storeline.Errorf(storeline.InsufficientStorage, "test", "disk full")
}

// TestReview2StateNotOnlineWhilePagesCannotBeApplied: central answers
// every pull, but the node cannot store a single page, so it never gets
// master data (prices, items) or rejections. Health must not say
// "online" ("the last push and the last pull both succeeded"): before,
// a failed ApplyPage left the pull side as it was, so one successful push
// made the shop "online" for good.
func TestReview2StateNotOnlineWhilePagesCannotBeApplied(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(10)...)
	srv := c.serve(t, tokens())
	l, _ := shopLedger(t, 3)
	var refused atomic.Int32
	cl, _ := startTestClient(t, pagesFail{node.LedgerLocal(l, nil), &refused}, []string{srv.URL},
		func(cc *replication.ClientConfig) { cc.BackoffMax = 10 * time.Millisecond })
	waitFor(t, "the journal pushed and pages refused", 10*time.Second, func() bool {
		return cl.Status().Acked == replication.Position{Epoch: 1, Seq: 3} && refused.Load() >= 3
	})
	n := refused.Load()
	waitFor(t, "another page refused", 10*time.Second, func() bool { return refused.Load() > n })
	if st := cl.Status(); st.State == "online" {
		t.Errorf("no page can be stored: status %+v, want not online", st)
	}
}

// TestReview2BodyListHeaderBeyondBody: an event body (or a master record)
// whose list header claims a quarter of a million elements, in a body of
// a few bytes, is refused (Invalid) without allocating what the header
// claims. Before, msgpack's reflection (v5.4.1 preallocates a slice of
// structs to its declared length whatever its alloc-limit flag says, see
// decodeSliceValue) reserved it all: an array32 header of 2^32-1 lines in
// one pushed receipt asked central for about a terabyte, a fatal out of
// memory that no recover catches; and a central page could do the same to
// a shop.
func TestReview2BodyListHeaderBeyondBody(t *testing.T) {
	n := 1 << 18
	claim := []byte{0xdd, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)} // array32 of n, then nothing
	body := append([]byte{0x81, 0xa5, 'L', 'i', 'n', 'e', 's'}, claim...)
	w := replication.WireEvent{ID: storeline.NewEventID(), Origin: "s1", Epoch: 1, Seq: 1,
		Schema: storeline.SchemaVersion, Kind: string(storeline.KindReceipt), Body: body}
	var err error
	got := allocated(func() { _, err = replication.EventFromWire(w) })
	if storeline.KindOf(err) != storeline.Invalid {
		t.Errorf("EventFromWire: %v, want Invalid", err)
	}
	if got > 8<<20 {
		t.Errorf("receipt: %d MiB allocated to refuse a %d-byte body (the claim is %d MiB)",
			got>>20, len(body), n*int(unsafe.Sizeof(storeline.Line{}))>>20)
	}

	data := append([]byte{0x82, 0xa2, 'I', 'D', 0xa2, 's', '1', 0xab, 'D', 'e', 'p', 'a', 'r', 't', 'm', 'e', 'n', 't', 's'}, claim...)
	r := replication.WireRecord{Version: 1, Kind: string(storeline.KindStore), ID: "s1", Data: data}
	got = allocated(func() { _, err = replication.ChangeFromWire(r) })
	if storeline.KindOf(err) != storeline.Invalid {
		t.Errorf("ChangeFromWire: %v, want Invalid", err)
	}
	if got > 8<<20 {
		t.Errorf("store record: %d MiB allocated to refuse a %d-byte record", got>>20, len(data))
	}
}
