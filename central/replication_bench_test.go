package central_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/internal/faultproxy"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/node"
)

var (
	benchBacklog   = flag.Int("repl.backlog", 20000, "receipts backlogged at the shop for BenchmarkReplicationUpload")
	benchProvision = flag.Int("repl.provision", 0, "items (each with a barcode and a price) for BenchmarkReplicationProvision; 0 skips it")
)

// benchReplCluster is a 3-node central with benchTimers, replication
// listeners and a registry per node.
func benchReplCluster(b *testing.B) (*cluster, map[string]*prometheus.Registry) {
	b.Helper()
	regs := map[string]*prometheus.Registry{}
	var mu sync.Mutex
	c := startClusterWith(b, 3, func(cfg *central.Config) {
		benchTimers(cfg)
		cfg.ReplicationTokens = replTokens()
		cfg.ReplicationMaxWait = 2 * time.Second
		cfg.ReplicationPageItems = 5000
		cfg.Logger = testLogger()
		reg := prometheus.NewRegistry()
		mu.Lock()
		regs[cfg.NodeID] = reg
		mu.Unlock()
		cfg.Registerer = reg
	})
	return c, regs
}

func benchShopReplication(urls []string, token string) node.ReplicationConfig {
	r := shopReplication(urls, token)
	r.MaxBatchEvents, r.MaxBatchBytes, r.PageItems = 500, 1<<20, 5000
	r.PollWait, r.RequestTimeout = 2*time.Second, 30*time.Second
	return r
}

// sellFast appends n receipts from 64 goroutines, so the shop's ledger
// group-commits many per fsync.
func sellFast(b *testing.B, l *ledger.Ledger, n int) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 64 {
				if _, _, err := l.Append(context.Background(), receiptOf(storeline.ItemID(fmt.Sprintf("i%d", i%10)), i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

func sumCounter(b *testing.B, regs map[string]*prometheus.Registry, name string, labels map[string]string) float64 {
	b.Helper()
	var s float64
	for _, reg := range regs {
		v, _ := gauge(b, reg, name, labels)
		s += v
	}
	return s
}

// BenchmarkReplicationUpload measures the upload of a backlog of receipts
// (-repl.backlog, 20,000 by default) sold while a shop was cut off, to a
// 3-node loopback central, from reconnection to the last acknowledgement;
// and the request bytes on the wire per receipt.
func BenchmarkReplicationUpload(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c, regs := benchReplCluster(b)
		if _, err := c.waitLeader().PutRecords(context.Background(), "seed", masterData(10, time.Now().Add(-time.Hour))...); err != nil {
			b.Fatal(err)
		}
		var urls []string
		var pxs []*faultproxy.Proxy
		for _, n := range c.nodes {
			px, err := faultproxy.New(n.ReplicationAddr())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { px.Close() })
			px.Cut()
			pxs = append(pxs, px)
			urls = append(urls, px.URL())
		}
		shop := startShopNode(b, testShops[0], b.TempDir(), benchShopReplication(urls, testShops[0].token))
		start := time.Now()
		sellFast(b, shop.Ledger(), *benchBacklog)
		b.Logf("sold %d receipts offline in %v", *benchBacklog, time.Since(start))
		probe := fsyncProbe(b, 200)
		in0 := sumCounter(b, regs, "storeline_replication_server_bytes_total", map[string]string{"direction": "in"})
		b.StartTimer()
		start = time.Now()
		for _, px := range pxs {
			px.Heal()
		}
		for !caughtUpAt(shop) {
			time.Sleep(time.Millisecond) // polling the acknowledgement
		}
		d := time.Since(start)
		b.StopTimer()
		in := sumCounter(b, regs, "storeline_replication_server_bytes_total", map[string]string{"direction": "in"}) - in0
		b.ReportMetric(d.Seconds(), "s/backlog")
		b.ReportMetric(float64(*benchBacklog)/d.Seconds(), "receipts/s")
		b.ReportMetric(in/float64(*benchBacklog), "wire-bytes/receipt")
		b.ReportMetric(probe, "probe-fsyncs/s")
		b.Logf("uploaded %d receipts in %v (%.0f/s), %.0f request bytes per receipt", *benchBacklog, d, float64(*benchBacklog)/d.Seconds(), in/float64(*benchBacklog))
		shop.Stop()
	}
}

// BenchmarkReplicationProvision measures provisioning a new shop from a
// 3-node central holding -repl.provision items, each with a barcode and a
// price in the shop's list: from the node's start until its till API
// prices the last item.
func BenchmarkReplicationProvision(b *testing.B) {
	if *benchProvision == 0 {
		b.Skip("set -repl.provision=N (make bench-repl sets 100000)")
	}
	n := *benchProvision
	c, _ := benchReplCluster(b)
	ctx := context.Background()
	leader := c.waitLeader()
	if _, err := leader.PutRecords(ctx, "seed", masterData(0, time.Now())...); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	from := time.Now().Add(-time.Hour)
	const chunk = 10000
	for lo := 0; lo < n; lo += chunk {
		var recs []storeline.Record
		for i := lo; i < min(n, lo+chunk); i++ {
			id := storeline.ItemID(fmt.Sprintf("p%06d", i))
			recs = append(recs, &storeline.Item{ID: id, SKU: fmt.Sprintf("sku%06d", i), Name: fmt.Sprintf("Product %d", i),
				Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: decimal.NewFromInt(21),
				Barcodes: []storeline.ItemBarcode{{Code: ean13(fmt.Sprintf("47%010d", i)), Factor: decimal.NewFromInt(1)}}})
		}
		putRetrying(b, c, fmt.Sprintf("items-%d", lo), recs)
		recs = recs[:0]
		for i := lo; i < min(n, lo+chunk); i++ {
			recs = append(recs, &storeline.Price{List: "retail", Item: storeline.ItemID(fmt.Sprintf("p%06d", i)), From: from,
				Price: decimal.NewFromInt(int64(100 + i%900)).Shift(-2)})
		}
		putRetrying(b, c, fmt.Sprintf("prices-%d", lo), recs)
	}
	b.Logf("central loaded %d items with barcodes and prices in %v", n, time.Since(start))
	last := fmt.Sprintf("sku%06d", n-1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		shop := startShopNode(b, testShops[0], b.TempDir(), benchShopReplication([]string{"http://" + c.nodes[1].ReplicationAddr()}, testShops[0].token))
		for {
			if _, ok := tillItem(b, shop, testShops[0].terminal, last); ok {
				break
			}
			time.Sleep(5 * time.Millisecond) // polling the till API
		}
		d := time.Since(start)
		b.ReportMetric(d.Seconds(), "s/provision")
		b.Logf("provisioned a shop with %d items, barcodes and prices in %v", n, d)
		b.StopTimer()
		shop.Stop()
		b.StartTimer()
	}
}

// ean13 appends the GS1 check digit to 12 digits.
func ean13(body string) string {
	sum := 0
	for i := 0; i < len(body); i++ {
		d := int(body[len(body)-1-i] - '0')
		if i%2 == 0 {
			d *= 3
		}
		sum += d
	}
	return body + string(rune('0'+(10-sum%10)%10))
}

// putRetrying writes records, retrying with the same key while the cluster
// has no leader (an election on a loaded machine): the key makes a retry
// apply nothing twice.
func putRetrying(b *testing.B, c *cluster, key string, recs []storeline.Record) {
	b.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; {
		_, err := c.waitLeader().PutRecords(context.Background(), key, recs...)
		if err == nil {
			return
		}
		if storeline.KindOf(err) != storeline.Unavailable || time.Now().After(deadline) {
			b.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fsyncProbe appends n 4 KiB blocks to a file, syncing each, and returns
// the syncs per second: the same run's disk floor, beside the figures.
func fsyncProbe(b *testing.B, n int) float64 {
	b.Helper()
	f, err := os.Create(filepath.Join(b.TempDir(), "probe"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 4096)
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := f.Write(block); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkReplicationPriceLatency measures the time from a price change
// committed at central to its visibility at a shop's till API while the
// shop sells a steady 200 receipts/s (pushed to central meanwhile): each
// iteration changes one price and polls the till until it shows.
func BenchmarkReplicationPriceLatency(b *testing.B) {
	c, _ := benchReplCluster(b)
	putRetrying(b, c, "seed", masterData(10, time.Now().Add(-time.Hour)))
	s := testShops[0]
	shop := startShopNode(b, s, b.TempDir(), benchShopReplication([]string{"http://" + c.nodes[1].ReplicationAddr(), "http://" + c.nodes[2].ReplicationAddr()}, s.token))
	for {
		if _, ok := tillItem(b, shop, s.terminal, "sku9"); ok {
			break
		}
		time.Sleep(5 * time.Millisecond) // polling the till API
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // 200 receipts/s
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if _, _, err := shop.Ledger().Append(context.Background(), receiptOf(storeline.ItemID(fmt.Sprintf("i%d", i%10)), i)); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		price := decimal.NewFromInt(int64(1000 + i)).Shift(-2)
		want := price.StringFixed(2)
		start := time.Now()
		putRetrying(b, c, fmt.Sprintf("price-%d", i), []storeline.Record{&storeline.Price{List: "retail", Item: "i5",
			From: time.Now().Add(-time.Minute + time.Duration(i)*time.Millisecond), Price: price}})
		for {
			if p, ok := tillItem(b, shop, s.terminal, "sku5"); ok && p == want {
				break
			}
			time.Sleep(time.Millisecond) // polling the till API
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	slices.Sort(lat)
	q := func(f float64) time.Duration { return lat[min(len(lat)-1, int(f*float64(len(lat))))] }
	b.ReportMetric(float64(q(0.5).Microseconds())/1e3, "p50-ms")
	b.ReportMetric(float64(q(0.99).Microseconds())/1e3, "p99-ms")
	b.Logf("%d price changes under 200 receipts/s: p50 %v, p99 %v, max %v; shop acked %v", len(lat), q(0.5), q(0.99), lat[len(lat)-1], ackedAt(shop))
}
