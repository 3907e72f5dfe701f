package replication_test

import (
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/replication"
)

// FuzzDecodePush: whatever bytes arrive, decoding and checking a push
// either fails with Invalid or Forbidden, or yields a batch that is the
// caller's, of one epoch, dense; it never panics.
func FuzzDecodePush(f *testing.F) {
	_, evs := shopLedger(f, 3)
	good, err := replication.Encode(&replication.PushRequest{V: replication.ProtocolVersion, Store: "s1", Epoch: 1, Events: wireEvents(f, evs)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{0x80})
	f.Add([]byte{0x84, 0xa1, 'v', 0x02, 0xa2, 's', 't', 0xa2, 's', '1', 0xa1, 'e', 0x01, 0xa2, 'e', 'v', 0xdd, 0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var req replication.PushRequest
		if err := replication.Decode(b, &req); err != nil {
			if storeline.KindOf(err) != storeline.Invalid {
				t.Fatalf("decode error of kind %v: %v", storeline.KindOf(err), err)
			}
			return
		}
		batch, err := replication.CheckPush("s1", &req)
		if err != nil {
			if k := storeline.KindOf(err); k != storeline.Invalid && k != storeline.Forbidden {
				t.Fatalf("check error of kind %v: %v", k, err)
			}
			return
		}
		for i, ev := range batch.Events {
			if ev.Origin != "s1" || ev.Epoch != batch.Epoch || (i > 0 && ev.Seq != batch.Events[i-1].Seq+1) {
				t.Fatalf("accepted event %d at %s/%d/%d in batch %d", i, ev.Origin, ev.Epoch, ev.Seq, batch.Epoch)
			}
		}
	})
}

// FuzzDecodePage: a page from central decodes or fails with Invalid, and
// its records and events convert or fail with an error, never a panic.
func FuzzDecodePage(f *testing.F) {
	p, err := replication.PageToWire(replication.Page{Cursor: 3, Changes: []replication.Change{{Version: 3, Kind: storeline.KindItem, ID: "i0", Record: items(1)[0]}}})
	if err != nil {
		f.Fatal(err)
	}
	b, err := replication.Encode(p)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var resp replication.PullResponse
		if err := replication.Decode(b, &resp); err != nil {
			return
		}
		for _, r := range resp.Records {
			_, _ = replication.ChangeFromWire(r)
		}
		for _, e := range resp.Events {
			_, _ = replication.EventFromWire(e)
		}
	})
}
