package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestCtlRefusesAnAnswerPastItsLimit: an answer longer than ctl reads
// (a big store's stock, a long list) is an error, not JSON cut short
// printed with exit status 0.
func TestCtlRefusesAnAnswerPastItsLimit(t *testing.T) {
	for _, n := range []int{maxCtlAnswer, maxCtlAnswer + 1} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(bytes.Repeat([]byte(" "), n))
		}))
		c := &adminClient{base: srv.URL, token: "t", timeout: 10 * time.Second}
		var out bytes.Buffer
		err := c.do(context.Background(), "GET", "/v1/stock?store=s1", nil, &out)
		srv.Close()
		switch {
		case n <= maxCtlAnswer && (err != nil || out.Len() != n):
			t.Errorf("an answer of %d bytes: %v, %d bytes printed; want it whole", n, err, out.Len())
		case n > maxCtlAnswer && (err == nil || !strings.Contains(err.Error(), "longer than")):
			t.Errorf("an answer of %d bytes: err %v, %d bytes printed; want an error saying it is too long", n, err, out.Len())
		}
	}
}
