package ledger_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// openErr opens with o, expecting a refusal.
func openErr(t *testing.T, o ledger.Options) error {
	t.Helper()
	l, err := ledger.Open(o)
	if err == nil {
		l.Close()
	}
	return err
}

// otherStore returns o as the options of another store.
func otherStore(o ledger.Options) ledger.Options {
	o.Origin = "s2"
	return o
}

// TestOpenRefusesOtherOrigin: a data directory keeps its origin; opening
// it as another store is refused, and it opens again as its own.
func TestOpenRefusesOtherOrigin(t *testing.T) {
	o := testOptions(t.TempDir())
	l := open(t, o)
	mustAppend(t, l, receiptEvent(eid(1), 2, 1))
	l.Close()
	err := openErr(t, otherStore(o))
	if !errors.Is(err, ledger.ErrOriginMismatch) || !errors.Is(err, storeline.Invalid) {
		t.Fatalf("Open as s2 = %v, want Invalid ErrOriginMismatch", err)
	}
	r := open(t, o)
	if p := r.Position(); p != (ledger.Position{Epoch: 1, Seq: 1}) {
		t.Fatalf("Position = %v, want 1/1", p)
	}
	checkConservation(t, r)
}

// TestOpenAdoptsOriginOfOldDirectory: a directory written before the
// origin was persisted takes the configured one, and keeps it; one never
// written to also gets every state key, so its backup restores.
func TestOpenAdoptsOriginOfOldDirectory(t *testing.T) {
	o := testOptions(t.TempDir())
	l := open(t, o)
	mustAppend(t, l, receiptEvent(eid(1), 2, 1))
	if err := l.ForgetOrigin(false); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = open(t, o)
	if p := l.Position(); p != (ledger.Position{Epoch: 1, Seq: 1}) {
		t.Fatalf("Position = %v, want 1/1", p)
	}
	l.Close()
	if err := openErr(t, otherStore(o)); !errors.Is(err, ledger.ErrOriginMismatch) {
		t.Fatalf("Open as s2 after adoption = %v, want ErrOriginMismatch", err)
	}

	fresh := testOptions(t.TempDir())
	l = open(t, fresh)
	if err := l.ForgetOrigin(true); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = open(t, fresh)
	var buf bytes.Buffer
	if err := l.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	if err := ledger.Restore(filepath.Join(t.TempDir(), "r"), &buf, 1000); err != nil {
		t.Fatalf("Restore of an adopted empty ledger: %v", err)
	}
}

// TestRestoreKeepsOrigin: a restored backup is its store's ledger; it
// cannot be started as another store.
func TestRestoreKeepsOrigin(t *testing.T) {
	l := open(t, testOptions(t.TempDir()))
	mustAppend(t, l, receiptEvent(eid(1), 2, 1))
	var buf bytes.Buffer
	if err := l.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "r")
	if err := ledger.Restore(dir, &buf, 1000); err != nil {
		t.Fatal(err)
	}
	o := testOptions(dir)
	if err := openErr(t, otherStore(o)); !errors.Is(err, ledger.ErrOriginMismatch) {
		t.Fatalf("Open of s1's backup as s2 = %v, want ErrOriginMismatch", err)
	}
	r := open(t, o)
	if p := r.Position(); p != (ledger.Position{Epoch: 1000}) {
		t.Fatalf("Position = %v, want 1000/0", p)
	}
}
