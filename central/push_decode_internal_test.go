package central

import (
	"slices"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
)

// receiptItemBodies are receipt bodies in the forms the in-place reader
// takes and in forms it leaves to msgpack's decoder.
func receiptItemBodies(t testing.TB) [][]byte {
	t.Helper()
	d := decimal.NewFromInt
	var out [][]byte
	for _, n := range []int{0, 1, 3, 20} {
		r := &storeline.Receipt{Terminal: "till-1", Shift: "sh1", Seller: "alice", Currency: "EUR"}
		for j := range n {
			item := storeline.ItemID("i" + strings.Repeat("x", j*3)) // past 31 bytes: a str8
			r.Lines = append(r.Lines, storeline.Line{Item: item, Dept: "food", Unit: storeline.Piece, Qty: d(1), Price: d(3), VATRate: d(10)})
		}
		b, err := msgpack.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	long := strings.Repeat("k", 300) // a str16 key
	out = append(out,
		enc(map[string]any{"Lines": []any{map[string]any{"Item": "a", "Qty": 1}, map[string]any{"X": []int{1}, "Item": "b"}}}),
		enc(map[string]any{"Lines": []any{map[string]any{"Item": "a"}}, "Z": map[string]any{"Lines": 1}}),
		enc(map[string]any{"Lines": nil}),
		enc(map[string]any{long: 1, "Lines": []any{map[string]any{"Item": "a"}}}),
		enc(map[string]any{"Lines": []any{map[string]any{"Item": []byte("bin")}}}),
		enc(map[string]any{"Lines": []any{nil, map[string]any{"Item": nil}}}),
		enc(map[string]any{"Lines": []any{map[string]any{"Item": 7}}}),
		enc(map[string]any{"Lines": make([]map[string]any, 70000)}), // an array32
		enc([]int{1}), []byte{0xc0}, nil,
		// Lines twice: the second list counts.
		[]byte{0x82, 0xa5, 'L', 'i', 'n', 'e', 's', 0x91, 0x81, 0xa4, 'I', 't', 'e', 'm', 0xa1, 'a',
			0xa5, 'L', 'i', 'n', 'e', 's', 0x91, 0x81, 0xa4, 'I', 't', 'e', 'm', 0xa1, 'b'},
		// Item twice in a line: the second counts.
		[]byte{0x81, 0xa5, 'L', 'i', 'n', 'e', 's', 0x91, 0x82, 0xa4, 'I', 't', 'e', 'm', 0xa1, 'a', 0xa4, 'I', 't', 'e', 'm', 0xa1, 'b'},
		// Trailing bytes after the map.
		[]byte{0x81, 0xa5, 'L', 'i', 'n', 'e', 's', 0x90, 0xc1, 0xc1},
	)
	return out
}

// checkReceiptItems: where the in-place reader answers, msgpack's decoder
// answers the same items; where the decoder fails, the in-place reader
// does not answer.
func checkReceiptItems(t *testing.T, b []byte) {
	t.Helper()
	got, ok := receiptItemsInPlace(b)
	want, err := receiptItemsDecoded(b)
	if !ok {
		return
	}
	if err != nil {
		t.Fatalf("% x: in place %q, the decoder fails: %v", b[:min(len(b), 40)], got, err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("% x: in place %q, the decoder %q", b[:min(len(b), 40)], got, want)
	}
}

// TestReceiptItemsInPlace: on receipts and other bodies, whole and cut at
// every byte, the in-place reader agrees with msgpack's decoder, and it
// does answer for receipts as msgpack encodes them.
func TestReceiptItemsInPlace(t *testing.T) {
	for i, b := range receiptItemBodies(t) {
		if i >= 1 && i < 4 { // (no lines: Lines is nil, left to the decoder)
			if _, ok := receiptItemsInPlace(b); !ok {
				t.Errorf("receipt %d: not read in place", i)
			}
		}
		reach := 300
		if len(b) > 10000 {
			reach = 2 // the array32's body: decoding it is slow under -race
		}
		for cut := len(b); cut >= 0 && cut >= len(b)-reach; cut-- {
			checkReceiptItems(t, b[:cut])
		}
	}
}

// FuzzReceiptItemsInPlace: on any bytes, as TestReceiptItemsInPlace.
func FuzzReceiptItemsInPlace(f *testing.F) {
	for _, b := range receiptItemBodies(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkReceiptItems(t, b) })
}

// storeOfAccountSplit is storeOfAccount as it was, by strings.Split: the
// reference the cutting one must agree with.
func storeOfAccountSplit(acct string) (storeline.StoreID, bool) {
	parts := strings.Split(acct, "/")
	if len(parts) < 2 {
		return "", false
	}
	switch parts[0] {
	case "payable", "supplier", "receivable", "bank":
		return "", false
	case "points":
		if len(parts) < 4 {
			return "", false
		}
		return storeline.StoreID(parts[3]), true
	}
	return storeline.StoreID(parts[1]), true
}

var accountSeeds = []string{"", "/", "//", "stock", "stock/", "stock/s1", "stock/s1/main/milk", "cash/s2/till-1",
	"payable/s2", "bank/s2", "supplier", "supplier/s2/x", "points", "points/", "points/p", "points/p/c1", "points/p/c1/",
	"points/p/c1/s2", "points/p/c1/s2/x", "points//c1/s2", "/s1/x", "x//", "revenue"}

// TestStoreOfAccountAsSplit: the account's store by cutting is the one
// by splitting, on every shape of account.
func TestStoreOfAccountAsSplit(t *testing.T) {
	for _, a := range accountSeeds {
		checkStoreOfAccount(t, a)
	}
}

func checkStoreOfAccount(t *testing.T, a string) {
	t.Helper()
	got, ok := storeOfAccount(a)
	want, wantOK := storeOfAccountSplit(a)
	if got != want || ok != wantOK {
		t.Fatalf("storeOfAccount(%q) = %q %v, by splitting %q %v", a, got, ok, want, wantOK)
	}
}

// FuzzStoreOfAccount: as TestStoreOfAccountAsSplit, on any string.
func FuzzStoreOfAccount(f *testing.F) {
	for _, a := range accountSeeds {
		f.Add(a)
	}
	f.Fuzz(checkStoreOfAccount)
}

// TestZeroPlus: zeroPlus(e) is decimal.Decimal{}.Add(e) in value,
// exponent and binary form, for every sign and exponent, the zero
// Decimal included.
func TestZeroPlus(t *testing.T) {
	for _, e := range []decimal.Decimal{{}, decimal.New(0, 0), decimal.New(0, -2), decimal.New(0, 3),
		decimal.New(5, 0), decimal.New(-5, 0), decimal.New(125, -2), decimal.New(-125, -3), decimal.New(7, 2),
		decimal.New(-7, 1), decimal.RequireFromString("-0.500"), decimal.RequireFromString("12345678901234567890.5")} {
		got, want := zeroPlus(e), (decimal.Decimal{}).Add(e)
		gb, err := got.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		wb, err := want.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if string(gb) != string(wb) || got.String() != want.String() || got.Exponent() != want.Exponent() {
			t.Errorf("zeroPlus(%s e%d) = %s e%d (% x), want %s e%d (% x)", e, e.Exponent(), got, got.Exponent(), gb, want, want.Exponent(), wb)
		}
	}
}
