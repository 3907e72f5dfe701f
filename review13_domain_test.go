package storeline_test

import (
	"bytes"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
	"pgregory.net/rapid"

	"github.com/storeline/storeline"
)

// respell returns d with k more trailing zeros (same value, smaller
// exponent), or, for k < 0, with trailing zeros folded into a larger
// exponent where d has them.
func respell(d decimal.Decimal, k int) decimal.Decimal {
	if k >= 0 {
		c := new(big.Int).Mul(d.Coefficient(), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(k)), nil))
		return decimal.NewFromBigInt(c, d.Exponent()-int32(k))
	}
	c, e := d.Coefficient(), d.Exponent()
	ten := big.NewInt(10)
	for i := 0; i < -k && c.Sign() != 0; i++ {
		q, m := new(big.Int).QuoRem(c, ten, new(big.Int))
		if m.Sign() != 0 {
			break
		}
		c, e = q, e+1
	}
	return decimal.NewFromBigInt(c, e)
}

func drawSpell(t *rapid.T, d decimal.Decimal, name string) decimal.Decimal {
	return respell(d, rapid.IntRange(-4, 4).Draw(t, name))
}

// TestReview13ReceiptSpellingsEncodeAlike: DESIGN.md, decimals are
// normalised before they are stored, so the same receipt spelt with other
// exponents ("2" or "2.000", "20" or "20.0") has the same bytes and
// postings. It passes; kept as a guard.
func TestReview13ReceiptSpellingsEncodeAlike(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cur := storeline.Currency(rapid.SampledFrom([]string{"EUR", "JPY", "KWD"}).Draw(t, "cur"))
		sc := cur.Scale()
		n := rapid.IntRange(1, 4).Draw(t, "lines")
		var a, b storeline.Receipt
		for _, r := range []*storeline.Receipt{&a, &b} {
			r.Terminal, r.Shift, r.Seller, r.Currency = "t1", "s1", "alice", cur
		}
		for i := range n {
			unit := rapid.SampledFrom([]storeline.Unit{storeline.Piece, storeline.Kg}).Draw(t, "unit")
			var q decimal.Decimal
			if unit == storeline.Piece {
				q = decimal.NewFromInt(rapid.Int64Range(1, 20).Draw(t, "q"))
			} else {
				q = decimal.New(rapid.Int64Range(1, 20000).Draw(t, "q"), -3)
			}
			p := decimal.New(rapid.Int64Range(0, 100000).Draw(t, "p"), -sc)
			gross := cur.Round(q.Mul(p))
			disc := decimal.New(0, -sc)
			if gross.IsPositive() {
				disc = decimal.New(rapid.Int64Range(0, gross.Shift(sc).IntPart()).Draw(t, "d"), -sc)
			}
			rate := rapid.SampledFrom([]string{"0", "5", "9.5", "10", "20", "21", "7.25"}).Draw(t, "rate")
			l := storeline.Line{Item: storeline.ItemID(fmt.Sprintf("i%d", i)), Dept: "d", Unit: unit, Qty: q, Price: p, Discount: disc, VATRate: dec(rate)}
			a.Lines = append(a.Lines, l)
			l.Qty, l.Price, l.Discount, l.VATRate = drawSpell(t, q, "sq"), drawSpell(t, p, "sp"), drawSpell(t, disc, "sd"), drawSpell(t, dec(rate), "sr")
			b.Lines = append(b.Lines, l)
		}
		_ = a.Compute() // for its total: the payment below covers it
		pay := decimal.New(rapid.Int64Range(0, 1000).Draw(t, "extra"), -sc).Add(a.Total)
		a.Payments = []storeline.Payment{{Method: storeline.Cash, Amount: pay}}
		b.Payments = []storeline.Payment{{Method: storeline.Cash, Amount: drawSpell(t, pay, "spay")}}
		ea, eb := a.Compute(), b.Compute()
		if (ea == nil) != (eb == nil) {
			t.Fatalf("Compute: %v vs %v", ea, eb)
		}
		if ea != nil {
			return
		}
		ba, _ := a.MarshalMsgpack()
		bb, _ := b.MarshalMsgpack()
		if !bytes.Equal(ba, bb) {
			t.Fatalf("same receipt, other spellings, other bytes:\n%+v\n%+v", a, b)
		}
		pa, err := storeline.DerivePostings("s1", &a)
		if err != nil {
			t.Fatal(err)
		}
		pb, err := storeline.DerivePostings("s1", &b)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(pa) != fmt.Sprint(pb) {
			t.Fatalf("postings differ:\n%v\n%v", pa, pb)
		}
	})
}

// TestReview13SKUCarriedByURLPath: the tills look an item up by
// GET /v1/items/{sku} (posbridge/server.go). A SKU that Item.Validate
// accepts must reach that handler intact when the till escapes it as a
// path segment; "." and ".." are cleaned away by the router (a redirect),
// so an item with such a SKU could be imported but never looked up.
func TestReview13SKUCarriedByURLPath(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/items/{sku}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.PathValue("sku"))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var skus []string
	for c := 0; c < 128; c++ {
		skus = append(skus, "A"+string(rune(c))+"B", string(rune(c)))
	}
	skus = append(skus, ".", "..", "...", "a.", "%2e", "%2E%2E")
	for _, sku := range skus {
		it := storeline.Item{ID: "i1", SKU: sku, Name: "x", Group: "g", Dept: "d", Unit: storeline.Piece, VATRate: dec("20")}
		if it.Validate() != nil {
			continue
		}
		resp, err := client.Get(srv.URL + "/v1/items/" + url.PathEscape(sku))
		if err != nil {
			t.Errorf("SKU %q accepted by Item.Validate: GET: %v", sku, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != sku {
			t.Errorf("SKU %q accepted by Item.Validate: GET /v1/items/%s = %d %q, want 200 and the SKU", sku, url.PathEscape(sku), resp.StatusCode, body)
		}
	}
}

// TestReview13CheckPINRefusesMalformedHash: Seller.Validate accepts any
// PINHash with the right prefix, and a hash without its key bytes (an
// import of a truncated hash) then matched every PIN.
func TestReview13CheckPINRefusesMalformedHash(t *testing.T) {
	good := storeline.HashPIN("1234", []byte("0123456789abcdef"))
	if !storeline.CheckPIN(good, "1234") || storeline.CheckPIN(good, "9999") {
		t.Fatalf("CheckPIN of a good hash is wrong")
	}
	salt, _, _ := strings.Cut(strings.TrimPrefix(good, "pbkdf2-sha256$"), "$")
	for _, h := range []string{
		"pbkdf2-sha256$" + salt + "$",
		"pbkdf2-sha256$$",
		"pbkdf2-sha256$",
		good[:len(good)-10],
	} {
		if storeline.CheckPIN(h, "9999") {
			t.Errorf("CheckPIN(%q, any PIN) = true", h)
		}
		s := storeline.Seller{ID: "bob", Name: "Bob", Role: storeline.Manager, PINHash: h}
		if err := s.Validate(); err == nil || storeline.FieldOf(err) != "pin_hash" {
			t.Errorf("Seller{PINHash: %q}.Validate() = %v, want Invalid naming pin_hash", h, err)
		}
	}
	s := storeline.Seller{ID: "bob", Name: "Bob", Role: storeline.Manager, PINHash: good}
	if err := s.Validate(); err != nil {
		t.Errorf("Seller with a HashPIN hash: Validate() = %v", err)
	}
}
