package node_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/node"
)

// review12Import posts records (kind, raw JSON) as one import and returns
// the answer.
func review12Import(t *testing.T, n *node.Node, recs ...[2]string) (int, string, []byte) {
	t.Helper()
	imp := node.MasterImport{}
	for _, r := range recs {
		imp.Records = append(imp.Records, node.MasterEntry{Kind: storeline.MasterKind(r[0]), Record: json.RawMessage(r[1])})
	}
	b, err := json.Marshal(imp)
	if err != nil {
		t.Fatal(err)
	}
	return rawCall(t, "POST", n.AdminURL()+"/admin/v1/master", adminToken, "", b)
}

// TestReview12ImportRefusesOtherShopsRecords: an import through the admin
// API holding another shop's store record, a seller who does not work at
// this shop, or a message not for it is refused (400 naming the record)
// and stores nothing, not even the valid records before it: the tills'
// catalogue follows store records, and such records are never this
// shop's (central's feed never sends them to it).
func TestReview12ImportRefusesOtherShopsRecords(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	pin := storeline.HashPIN("1234", []byte("0123456789abcdef"))
	group := [2]string{"group", `{"id":"g-review12","name":"Group"}`}
	for _, tc := range []struct {
		name  string
		rec   [2]string
		field string
	}{
		{"another shop's store", [2]string{"store", `{"id":"shop-2","name":"Shop 2","timezone":"Europe/Riga","currency":"EUR","departments":[{"id":"d1","name":"Dept"}]}`}, "records[1].record.id"},
		{"a seller of another shop", [2]string{"seller", fmt.Sprintf(`{"id":"s-2","name":"Bob","role":"cashier","pinhash":%q,"stores":["shop-2"]}`, pin)}, "records[1].record.stores"},
		{"a message for another shop", [2]string{"message", `{"id":"m-2","text":"Hello shop 2","stores":["shop-2"],"from":"2026-01-01T00:00:00Z"}`}, "records[1].record.stores"},
	} {
		before := n.Ledger().MasterVersion()
		code, ctype, body := review12Import(t, n, group, tc.rec)
		wantProblem(t, tc.name, code, ctype, body, http.StatusBadRequest, tc.field)
		if v := n.Ledger().MasterVersion(); v != before {
			t.Errorf("%s: a refused import moved the master version %d -> %d", tc.name, before, v)
		}
		var g storeline.Group
		if err := n.Ledger().GetMaster(storeline.KindGroup, "g-review12", &g); err == nil {
			t.Errorf("%s: the group before the refused record was stored", tc.name)
		}
	}
	// This shop's own records, and records for every shop, still go in.
	code, _, body := review12Import(t, n, group,
		[2]string{"store", `{"id":"shop-1","name":"Shop 1","timezone":"Europe/Riga","currency":"EUR","departments":[{"id":"d1","name":"Dept"}]}`},
		[2]string{"seller", fmt.Sprintf(`{"id":"s-1","name":"Ann","role":"cashier","pinhash":%q,"stores":["shop-2","shop-1"]}`, pin)},
		[2]string{"seller", fmt.Sprintf(`{"id":"s-all","name":"Eve","role":"manager","pinhash":%q}`, pin)},
		[2]string{"message", `{"id":"m-1","text":"Hello","stores":["shop-1"],"from":"2026-01-01T00:00:00Z"}`},
		[2]string{"message", `{"id":"m-all","text":"Hello all","from":"2026-01-01T00:00:00Z"}`},
	)
	if code != http.StatusOK {
		t.Errorf("import of this shop's records = %d %s", code, body)
	}
}

// TestReview12ImportRefusesKeysDifferingInCase: record field names match
// case-insensitively, so {"ID":"a","id":"b"} names one field twice (the
// decoder would keep the last silently); it is refused as any field given
// twice is, naming it, and stores nothing. Names in any one case still
// work.
func TestReview12ImportRefusesKeysDifferingInCase(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	for _, tc := range []struct {
		name  string
		body  string
		field string
	}{
		{"record id", `{"records":[{"kind":"group","record":{"id":"g-ok","name":"G"}},{"kind":"group","record":{"ID":"a","id":"b","name":"G"}}]}`, "records[1].record.id"},
		{"nested department", `{"records":[{"kind":"store","record":{"id":"shop-1","name":"S","timezone":"Europe/Riga","currency":"EUR","departments":[{"id":"d1","Name":"x","name":"y"}]}}]}`, "records[0].record.departments[0].name"},
		{"envelope kind", `{"records":[{"kind":"group","Kind":"message","record":{"id":"g1","name":"G"}}]}`, "records[0].Kind"},
		{"escaped key", `{"records":[{"kind":"group","record":{"id":"a","\u0049D":"b","name":"G"}}]}`, "records[0].record.ID"},
		{"Kelvin sign folds to k", `{"records":[{"kind":"group","\u212aind":"message","record":{"id":"g1","name":"G"}}]}`, "records[0].\u212aind"},
	} {
		before := n.Ledger().MasterVersion()
		code, ctype, body := rawCall(t, "POST", n.AdminURL()+"/admin/v1/master", adminToken, "", []byte(tc.body))
		wantProblem(t, tc.name, code, ctype, body, http.StatusBadRequest, tc.field)
		if v := n.Ledger().MasterVersion(); v != before {
			t.Errorf("%s: a refused import moved the master version %d -> %d", tc.name, before, v)
		}
	}
	// One case per field, whichever it is, still imports.
	code, _, body := rawCall(t, "POST", n.AdminURL()+"/admin/v1/master", adminToken, "",
		[]byte(`{"records":[{"kind":"group","record":{"ID":"g-upper","NAME":"G"}},{"kind":"group","record":{"id":"g-lower","name":"G"}}]}`))
	if code != http.StatusOK {
		t.Errorf("import with names in one case each = %d %s", code, body)
	}
	// A seller request is checked the same way.
	code, ctype, body := rawCall(t, "POST", n.AdminURL()+"/admin/v1/sellers", adminToken, "",
		[]byte(`{"id":"s1","name":"Ann","role":"cashier","pin":"1234","PIN":"9999"}`))
	wantProblem(t, "seller PIN twice", code, ctype, body, http.StatusBadRequest, "PIN")
}

// TestReview12TokensThatCannotBeSentAreRefused: an admin or terminal
// token with white space at either end or a control character (a newline
// read from an env file) passes Validate today, then no request can ever
// present it: an HTTP header value loses its outer white space and cannot
// hold a control character, so the admin API answers 401 to the right
// token and the till is locked out. Validate must refuse it, naming the
// field, as it does the replication token.
func TestReview12TokensThatCannotBeSentAreRefused(t *testing.T) {
	const good = "admin-token-0123456789"
	for _, tc := range []struct {
		name, field string
		mod         func(*node.Config)
	}{
		{"admin token, trailing space", "AdminToken", func(c *node.Config) { c.AdminToken = good + " " }},
		{"admin token, trailing newline", "AdminToken", func(c *node.Config) { c.AdminToken = good + "\n" }},
		{"admin token, leading tab", "AdminToken", func(c *node.Config) { c.AdminToken = "\t" + good }},
		{"terminal token, trailing CR", "Terminals[0].Token", func(c *node.Config) {
			c.Terminals = []node.TerminalToken{{ID: "till-1", Token: "till-token-0123456789\r"}}
		}},
		{"terminal token, NUL", "Terminals[0].Token", func(c *node.Config) {
			c.Terminals = []node.TerminalToken{{ID: "till-1", Token: "till-token-\x000123456789"}}
		}},
	} {
		c := node.DefaultConfig()
		c.StoreID, c.DataDir, c.AdminToken = "shop-1", t.TempDir(), good
		tc.mod(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field+":") {
			t.Errorf("%s: Validate = %v, want an error naming %s", tc.name, err, tc.field)
		}
		if err != nil && strings.Contains(err.Error(), strings.TrimSpace(c.AdminToken)) {
			t.Errorf("%s: Validate's error shows the token: %v", tc.name, err)
		}
	}
	// The admin token as it is refused: the right token is answered 401.
	c := node.DefaultConfig()
	c.StoreID, c.DataDir, c.AdminToken = "shop-1", t.TempDir(), good+" "
	c.TillAddr, c.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	if c.Validate() == nil {
		n2, err := node.New(c, slog.New(slog.DiscardHandler), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := n2.Start(); err != nil {
			t.Fatal(err)
		}
		defer n2.Stop()
		if code, body := call(t, "GET", n2.AdminURL()+"/admin/v1/conservation", c.AdminToken, nil); code != http.StatusOK {
			t.Errorf("admin call with the configured token %q = %d %s", c.AdminToken, code, body)
		}
	}
}

// TestReview12AdminReadTimeout: read-timeout bounds the reading of a
// request on both listeners (README: only write-timeout is the tills'
// alone, as backups stream). An admin client that sends an import's
// headers and then stalls must not hold its connection and handler
// forever: the node gives up on the body once read-timeout has passed.
func TestReview12AdminReadTimeout(t *testing.T) {
	n := startNode(t, t.TempDir(), func(c *node.Config) { c.ReadTimeout = 200 * time.Millisecond })
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.AdminURL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /admin/v1/master HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"records\":[", adminToken)
	// The bound of the test, far above the node's read-timeout.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the admin listener still waits for the body 10s after a read-timeout of 200ms (read %q)", b)
	}
}

// FuzzReview12CheckAdminBody: the admin body check never panics, and it
// never refuses a body whose objects name each field once in one
// spelling.
func FuzzReview12CheckAdminBody(f *testing.F) {
	f.Add([]byte(`{"records":[{"kind":"group","record":{"ID":"g1","Name":"G"}}]}`))
	f.Add([]byte(`{"records":[{"kind":"group","record":{"ID":"a","id":"b"}}]}`))
	f.Add([]byte(`{"a\u0041":[{"x":{"y":[1,{"\\":2,"\"":3}]}}],"AA":1}`))
	f.Add([]byte(`{"a":"\"}{,","A":`))
	f.Fuzz(func(t *testing.T, body []byte) {
		err := node.CheckAdminBody(body)
		var v any
		if err != nil || json.Unmarshal(body, &v) != nil {
			return
		}
		// Re-encoded, every key is distinct (a map), so it must pass.
		b, _ := json.Marshal(v)
		if distinctFolded(v) {
			if err := node.CheckAdminBody(b); err != nil {
				t.Fatalf("CheckAdminBody(%s) = %v for keys distinct under folding", b, err)
			}
		}
	})
}

// distinctFolded reports whether no object in v holds two keys that
// differ only in case.
func distinctFolded(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		var keys []string
		for k, e := range x {
			for _, o := range keys {
				if strings.EqualFold(k, o) {
					return false
				}
			}
			keys = append(keys, k)
			if !distinctFolded(e) {
				return false
			}
		}
	case []any:
		for _, e := range x {
			if !distinctFolded(e) {
				return false
			}
		}
	}
	return true
}
