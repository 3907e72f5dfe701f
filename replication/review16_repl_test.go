package replication_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestReview16RestoreAgainGetsTheEarlierRestoresEventsBack: a shop is
// restored from backup B (epoch 1000), sells, and central acknowledges
// it; the shop is then restored from the same B again (epoch 2000: the
// only backup there is). The sales of epoch 1000 are the shop's own
// acknowledged events it lacks, of an epoch it holds nothing of: they
// must come back (README, pull), or the shop's stock, shift totals and
// loyalty rights miss them for good. Whatever it sells after the second
// restore reaches central once, none taken for a duplicate.
func TestReview16RestoreAgainGetsTheEarlierRestoresEventsBack(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(10)...)
	srv := c.serve(t, tokens())
	rc := fastReplication(srv.URL)

	n := startShop(t, t.TempDir(), rc)
	early := sell(t, n.Ledger(), 10)
	waitFor(t, "the first sales acknowledged", 20*time.Second, func() bool { return caughtUp(n) })
	var backup bytes.Buffer
	if err := n.Ledger().Backup(&backup); err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}

	restoreShop := func(epoch uint64) string {
		t.Helper()
		dir := t.TempDir()
		if err := ledger.Restore(dir, bytes.NewReader(backup.Bytes()), epoch); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	n2 := startShop(t, restoreShop(1000), rc)
	mid := sell(t, n2.Ledger(), 20)
	waitFor(t, "epoch 1000 acknowledged", 20*time.Second, func() bool { return caughtUp(n2) })
	if err := n2.Stop(); err != nil {
		t.Fatal(err)
	}

	n3 := startShop(t, restoreShop(2000), rc)
	l := n3.Ledger()
	late := sell(t, l, 5)
	waitFor(t, "epoch 2000 acknowledged", 20*time.Second, func() bool { return caughtUp(n3) })
	waitFor(t, "epoch 1000's sales back at the shop", 20*time.Second, func() bool {
		for _, ev := range mid {
			if _, err := l.Event(shop, ev.ID); err != nil {
				return false
			}
		}
		return true
	})
	for _, ev := range late {
		if ev.Epoch != 2000 {
			t.Errorf("sale after the second restore at epoch %d, want 2000", ev.Epoch)
		}
	}
	sold := append(append(append([]storeline.Event{}, early...), mid...), late...)
	checkExactlyOnce(t, c, sold, nil)
	checkBalances(t, l, c.l)
}
