package tillsim_test

import (
	"context"
	"testing"

	"github.com/storeline/storeline/internal/tillsim"
)

// BenchmarkReceipts runs b.N receipts from 4 tills against one real node
// over loopback HTTP: the end-to-end cost of a receipt, fsync included.
//
//	go test -run '^$' -bench Receipts -benchtime 3000x ./internal/tillsim
func BenchmarkReceipts(b *testing.B) {
	n := startNode(b, "shop-1")
	cfg := tillsim.DefaultConfig()
	cfg.Shops = []tillsim.Shop{{URL: n.TillURL(), AdminURL: n.AdminURL(), AdminToken: adminToken}}
	cfg.TillsPerShop = 4
	cfg.Receipts = b.N
	cfg.ReturnRate, cfg.CashOpRate = 0, 0
	b.ResetTimer()
	sum, err := tillsim.Run(context.Background(), cfg)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if sum.Receipts != b.N {
		b.Fatalf("receipts = %d, want %d", sum.Receipts, b.N)
	}
	b.ReportMetric(sum.ReceiptsPerSecond, "receipts/s")
	for _, e := range sum.Endpoints {
		if e.Endpoint == "POST /v1/receipts" {
			b.ReportMetric(float64(e.P99.Microseconds())/1000, "p99-ms")
		}
	}
}
