package ledger_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/storeline/storeline/ledger"
)

// TestMetaKeysSeeksGroups: MetaKeys hops from one group of keys to the
// next as a reader of shops' accounts does, within its prefix only.
func TestMetaKeysSeeksGroups(t *testing.T) {
	r, err := ledger.OpenReplica(filepath.Join(t.TempDir(), "r"), ledger.ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	keys := []string{"a/s1/x", "a/s1/y", "a/s10/x", "a/s2/x", "a/s2/z", "b/s3/x", "a"}
	if _, err := r.Apply(1, func(tx *ledger.ReplicaTxn) error {
		for _, k := range keys {
			if err := tx.SetMeta(k, []byte("v")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var groups []string
	if err := r.View(func(tx *ledger.ReplicaTxn) error {
		mk := tx.MetaKeys("a/")
		defer mk.Close()
		for from := ""; ; {
			k, ok := mk.Seek(from)
			if !ok {
				return nil
			}
			g, _, _ := strings.Cut(strings.TrimPrefix(k, "a/"), "/")
			groups = append(groups, g)
			from = g + "0" // past g's keys: '0' follows '/'
		}
	}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(groups, ","); got != "s1,s10,s2" {
		t.Fatalf("groups under a/: %s, want s1,s10,s2", got)
	}
}
