package replication_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

// memMeta keeps the client's ack and cursor in memory, so each benchmark
// iteration uploads the same backlog again.
type memMeta struct {
	replication.Local
	mu sync.Mutex
	m  map[string][]byte
}

func (m *memMeta) Meta(k string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.m[k]
	return v, ok, nil
}

func (m *memMeta) SetMeta(_ context.Context, k string, v []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.m[k] = v
	return nil
}

// BenchmarkUpload20000 measures the upload of 20,000 backlogged receipts
// from a shop's ledger to the reference backend (a ledger applying them
// through IngestState) over loopback HTTP, and the bytes sent per receipt.
func BenchmarkUpload20000(b *testing.B) {
	const n = 20000
	l, _ := shopLedger(b, n)
	probe := fsyncProbe(b, 500*time.Millisecond)
	for b.Loop() {
		b.StopTimer()
		c := newRefCentral(b)
		c.putMaster(items(10)...)
		srv := c.serve(b, tokens())
		reg := prometheus.NewRegistry()
		met, err := replication.NewMetrics(reg)
		if err != nil {
			b.Fatal(err)
		}
		cc := replication.DefaultClientConfig()
		cc.Store, cc.Central, cc.Token = shop, []string{srv.URL}, shopToken
		cc.PushInterval, cc.PollWait = 5*time.Millisecond, time.Second
		cl, err := replication.NewClient(cc, &memMeta{Local: node.LedgerLocal(l, nil), m: map[string][]byte{}}, met)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		cl.Start()
		for cl.Status().Acked.Seq < n {
			time.Sleep(time.Millisecond) // polling the measured condition
		}
		elapsed := time.Since(start)
		b.StopTimer()
		cl.Stop()
		b.ReportMetric(gathered(b, reg, "storeline_replication_sent_bytes_total")/n, "B/receipt")
		b.ReportMetric(n/elapsed.Seconds(), "receipts/s")
		b.ReportMetric(probe, "probe-fsyncs/s")
		if got := len(c.journalIDs(b, shop)); got != n {
			b.Fatalf("central holds %d events, want %d", got, n)
		}
		srv.Close()
		b.StartTimer()
	}
}

// fsyncProbe appends 4 KiB and fdatasyncs it in a loop for d on the test's
// disk, and returns the rate: the same-run yardstick for disk-bound
// figures.
func fsyncProbe(b *testing.B, d time.Duration) float64 {
	b.Helper()
	f, err := os.Create(filepath.Join(b.TempDir(), "probe"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds()
}

// gathered reads a counter from reg.
func gathered(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
