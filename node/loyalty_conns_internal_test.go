package node

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/storeline/storeline/replication"
)

type connKey struct{}

// TestStopClosesLoyaltyConnections: the connection a loyalty call left
// idle to central is closed by the node's Stop, not kept open until the
// transport's idle timeout. The listener stands in for central only to
// watch the node's connections: it answers the points query and refuses
// everything else (replication backs off).
func TestStopClosesLoyaltyConnections(t *testing.T) {
	var (
		mu      sync.Mutex
		loyalty = map[net.Conn]bool{}
		closed  = make(chan struct{})
		once    sync.Once
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != pathLoyaltyPoints {
			http.Error(w, "not here", http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		loyalty[r.Context().Value(connKey{}).(net.Conn)] = true
		mu.Unlock()
		body, err := replication.Encode(pointsStatus{Balance: 7})
		if err != nil {
			t.Error(err)
		}
		w.Write(body)
	}))
	srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, c)
	}
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		if s == http.StateClosed && loyalty[c] {
			once.Do(func() { close(closed) })
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	c := DefaultConfig()
	c.StoreID, c.DataDir, c.AdminToken = "shop-1", t.TempDir(), "admin-token-of-the-test"
	c.TillAddr, c.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	c.WALSegmentBytes, c.MaxBatchBytes = 8<<20, 1<<20
	c.Replication.Central, c.Replication.Token = []string{srv.URL}, "shop-1-replication-token"
	n, err := New(c, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	var got pointsStatus
	if err := n.points.call(context.Background(), pathLoyaltyPoints, pointsRequest{Programme: "club", Customer: "c1"}, &got); err != nil || got.Balance != 7 {
		n.Stop()
		t.Fatalf("points call = %+v %v, want a balance of 7", got, err)
	}
	select {
	case <-closed:
		t.Fatal("the loyalty connection closed before Stop")
	default:
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second): // the transport's idle timeout is 90 s
		t.Fatal("the loyalty connection to central is still open 10 s after Stop")
	}
}
