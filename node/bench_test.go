package node_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/sample"
	"github.com/storeline/storeline/node"
)

// BenchmarkReceipt posts receipts to a node over HTTP from parallel tills
// (32 per core: 64 on this 2-core machine, the issues' largest load): the
// figure is the throughput of acknowledged (fsynced) sales.
func BenchmarkReceipt(b *testing.B) {
	const token = "bench-terminal-token-0123456789"
	c := node.DefaultConfig()
	c.StoreID, c.DataDir, c.AdminToken = "shop-1", b.TempDir(), adminToken
	c.TillAddr, c.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	c.Terminals = []node.TerminalToken{{ID: "till-1", Token: token}}
	n, err := node.New(c, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := n.Start(); err != nil {
		b.Fatal(err)
	}
	defer n.Stop()
	if _, err := n.Ledger().PutMaster(b.Context(), sample.New("shop-1").Records(nil)); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(32)
	cpu0 := processCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body, _ := json.Marshal(map[string]any{
				"id": storeline.NewEventID(), "terminal": "till-1", "shift": "shift-1", "seller": "cashier-1",
				"occurred_at": "2026-11-28T10:00:00Z",
				"lines":       []map[string]string{{"sku": "SKU00001", "qty": "2", "price": "1.19"}},
				"payments":    []map[string]string{{"method": "cash", "amount": "5.00"}},
			})
			req, _ := http.NewRequest("POST", n.TillURL()+"/v1/receipts", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 201 {
				b.Errorf("POST receipt = %d", resp.StatusCode)
				return
			}
		}
	})
	// The process's CPU (server and load generator) per receipt: on a
	// shared machine it compares builds better than the rate does.
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/receipt")
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
