package chaostest_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
	"github.com/storeline/storeline/replication"
)

var flagCorruptAll = flag.Bool("chaos.corrupt-all", false, "send every cut point and every flip of the corrupted bodies, not a seeded sample (TestChaosCutOffDay)")

// corruption is one bad request body: what it is, its bytes, the
// Content-Length the request declares (the body's length unless longer:
// the rest never comes, the connection's write side is closed), and
// headers beyond the usual ones.
type corruption struct {
	name     string
	body     []byte
	declared int
	header   map[string]string
}

// sample returns the indexes [0, n) to try: all with -chaos.corrupt-all,
// else k drawn by rng plus the first and the last.
func sample(rng *rand.Rand, n, k int) []int {
	if *flagCorruptAll || n <= k+2 {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	out := []int{0, n - 1}
	for range k {
		out = append(out, rng.IntN(n))
	}
	return out
}

// cutAndDeclared are the corruptions any body gets: cut short at sampled
// points; the whole body, and half of it, declared longer than it is with
// the connection then closed; gzip-compressed; garbage; a byte after it.
func cutAndDeclared(rng *rand.Rand, valid []byte) []corruption {
	var out []corruption
	for _, k := range sample(rng, len(valid), 8) {
		out = append(out, corruption{name: fmt.Sprintf("cut at byte %d of %d", k, len(valid)), body: valid[:k]})
	}
	out = append(out,
		corruption{name: "whole body, Content-Length 64 longer, connection closed", body: valid, declared: len(valid) + 64},
		corruption{name: "half the body, its full Content-Length, connection closed", body: valid[:len(valid)/2], declared: len(valid)},
		corruption{name: "a byte after the message", body: append(append([]byte(nil), valid...), 0xc1)},
	)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(valid)
	_ = zw.Close()
	out = append(out, corruption{name: "gzip-compressed", body: gz.Bytes(), header: map[string]string{"Content-Encoding": "gzip"}})
	garbage := make([]byte, 1+rng.IntN(2*len(valid)))
	for i := range garbage {
		garbage[i] = byte(rng.UintN(256))
	}
	out = append(out, corruption{name: "garbage", body: garbage})
	return out
}

// send posts a corruption to addr+path on a connection of its own,
// written by hand so that the declared length can exceed the body, in
// which case it closes its write side after the body. dropped is true if
// the server closed the connection without an answer.
func send(addr, path, token, contentType string, c corruption) (status int, hdr http.Header, body []byte, dropped bool, err error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, nil, nil, false, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	declared := max(c.declared, len(c.body))
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n",
		path, addr, token, contentType, declared)
	for k, v := range c.header {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	b.Write(c.body)
	if _, err := conn.Write(b.Bytes()); err != nil {
		return 0, nil, nil, false, err
	}
	if c.declared > len(c.body) {
		// The rest of the body never comes. (Otherwise the write side
		// stays open: a server that sees its client gone cancels the
		// request's context, which is another fault.)
		_ = conn.(*net.TCPConn).CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			return 0, nil, nil, true, nil
		}
		return 0, nil, nil, false, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body, false, err
}

// refused checks that the answer to c was a 4xx problem+json whose status
// field agrees, or (for a body declared longer than it is) a dropped
// connection, and counts the answer in tally.
func refused(t *testing.T, tally map[string]int, where string, c corruption, status int, hdr http.Header, body []byte, dropped bool, err error) {
	t.Helper()
	if dropped {
		tally["dropped"]++
	} else {
		tally[fmt.Sprint(status)]++
	}
	switch {
	case err != nil:
		t.Errorf("%s, %s: %v", where, c.name, err)
	case dropped:
		if c.declared <= len(c.body) {
			t.Errorf("%s, %s: connection dropped without an answer", where, c.name)
		}
	case status < 400 || status > 499:
		t.Errorf("%s, %s: answered %d, want a 4xx: %.300s", where, c.name, status, body)
	case !strings.HasPrefix(hdr.Get("Content-Type"), "application/problem+json"):
		t.Errorf("%s, %s: answered %d with Content-Type %q, want application/problem+json", where, c.name, status, hdr.Get("Content-Type"))
	default:
		var p struct {
			Status int `json:"status"`
		}
		if err := json.Unmarshal(body, &p); err != nil || p.Status != status {
			t.Errorf("%s, %s: answered %d with problem %q (%v)", where, c.name, status, body, err)
		}
	}
}

// corruptTillBodies sends corrupted receipts to shop s's tills' API and
// checks each is refused and nothing changes (journal, stock of every
// item, events waiting for central); then the body they were made from is
// acknowledged, so the shop still serves and it was the corruption that
// was refused.
func (c *chaos) corruptTillBodies(t *testing.T, s *member, rng *rand.Rand) {
	store := storeline.StoreID(s.sp.ID)
	// A shift name without digits: a flipped byte in a free-text field
	// makes another valid receipt, which the API rightly takes (the tills'
	// protocol has no checksum), so only bytes whose flip must break the
	// body are flipped: JSON structure and digits (in the ID, SKUs,
	// quantities, prices, amounts and times).
	valid, _ := newReceiptAt(rng, 3, time.Now().Add(s.sp.ClockOffset).UTC())
	var r receiptJSON
	if err := json.Unmarshal(valid, &r); err != nil {
		t.Fatal(err)
	}
	r.Shift = "day-shift"
	valid, _ = json.Marshal(r)
	cs := cutAndDeclared(rng, valid)
	var flippable []int
	for i, b := range valid {
		if strings.IndexByte(`{}[]:,"0123456789`, b) >= 0 {
			flippable = append(flippable, i)
		}
	}
	for _, k := range sample(rng, len(flippable), 12) {
		i := flippable[k]
		b := append([]byte(nil), valid...)
		b[i] ^= 0x80
		cs = append(cs, corruption{name: fmt.Sprintf("byte %d (%q) flipped", i, valid[i]), body: b})
	}
	before := c.shopSnapshot(t, s)
	tally := map[string]int{}
	for _, x := range cs {
		status, hdr, body, dropped, err := send(s.sp.Till, "/v1/receipts", termToken(store), "application/json", x)
		refused(t, tally, string(store)+" tills' API", x, status, hdr, body, dropped, err)
	}
	if after := c.shopSnapshot(t, s); after != before {
		t.Errorf("%s changed under corrupted bodies:\nbefore %s\nafter  %s", store, before, after)
	}
	t.Logf("%s: %d corrupted receipts sent, answered %v", store, len(cs), tally)
	if !c.postAcked(context.Background(), s, valid) {
		t.Fatalf("%s: the receipt the corruptions were made from was not acknowledged", store)
	}
}

// shopSnapshot is what a corrupted request must not change at a shop:
// its journal, the stock of every item, and its events waiting for
// central.
func (c *chaos) shopSnapshot(t *testing.T, s *member) string {
	t.Helper()
	tok := termToken(storeline.StoreID(s.sp.ID))
	var b strings.Builder
	req, _ := http.NewRequest("GET", "http://"+s.sp.ShopAdmin+"/admin/v1/journal?limit=10000", nil)
	req.Header.Set("Authorization", "Bearer "+shopAdmin)
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	j, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("journal: %d %s %v", resp.StatusCode, j, err)
	}
	b.Write(j)
	for i := range items {
		var st json.RawMessage
		if err := c.get(fmt.Sprintf("http://%s/v1/stock/sku%d", s.sp.Till, i), tok, &st); err != nil {
			t.Fatal(err)
		}
		b.Write(st)
	}
	w, err := c.waitingAt(s)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "waiting %v", w)
	return b.String()
}

// corruptPushes sends corrupted pushes to central's replication listener
// in probeStore's name and checks each is refused and nothing changes
// (central's balances, and probeStore's mark); then the push they were
// made from is accepted.
func (c *chaos) corruptPushes(t *testing.T, rng *rand.Rand) {
	m := c.centrals[0]
	valid := probePush(t)
	cs := cutAndDeclared(rng, valid)
	// Bytes found by what precedes them: the events list's header, the
	// event's kind, the body's first byte after its key, a posting's
	// amount.
	at := func(what string, pattern []byte) int {
		i := bytes.Index(valid, pattern)
		if i < 0 || bytes.Index(valid[i+1:], pattern) >= 0 {
			t.Fatalf("the valid push holds %q (%x) %d times, want once", what, pattern, bytes.Count(valid, pattern))
		}
		return i + len(pattern)
	}
	edit := func(name string, fn func(b []byte) []byte) {
		cs = append(cs, corruption{name: name, body: fn(append([]byte(nil), valid...))})
	}
	evList := at("the events key", []byte("\xa2ev"))
	if valid[evList] != 0x91 {
		t.Fatalf("events list header %#x, want fixarray 1", valid[evList])
	}
	edit("the top-level map header flipped", func(b []byte) []byte { b[0] ^= 0xff; return b })
	edit("the events list claims 15 events, holds 1", func(b []byte) []byte { b[evList] = 0x9f; return b })
	edit("the events list claims 2^32-16 events, holds 1", func(b []byte) []byte {
		return append(append(append([]byte(nil), b[:evList]...), 0xdd, 0xff, 0xff, 0xff, 0xf0), b[evList+1:]...)
	})
	kind := at("the receipt kind", []byte("\xa7receipt"))
	edit("the event's kind flipped", func(b []byte) []byte { b[kind-1] ^= 0x80; return b })
	bodyAt := at("the body key after the kind", append([]byte("\xa7receipt"), 0xa1, 'b'))
	edit("the body's header flipped", func(b []byte) []byte { b[bodyAt] ^= 0xff; return b })
	amount := bytes.Index(valid, []byte("\xa1m\xc4")) + 3 // the first posting's amount: its length, then its bytes
	if amount < 3 {
		t.Fatal("no posting amount in the valid push")
	}
	edit("a posting's amount flipped", func(b []byte) []byte { b[amount+int(b[amount])] ^= 0x01; return b })
	edit("the event's origin another store", func(b []byte) []byte {
		return bytes.Replace(b, []byte("\xa5probe"), []byte("\xa2s1"), 1)
	})

	// Central writes Raft entries of its own now and then, so its applied
	// index is no measure; its balances are, and the valid push below
	// must then be applied as probeStore's first event, which it would
	// not be had a corrupted one got in (the same ID, or a mark past 0).
	balances := c.centralBalances(t, m)
	tally := map[string]int{}
	for _, x := range cs {
		status, hdr, body, dropped, err := send(m.sp.Repl, "/v1/replication/push", replToken(probeStore), "application/msgpack", x)
		refused(t, tally, "central's push", x, status, hdr, body, dropped, err)
	}
	if got := c.centralBalances(t, m); got != balances {
		t.Errorf("central's balances changed under corrupted pushes:\nbefore %s\nafter  %s", balances, got)
	}
	t.Logf("central: %d corrupted pushes sent, answered %v", len(cs), tally)
	status, _, body, _, err := send(m.sp.Repl, "/v1/replication/push", replToken(probeStore), "application/msgpack", corruption{name: "valid", body: valid})
	if err != nil || status != http.StatusOK {
		t.Fatalf("the push the corruptions were made from: %d %q %v", status, body, err)
	}
	var res replication.PushResponse
	if err := replication.Decode(body, &res); err != nil {
		t.Fatal(err)
	}
	if res.Applied != 1 || res.Acked != (replication.Position{Epoch: 1, Seq: 1}) {
		t.Errorf("the valid push: applied %d, acked %v; want 1 and 1/1", res.Applied, res.Acked)
	}
}

// centralBalances is central's GET /v1/balances answer.
func (c *chaos) centralBalances(t *testing.T, m *member) string {
	t.Helper()
	var raw json.RawMessage
	if err := c.get("http://"+m.sp.API+"/v1/balances", adminKey, &raw); err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// probePush is a valid push of one cash receipt, probeStore's first event.
func probePush(t *testing.T) []byte {
	t.Helper()
	rc := &storeline.Receipt{Terminal: termID, Shift: "probe", Seller: sellerID, Currency: "EUR",
		Lines: []storeline.Line{{Item: "i1", Dept: "food", Unit: storeline.Piece, Qty: decimal.NewFromInt(2),
			Price: itemPrice(1), VATRate: decimal.NewFromInt(10)}},
		Payments: []storeline.Payment{{Method: storeline.Cash, Amount: itemPrice(1).Mul(decimal.NewFromInt(2))}}}
	if err := rc.Compute(); err != nil {
		t.Fatal(err)
	}
	ps, err := storeline.DerivePostings(probeStore, rc)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	ev := storeline.Event{ID: storeline.NewEventID(), Origin: probeStore, Epoch: 1, Seq: 1, SchemaVersion: storeline.SchemaVersion,
		HLC: uint64(crdt.MakeTimestamp(now.UnixMilli(), 0)), OccurredAt: now, BusinessDate: storeline.Date(now.Format("2006-01-02")),
		Kind: storeline.KindReceipt, Body: rc, Postings: ps}
	w, err := replication.EventToWire(ev)
	if err != nil {
		t.Fatal(err)
	}
	b, err := replication.Encode(&replication.PushRequest{V: replication.ProtocolVersion, Store: string(probeStore), Epoch: 1, Events: replication.WireEvents{w}})
	if err != nil {
		t.Fatal(err)
	}
	// The base is valid, so what is refused is the corruption.
	var req replication.PushRequest
	if err := replication.Decode(b, &req); err != nil {
		t.Fatal(err)
	}
	if _, err := replication.CheckPush(probeStore, &req); err != nil {
		t.Fatal(err)
	}
	return b
}
