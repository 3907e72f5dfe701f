package ledger_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestReviewPulledKeyTooLongRefused: a pulled page whose tombstone ID,
// meta key or cursor key is longer than a Badger key may be (65000 bytes)
// passed ApplyPulled's checks and failed in the committer's transaction,
// which poisoned the ledger: every later call Unavailable until reopened.
// It must be refused as a clear client error, the ledger still serving.
func TestReviewPulledKeyTooLongRefused(t *testing.T) {
	ctx := context.Background()
	long := strings.Repeat("x", 70000)
	for _, tc := range []struct {
		name string
		page ledger.PulledPage
	}{
		{"tombstone id", ledger.PulledPage{CursorKey: "cur", To: []byte("c1"), Records: []ledger.PulledRecord{{Kind: storeline.KindItem, ID: long}}}},
		{"meta key", ledger.PulledPage{CursorKey: "cur", To: []byte("c1"), Meta: map[string][]byte{long: []byte("v")}}},
		{"cursor key", ledger.PulledPage{CursorKey: long, To: []byte("c1")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t.TempDir())
			l := open(t, o)
			_, err := l.ApplyPulled(ctx, tc.page)
			if err == nil || errors.Is(err, storeline.Unavailable) || errors.Is(err, storeline.Internal) {
				t.Fatalf("page with a %d-byte %s: %.160v, want a client error (Invalid or TooLarge)", len(long), tc.name, err)
			}
			// The ledger goes on serving.
			if _, err := l.PutMaster(ctx, []storeline.Record{pulledItem("i1", "A")}); err != nil {
				t.Fatalf("PutMaster after the refused page: %v", err)
			}
			mustAppend(t, l, receiptEvent(eid(1), 1, 1))
		})
	}
}

// TestMetaKeyTooLongRefused: SetMeta refuses a key longer than a Badger
// key may be as Invalid, and the ledger goes on serving (it used to fail
// in the committer's transaction and poison the ledger).
func TestMetaKeyTooLongRefused(t *testing.T) {
	l := open(t, testOptions(t.TempDir()))
	ctx := context.Background()
	err := l.SetMeta(ctx, strings.Repeat("k", 70000), []byte("v"))
	if storeline.KindOf(err) != storeline.Invalid {
		t.Fatalf("SetMeta of a 70000-byte key: %v, want Invalid", err)
	}
	if err := l.SetMeta(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("SetMeta after the refusal: %v", err)
	}
}
