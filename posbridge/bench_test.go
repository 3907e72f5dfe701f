package posbridge_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkBarcodeLookup measures GET /v1/barcodes/{code} against the real
// ledger: the handler alone (terminal auth, scan parse, item lookup,
// store record and price scan, JSON), and the same over loopback HTTP.
func BenchmarkBarcodeLookup(b *testing.B) {
	e := newEnv(b)
	codes := []string{milkEAN, milkBox, wineEAN8, colaUPC, gtin("201234500347")}
	b.Run("handler", func(b *testing.B) {
		h := e.srv.Handler()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			r := httptest.NewRequest("GET", "/v1/barcodes/"+codes[i%len(codes)], nil)
			r.Header.Set("Authorization", "Bearer "+tokenT1)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 200 {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
			i++
		}
	})
	b.Run("http", func(b *testing.B) {
		c := e.http.Client()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			r, _ := http.NewRequest("GET", e.http.URL+"/v1/barcodes/"+codes[i%len(codes)], nil)
			r.Header.Set("Authorization", "Bearer "+tokenT1)
			resp, err := c.Do(r)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
			i++
		}
	})
	b.Run("parallel-handler", func(b *testing.B) {
		h := e.srv.Handler()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				r := httptest.NewRequest("GET", "/v1/barcodes/"+codes[i%len(codes)], nil)
				r.Header.Set("Authorization", "Bearer "+tokenT1)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatalf("status %d", w.Code)
				}
				i++
			}
		})
	})
}
