package central_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/storeline/storeline/central"
)

// review41Node is one node at the FSM level that stores report
// definitions, with a store, a price list and n items.
func review41Node(t *testing.T, items int) string {
	t.Helper()
	c := startClusterWith(t, 1, func(cfg *central.Config) { *cfg = central.WithFSMLevel(*cfg, 7) })
	n := c.nodes[0]
	waitFor(t, "cluster level 7", 10*time.Second, func() bool { l, err := n.ClusterLevel(); return err == nil && l >= 7 })
	a := n.APIAddr()
	seed(t, a, items)
	return a
}

// review41Page is one page of a list: the ID (as rowID makes it) of each
// row in order, the cursor, and the body as sent.
type review41Page struct {
	ids  []string
	next string
	raw  string
}

func review41Get(t *testing.T, a, path, rowsKey string, rowID func(map[string]any) string) review41Page {
	t.Helper()
	r := mustOK(t, apiDo(t, "GET", a, path, viewerKey, nil, nil))
	var body map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("%s: %v: %s", path, err, r.body)
	}
	if len(body) != 2 {
		t.Fatalf("%s: keys of the answer: %s", path, r.body)
	}
	var rows []map[string]any
	if err := json.Unmarshal(body[rowsKey], &rows); err != nil || rows == nil {
		t.Fatalf("%s: %s is not a list (%v): %s", path, rowsKey, err, r.body)
	}
	p := review41Page{raw: string(r.body)}
	if err := json.Unmarshal(body["next"], &p.next); err != nil {
		t.Fatalf("%s: next is not a string: %s", path, r.body)
	}
	for _, row := range rows {
		p.ids = append(p.ids, rowID(row))
	}
	return p
}

// review41Paging pins a list's wire behaviour over rows want (their IDs
// in order, at least three): pages of two follow each other with next
// the last row's ID and empty only on the last page, also when that
// page is exactly full; no limit is the default page; the limit's bounds
// and a cursor past the end.
func review41Paging(t *testing.T, a, base, rowsKey string, rowID func(map[string]any) string, want []string) {
	t.Helper()
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	join := func(ids []string) string { return strings.Join(ids, ",") }
	var got []string
	after := ""
	for pages := 1; ; pages++ {
		path := base + sep + "limit=2"
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		p := review41Get(t, a, path, rowsKey, rowID)
		got = append(got, p.ids...)
		last := len(got) == len(want)
		switch {
		case len(p.ids) != min(2, len(want)-len(got)+len(p.ids)):
			t.Fatalf("%s: page %d holds %v", path, pages, p.ids)
		case last && p.next != "":
			t.Fatalf("%s: the last page's next is %q, want empty: %s", path, p.next, p.raw)
		case last && !strings.Contains(p.raw, `"next":""`):
			t.Fatalf("%s: the last page does not send an empty next: %s", path, p.raw)
		case !last && p.next != p.ids[len(p.ids)-1]:
			t.Fatalf("%s: next %q, want the page's last row %q", path, p.next, p.ids[len(p.ids)-1])
		}
		if last {
			break
		}
		if pages > len(want) {
			t.Fatalf("%s: paging does not end", base)
		}
		after = p.next
	}
	if join(got) != join(want) {
		t.Fatalf("%s: pages hold %v, want %v", base, got, want)
	}
	// Exactly full: a limit of every row answers them all, next empty.
	if p := review41Get(t, a, fmt.Sprintf("%s%slimit=%d", base, sep, len(want)), rowsKey, rowID); join(p.ids) != join(want) || p.next != "" {
		t.Fatalf("%s: a page of every row holds %v, next %q", base, p.ids, p.next)
	}
	if p := review41Get(t, a, fmt.Sprintf("%s%slimit=%d", base, sep, len(want)-1), rowsKey, rowID); len(p.ids) != len(want)-1 || p.next != want[len(want)-2] {
		t.Fatalf("%s: a page one short holds %v, next %q", base, p.ids, p.next)
	}
	if p := review41Get(t, a, base, rowsKey, rowID); join(p.ids) != join(want) || p.next != "" {
		t.Fatalf("%s: the default page holds %v, next %q", base, p.ids, p.next)
	}
	if p := review41Get(t, a, fmt.Sprintf("%s%slimit=%d", base, sep, central.MaxFeedLimit), rowsKey, rowID); join(p.ids) != join(want) {
		t.Fatalf("%s: the largest page holds %v", base, p.ids)
	}
	// Past the last row: an empty list, not null, and no cursor.
	end := review41Get(t, a, base+sep+"after="+url.QueryEscape(want[len(want)-1]), rowsKey, rowID)
	if len(end.ids) != 0 || end.next != "" || !strings.Contains(end.raw, `"`+rowsKey+`":[]`) {
		t.Fatalf("%s: past the end: %s", base, end.raw)
	}
	for _, bad := range []string{"0", "-1", "x", "1.5", fmt.Sprint(central.MaxFeedLimit + 1)} {
		problemOf(t, apiDo(t, "GET", a, base+sep+"limit="+bad, viewerKey, nil, nil), http.StatusBadRequest, "limit")
	}
}

// TestReview41MasterListPages: GET /v1/{resource} pages through the live
// records in ID order (a deleted one is not a row), with a cursor that
// need not be a record.
func TestReview41MasterListPages(t *testing.T) {
	a := review41Node(t, 6)
	mustOK(t, apiDo(t, "DELETE", a, "/v1/items/i3", adminKey, nil, nil))
	review41Paging(t, a, "/v1/items", "records", review41ID, []string{"i0", "i1", "i2", "i4", "i5"})
	if p := review41Get(t, a, "/v1/items?limit=2&after=i3", "records", review41ID); strings.Join(p.ids, ",") != "i4,i5" || p.next != "" {
		t.Fatalf("after a deleted record: %v, next %q", p.ids, p.next)
	}
	if p := review41Get(t, a, "/v1/items?limit=1&after=i10", "records", review41ID); strings.Join(p.ids, ",") != "i2" || p.next != "i2" {
		t.Fatalf("after an ID that is no record: %v, next %q", p.ids, p.next)
	}
}

// TestReview41PriceListPages: GET /v1/prices pages through one list's
// (and item's) prices only, with next the last price's ID, and refuses
// a cursor outside them.
func TestReview41PriceListPages(t *testing.T) {
	a := review41Node(t, 4)
	mustOK(t, apiDo(t, "PUT", a, "/v1/price_lists/promo", adminKey, map[string]any{"name": "Promo", "currency": "EUR"}, nil))
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var prices []any
	for i := range 4 {
		prices = append(prices, map[string]any{"list": "retail", "item": fmt.Sprintf("i%d", i), "from": from, "price": fmt.Sprintf("%d.50", i+1)})
	}
	for _, day := range []int{1, 2, 3} { // three prices of i1, in time order
		prices = append(prices, map[string]any{"list": "promo", "item": "i1", "from": from.AddDate(0, 0, day), "price": "0.99"})
	}
	prices = append(prices, map[string]any{"list": "promo", "item": "i2", "from": from, "price": "0.99"})
	mustOK(t, apiDo(t, "POST", a, "/v1/prices", adminKey, map[string]any{"prices": prices}, nil))

	retail := []string{review41PriceKey("retail", "i0", from), review41PriceKey("retail", "i1", from), review41PriceKey("retail", "i2", from), review41PriceKey("retail", "i3", from)}
	review41Paging(t, a, "/v1/prices?list=retail", "prices", review41PriceID, retail)
	promo := []string{review41PriceKey("promo", "i1", from.AddDate(0, 0, 1)), review41PriceKey("promo", "i1", from.AddDate(0, 0, 2)), review41PriceKey("promo", "i1", from.AddDate(0, 0, 3))}
	review41Paging(t, a, "/v1/prices?list=promo&item=i1", "prices", review41PriceID, promo)
	// The list's pages run on past one item's prices to the next item's.
	if p := review41Get(t, a, "/v1/prices?list=promo&limit=3&after="+url.QueryEscape(promo[0]), "prices", review41PriceID); strings.Join(p.ids, ",") != promo[1]+","+promo[2]+","+review41PriceKey("promo", "i2", from) || p.next != "" {
		t.Fatalf("promo after its first price: %v, next %q", p.ids, p.next)
	}
	for _, q := range []string{"list=retail&after=promo/i1/", "list=promo&item=i1&after=promo/i2/0", "list=promo&item=i1&after=promo/i10/0"} {
		problemOf(t, apiDo(t, "GET", a, "/v1/prices?"+q, viewerKey, nil, nil), http.StatusBadRequest, "after")
	}
}

// TestReview41SavedReportListPages: GET /v1/reports pages through the
// definitions in ID order and refuses a cursor that is no report ID.
func TestReview41SavedReportListPages(t *testing.T) {
	a := review41Node(t, 0)
	if p := review41Get(t, a, "/v1/reports", "reports", review41ID); len(p.ids) != 0 || p.raw != `{"next":"","reports":[]}`+"\n" {
		t.Fatalf("no definitions: %q", p.raw)
	}
	want := []string{"a1", "b2", "b3", "c4", "d5"}
	for _, id := range []string{"c4", "a1", "d5", "b3", "b2"} {
		mustOK(t, apiDo(t, "PUT", a, "/v1/reports/"+id, adminKey, map[string]any{"title": "Stock " + id, "source": "stock"}, nil))
	}
	mustOK(t, apiDo(t, "PUT", a, "/v1/reports/gone", adminKey, map[string]any{"title": "Gone", "source": "stock"}, nil))
	mustOK(t, apiDo(t, "DELETE", a, "/v1/reports/gone", adminKey, nil, nil))
	review41Paging(t, a, "/v1/reports", "reports", review41ID, want)
	if p := review41Get(t, a, "/v1/reports?limit=2&after=b", "reports", review41ID); strings.Join(p.ids, ",") != "b2,b3" || p.next != "b3" {
		t.Fatalf("after an ID that is no definition: %v, next %q", p.ids, p.next)
	}
	for _, bad := range []string{"a%20b", "a/b", strings.Repeat("x", 200)} {
		problemOf(t, apiDo(t, "GET", a, "/v1/reports?after="+bad, viewerKey, nil, nil), http.StatusBadRequest, "after")
	}
}

func review41ID(row map[string]any) string { return fmt.Sprint(row["id"]) }

// review41PriceID is a price row's ID: list/item/from in hex milliseconds.
func review41PriceID(row map[string]any) string {
	at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(row["from"]))
	if err != nil {
		return fmt.Sprintf("bad from %v", row["from"])
	}
	return fmt.Sprintf("%s/%s/%016x", row["list"], row["item"], at.UnixMilli())
}

func review41PriceKey(list, item string, at time.Time) string {
	return fmt.Sprintf("%s/%s/%016x", list, item, at.UnixMilli())
}
