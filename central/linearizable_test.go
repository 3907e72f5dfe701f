package central_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/storeline/storeline/internal/testwait"
)

// The register under test is one price: (list retail, item i0, a fixed
// effective time). A write sets it through one node; a read returns it
// through another.
type regOp struct {
	Write bool
	Value string
}

var registerModel = porcupine.Model{
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(regOp)
		if in.Write {
			return true, in.Value
		}
		return output.(string) == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(regOp)
		if in.Write {
			return "write " + in.Value
		}
		return fmt.Sprintf("read -> %q", output)
	},
}

var regFrom = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// regWrite writes value through addr; ok false means the outcome is
// unknown (an error or a timeout), which the history records as a write
// that may take effect at any time after its call.
func regWrite(ctx context.Context, client *http.Client, addr, value string) (ok bool, err error) {
	// Unknown outcome: retry with the same key (every write of a value
	// has the key "reg-"+value), which is safe.
	testwait.Retry(10*time.Second, func() bool {
		ok, err = regWriteOnce(ctx, client, addr, value)
		return ok || err != nil
	})
	return ok, err
}

func regWriteOnce(ctx context.Context, client *http.Client, addr, value string) (ok bool, err error) {
	body, _ := json.Marshal(map[string]any{"prices": []any{map[string]any{"list": "retail", "item": "i0", "from": regFrom, "price": value}}})
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/v1/prices", bytesReader(body))
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "reg-"+value)
	resp, err := client.Do(req)
	if err != nil {
		return false, nil
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case 200:
		return true, nil
	case 503:
		return false, nil
	}
	return false, fmt.Errorf("write %s via %s: status %d", value, addr, resp.StatusCode)
}

// regRead reads the price through addr; ok false means the read failed
// (it is then left out of the history: a failed read observed nothing).
func regRead(ctx context.Context, client *http.Client, addr string, linearizable bool) (value string, ok bool, err error) {
	path := "/v1/prices?list=retail&item=i0"
	if linearizable {
		path += "&consistency=linearizable"
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+viewerKey)
	resp, err := client.Do(req)
	if err != nil {
		return "", false, nil
	}
	defer resp.Body.Close()
	if resp.StatusCode == 503 {
		return "", false, nil
	}
	if resp.StatusCode != 200 {
		return "", false, fmt.Errorf("read via %s: status %d", addr, resp.StatusCode)
	}
	var out struct {
		Prices []struct {
			Price string `json:"price"`
		} `json:"prices"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", false, err
	}
	if len(out.Prices) == 0 {
		return "", true, nil
	}
	return out.Prices[0].Price, true, nil
}

// history collects porcupine operations with a monotonic clock.
type history struct {
	mu    sync.Mutex
	start time.Time
	ops   []porcupine.Operation
}

func (h *history) now() int64 { return int64(time.Since(h.start)) }

func (h *history) add(client int, in regOp, out string, call, ret int64) {
	h.mu.Lock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret})
	h.mu.Unlock()
}

func TestLinearizablePriceRegister(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	l := c.waitLeader()
	seed(t, l.APIAddr(), 1)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	h := &history{start: time.Now()}
	client := &http.Client{Timeout: 2 * time.Second}
	var counter atomic.Int64
	const clients, opsPerClient = 4, 30
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for cl := 0; cl < clients; cl++ {
		wg.Add(1)
		go func(cl int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(cl)))
			for i := 0; i < opsPerClient; i++ {
				addr := c.nodes[rng.IntN(len(c.nodes))].APIAddr()
				call := h.now()
				if rng.IntN(2) == 0 {
					v := fmt.Sprint(counter.Add(1))
					ok, err := regWrite(context.Background(), client, addr, v)
					if err != nil {
						errs <- err
						return
					}
					ret := h.now()
					if !ok {
						ret = math.MaxInt64 // ambiguous: may take effect any time later
					}
					h.add(cl, regOp{Write: true, Value: v}, "", call, ret)
				} else {
					v, ok, err := regRead(context.Background(), client, addr, true)
					if err != nil {
						errs <- err
						return
					}
					if ok {
						h.add(cl, regOp{}, v, call, h.now())
					}
				}
			}
		}(cl)
	}
	// Leaders change while the clients run.
	for k := 0; k < 2; k++ {
		waitFor(t, "some operations", 20*time.Second, func() bool { h.mu.Lock(); defer h.mu.Unlock(); return len(h.ops) > (k+1)*clients*opsPerClient/3 })
		if ld := c.leader(); ld != nil {
			if err := ld.TransferLeadership(); err != nil {
				t.Logf("transfer: %v", err)
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	res, info := porcupine.CheckOperationsVerbose(registerModel, h.ops, 30*time.Second)
	if res != porcupine.Ok {
		_ = info
		t.Fatalf("history of %d operations is %s (seed %d)", len(h.ops), res, seed)
	}
	t.Logf("%d operations linearizable", len(h.ops))
}

// TestStaleReadIsCaught shows the check bites: a follower cut off from
// Raft answers a local read with the old price after a newer write was
// acknowledged, and porcupine rejects that history. The same read with
// consistency=linearizable refuses to answer instead.
func TestStaleReadIsCaught(t *testing.T) {
	c := startCluster(t, 3)
	seed(t, c.waitLeader().APIAddr(), 1)
	// An election on a loaded machine can move the leader between the
	// steps (the follower picked could become leader); such an attempt
	// proves nothing either way and is run again with new values.
	for attempt := 0; attempt < 3; attempt++ {
		err := staleReadAttempt(t, c, fmt.Sprint(2*attempt+1), fmt.Sprint(2*attempt+2))
		if err == nil {
			return
		}
		t.Logf("attempt %d: leadership moved, again: %v", attempt, err)
	}
	t.Fatal("leadership moved in every attempt")
}

// errLeaderMoved marks an attempt spoiled by an election.
var errLeaderMoved = errors.New("leader moved")

func staleReadAttempt(t *testing.T, c *cluster, old, fresh string) error {
	l := c.waitLeader()
	f := c.follower()
	client := &http.Client{Timeout: 5 * time.Second}
	ctx := context.Background()
	h := &history{start: time.Now()}

	call := h.now()
	if ok, err := regWrite(ctx, client, l.APIAddr(), old); !ok || err != nil {
		t.Fatalf("write %s: %v %v", old, ok, err)
	}
	h.add(0, regOp{Write: true, Value: old}, "", call, h.now())
	target := l.AppliedIndex()
	waitFor(t, "follower applied write "+old, 10*time.Second, func() bool { return f.AppliedIndex() >= target })
	if !l.IsLeader() || f.IsLeader() {
		return errLeaderMoved
	}

	f.CutRaft(true)
	defer func() {
		f.CutRaft(false)
		waitFor(t, "follower reconnected", 10*time.Second, func() bool {
			v, ok, _ := regRead(ctx, client, f.APIAddr(), true)
			return ok && v == fresh
		})
	}()
	call = h.now()
	if ok, err := regWrite(ctx, client, l.APIAddr(), fresh); !ok || err != nil {
		if !l.IsLeader() {
			return fmt.Errorf("%w: write %s: %v %v", errLeaderMoved, fresh, ok, err)
		}
		t.Fatalf("write %s with one follower cut off: %v %v", fresh, ok, err)
	}
	h.add(0, regOp{Write: true, Value: fresh}, "", call, h.now())

	call = h.now()
	v, ok, err := regRead(ctx, client, f.APIAddr(), false)
	if err != nil || !ok {
		t.Fatalf("local read via cut-off follower: %v %v", ok, err)
	}
	h.add(1, regOp{}, v, call, h.now())
	if v != old {
		t.Fatalf("cut-off follower read %q, want the stale %s", v, old)
	}
	if res := porcupine.CheckOperations(registerModel, h.ops); res {
		t.Fatal("porcupine accepted a stale read after an acknowledged write")
	}

	shortCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, ok, err = regRead(shortCtx, client, f.APIAddr(), true)
	if err != nil || ok {
		t.Fatalf("linearizable read via cut-off follower answered (ok %v, err %v); want a refusal", ok, err)
	}
	return nil
}
