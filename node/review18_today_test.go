package node

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/posbridge"
	"github.com/storeline/storeline/replication"
)

// TestReview18LoyaltyOfflineWhilePushesFail: central has lost its quorum
// (pushes answered 503, pulls answered 200 by the node left). A loyalty
// call fails; a pull answered after it must not put the loyalty broker
// back online while the shop's pushes still fail (replication "offline"):
// otherwise every loyalty write call of the tills goes to central again,
// waits its timeout and fails, instead of the offline rules applying.
// Once pushes go through again the broker is online.
func TestReview18LoyaltyOfflineWhilePushesFail(t *testing.T) {
	var (
		pushOK   atomic.Bool
		pushes   = make(chan struct{}, 1024)
		pulls    atomic.Int64
		pulledMu sync.Mutex
		pulled   = sync.NewCond(&pulledMu)
	)
	busy := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"kind":"unavailable","detail":"no leader"}`))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/replication/pull":
			pulledMu.Lock()
			pulls.Add(1)
			pulled.Broadcast()
			pulledMu.Unlock()
			body, _ := replication.Encode(&replication.PullResponse{V: replication.ProtocolVersion})
			w.Write(body)
		case "/v1/replication/push":
			select {
			case pushes <- struct{}{}:
			default:
			}
			if !pushOK.Load() {
				busy(w)
				return
			}
			var req replication.PushRequest
			data := make([]byte, r.ContentLength)
			if _, err := r.Body.Read(data); err != nil && len(data) == 0 {
				t.Error(err)
			}
			_ = replication.Decode(data, &req)
			ack := replication.Position{Epoch: req.Epoch}
			if n := len(req.Events); n > 0 {
				ack.Seq = req.Events[n-1].Seq
			}
			body, _ := replication.Encode(&replication.PushResponse{V: replication.ProtocolVersion, Acked: ack, Applied: len(req.Events)})
			w.Write(body)
		default:
			busy(w)
		}
	}))
	t.Cleanup(srv.Close)

	led, err := ledger.Open(ledger.DefaultOptions(t.TempDir(), "s1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	ctx := context.Background()
	var id storeline.EventID
	id[0], id[15] = 1, 1
	if _, _, err := led.Append(ctx, storeline.Event{ID: id, Body: &storeline.Transfer{Reason: "test"},
		OccurredAt: time.Now(), BusinessDate: storeline.DateOf(time.Now(), time.UTC)}); err != nil {
		t.Fatal(err)
	}
	cfg := replication.DefaultClientConfig()
	cfg.Store, cfg.Central, cfg.Token = "s1", []string{srv.URL}, "shop-1-replication-token"
	cfg.PollWait, cfg.BackoffMin, cfg.BackoffMax, cfg.PushInterval = time.Millisecond, time.Millisecond, 5*time.Millisecond, time.Millisecond
	repl, err := replication.NewClient(cfg, LedgerLocal(led, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	repl.Start()
	t.Cleanup(repl.Stop)
	// Two pushes received: the first one's failure is recorded.
	<-pushes
	<-pushes

	b := &pointsBroker{led: led, repl: repl, cached: map[string]posbridge.CentralPoints{},
		central: &centralCaller{op: "node.loyalty", urls: []string{srv.URL}, token: cfg.Token, timeout: 50 * time.Millisecond, limit: maxLoyaltyAnswer, hc: &http.Client{}}}
	_, _, err = b.Reserve(ctx, "club", "c1", id, 10)
	if storeline.KindOf(err) != storeline.Unavailable {
		t.Fatalf("Reserve with central's quorum lost = %v, want Unavailable", err)
	}
	// Two more pulls received: one answered wholly after the failure.
	waitPulls := func() {
		pulledMu.Lock()
		for n := pulls.Load() + 2; pulls.Load() < n; {
			pulled.Wait()
		}
		pulledMu.Unlock()
	}
	waitPulls()
	if st := repl.Status(); st.State != "offline" {
		t.Fatalf("replication state %q with every push failing, want offline", st.State)
	}
	if b.Online() {
		t.Errorf("loyalty broker online after a failed call while pushes fail (central's quorum lost): each loyalty write waits for central again")
	}

	pushOK.Store(true)
	for repl.Status().State != "online" {
		waitPulls() // pulls go on all the time
	}
	waitPulls()
	if !b.Online() {
		t.Errorf("loyalty broker offline once replication is online again (status %+v)", repl.Status())
	}
}
