package node_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/node"
)

// TestReview12ReplicatingShopRefusesHeadOfficeKinds: on a shop that
// replicates, an import of a kind head office sends (items, prices,
// stores, customers, ...) is refused (409 naming the record's kind) and
// stores nothing: the next resync would have removed it without a word,
// taking the tills' items with it. Kinds the shop issues itself (sellers,
// terminals) and kinds the resync leaves alone still import.
func TestReview12ReplicatingShopRefusesHeadOfficeKinds(t *testing.T) {
	n := startNode(t, t.TempDir(), func(c *node.Config) {
		c.Replication.Central = []string{"http://127.0.0.1:1"} // never answers
		c.Replication.Token = "shop-1-replication-token"
	})
	pin := storeline.HashPIN("1234", []byte("0123456789abcdef"))
	seller := [2]string{"seller", fmt.Sprintf(`{"id":"s-1","name":"Ann","role":"cashier","pinhash":%q,"stores":["shop-1"]}`, pin)}
	for _, rec := range [][2]string{
		{"group", `{"id":"g1","name":"Group"}`},
		{"item", `{"id":"i1","sku":"SKU1","name":"Soap","group":"g1","dept":"d1","unit":"pcs","vatrate":"20"}`},
		{"store", `{"id":"shop-1","name":"Shop 1","timezone":"Europe/Riga","currency":"EUR","departments":[{"id":"d1","name":"Dept"}]}`},
	} {
		before := n.Ledger().MasterVersion()
		code, ctype, body := review12Import(t, n, seller, rec)
		wantProblem(t, rec[0], code, ctype, body, http.StatusConflict, "records[1].kind")
		if v := n.Ledger().MasterVersion(); v != before {
			t.Errorf("%s: a refused import moved the master version %d -> %d", rec[0], before, v)
		}
	}
	if code, _, body := review12Import(t, n, seller, [2]string{"supplier", `{"id":"sup1","name":"Supplier"}`}); code != http.StatusOK {
		t.Errorf("import of a seller and a supplier on a replicating shop = %d %s, want 200", code, body)
	}
}
