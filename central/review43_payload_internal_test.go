package central

import (
	"encoding/hex"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// TestReview43PayloadBytes: the Raft payloads a supplier payment, a
// buyer payment and a cancel are submitted with are, byte for byte, what
// the two sides submitted before they shared the settlement core (the
// hex was recorded from that code), and a payload decodes back to the
// record its side stored.
func TestReview43PayloadBytes(t *testing.T) {
	sp, amount, err := readSupplierPayment([]byte(`{"id":"sp1","supplier":"p1","bank":"k1","currency":"EUR","amount":"10.5","paid_on":"2026-03-03","reference":"PP-1","note":"n"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := payableSide.parsePayment(sp, amount); err != nil {
		t.Fatal(err)
	}
	bp, amount, err := readBuyerPayment([]byte(`{"id":"bp1","buyer":"b1","bank":"k1","currency":"EUR","amount":"5","paid_on":"2026-03-03"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := receivableSide.parsePayment(bp, amount); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		v    any
		want string
	}{
		{"supplier payment", sp, "88a169a3737031a173a27031a162a26b31a163a3455552a161c407fffffffe02041aa164aa323032362d30332d3033a172a450502d31a16ea16e"},
		{"buyer payment", bp, "86a169a3627031a175a26231a162a26b31a163a3455552a161c407fffffffe0201f4a164aa323032362d30332d3033"},
		{"cancel", &paymentCancel{ID: "sp1", Reason: "r", On: "2026-03-04"}, "83a169a3737031a177a172a26f6eaa323032362d30332d3034"},
	} {
		b, err := msgpack.Marshal(c.v)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(b); got != c.want {
			t.Errorf("%s payload:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
	// A payload that names the other side's party too: each side's
	// record had no field for it, so its entry drops it.
	var p settlePayment
	if err := msgpack.Unmarshal(mustHex(t, "86a169a3627031a175a26231a162a26b31a163a3455552a161c407fffffffe0201f4a164aa323032362d30332d3033"), &p); err != nil {
		t.Fatal(err)
	}
	p.Supplier = "p1"
	receivableSide.keepParty(&p)
	if p.Supplier != "" || p.Buyer != "b1" {
		t.Fatalf("buyer side kept %+v", p)
	}
	p.Supplier = "p1"
	payableSide.keepParty(&p)
	if p.Buyer != "" || p.Supplier != "p1" {
		t.Fatalf("supplier side kept %+v", p)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
