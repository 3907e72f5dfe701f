package crashtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/sample"
	"github.com/storeline/storeline/node"
)

var (
	flagKills   = flag.Int("crash.kills", 3, "SIGKILLs of the node under load")
	flagSeed    = flag.Uint64("crash.seed", 0, "seed of the kill schedule and the receipts (0: from the clock)")
	flagWorkers = flag.Int("crash.workers", 4, "concurrent tills posting receipts")
	flagMaxAcks = flag.Int("crash.max-acks", 60, "most receipts acknowledged between two kills (the gap is drawn from [1, max])")
)

// ack is what a till was told about its receipt.
type ack struct {
	epoch, seq uint64
}

// harness is the state shared by the load generator and the checker.
type harness struct {
	t      *testing.T
	dir    string
	chain  *sample.Chain
	client *http.Client

	mu     sync.Mutex
	acked  map[storeline.EventID]ack
	nAcked atomic.Int64
	// nLate counts receipts first acknowledged by a retry (200, not 201):
	// the node committed them but died before answering. Kills that land
	// there are the ones that test idempotency across a crash.
	nLate atomic.Int64
	cur   atomic.Pointer[child]
}

// TestCrash kills the node with SIGKILL at random moments while tills post
// receipts, restarts it on the same data directory, and checks after every
// restart that every acknowledged receipt is there exactly once, at the
// position the till was told, and that conservation holds.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay the kill schedule with -crash.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))

	h := &harness{
		t:      t,
		dir:    filepath.Join(t.TempDir(), "data"),
		chain:  sample.New(store),
		client: &http.Client{Timeout: 30 * time.Second},
		acked:  map[storeline.EventID]ack{},
	}
	run := 0
	c := startChild(t, h.dir, run)
	h.cur.Store(c)
	h.setup(c)

	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	var wg sync.WaitGroup
	for w := range *flagWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.till(ctx, rand.New(rand.NewPCG(seed, uint64(w))))
		}()
	}

	for k := 1; k <= *flagKills; k++ {
		// A random moment: after a random number of further acks, then a
		// random sub-millisecond delay so kills land inside commits too.
		target := h.nAcked.Load() + 1 + rng.Int64N(int64(*flagMaxAcks))
		h.waitAcks(target, c)
		<-time.After(time.Duration(rng.IntN(1000)) * time.Microsecond)
		c.Kill()
		snapshot := h.snapshot()
		run++
		c = startChild(t, h.dir, run)
		h.cur.Store(c)
		h.check(c, snapshot)
		t.Logf("kill %d/%d: %d receipts acknowledged, all present once", k, *flagKills, len(snapshot))
		if t.Failed() {
			break
		}
	}
	// Let the load run on the last restart a little, then stop it and check
	// everything once more before a clean stop.
	h.waitAcks(h.nAcked.Load()+1, c)
	stopLoad()
	wg.Wait()
	h.check(c, h.snapshot())
	c.Stop(t)
	t.Logf("%d kills, %d receipts acknowledged, %d of them committed before a kill and acknowledged by a retry", *flagKills, h.nAcked.Load(), h.nLate.Load())
}

// setup loads the sample chain and a seller through the admin API.
func (h *harness) setup(c *child) {
	h.t.Helper()
	ctx := context.Background()
	var imp node.MasterImport
	for _, r := range h.chain.Records(nil) {
		b, err := json.Marshal(r)
		if err != nil {
			h.t.Fatal(err)
		}
		imp.Records = append(imp.Records, node.MasterEntry{Kind: r.MasterKind(), Record: b})
	}
	if _, err := adminDo(ctx, c, "POST", "/admin/v1/master", imp, nil); err != nil {
		h.t.Fatal(err)
	}
	s := h.chain.Sellers[0]
	if _, err := adminDo(ctx, c, "POST", "/admin/v1/sellers", node.SellerRequest{ID: s.ID, Name: s.Name, Role: s.Role, PIN: s.PIN}, nil); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) waitAcks(target int64, c *child) {
	h.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for h.nAcked.Load() < target {
		if time.Now().After(deadline) {
			h.t.Fatalf("no progress: %d acks, want %d; child log:\n%s", h.nAcked.Load(), target, c.LogTail())
		}
		select {
		case <-c.Done():
			h.t.Fatalf("child exited by itself:\n%s", c.LogTail())
		case <-time.After(time.Millisecond): // polling a counter with a deadline
		}
	}
}

func (h *harness) snapshot() map[storeline.EventID]ack {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := make(map[storeline.EventID]ack, len(h.acked))
	for id, a := range h.acked {
		m[id] = a
	}
	return m
}

// receiptJSON is the body of POST /v1/receipts (posbridge/openapi.yaml).
type receiptJSON struct {
	ID         storeline.EventID    `json:"id"`
	Terminal   storeline.TerminalID `json:"terminal"`
	Shift      storeline.ShiftID    `json:"shift"`
	Seller     storeline.SellerID   `json:"seller"`
	OccurredAt time.Time            `json:"occurred_at"`
	Lines      []lineJSON           `json:"lines"`
	Payments   []paymentJSON        `json:"payments"`
}

type lineJSON struct {
	SKU   string `json:"sku"`
	Qty   string `json:"qty"`
	Price string `json:"price"`
}

type paymentJSON struct {
	Method storeline.PayMethod `json:"method"`
	Amount string              `json:"amount"`
}

// eventHead is the part of an answer that says where the event is.
type eventHead struct {
	ID    storeline.EventID `json:"id"`
	Seq   uint64            `json:"seq"`
	Epoch uint64            `json:"epoch"`
}

// newReceipt draws a receipt of one to four piece-unit lines paid in cash.
func (h *harness) newReceipt(rng *rand.Rand) []byte {
	r := receiptJSON{ID: storeline.NewEventID(), Terminal: termID, Shift: "shift-1", Seller: h.chain.Sellers[0].ID, OccurredAt: time.Now().UTC()}
	total := decimal.Zero
	for range 1 + rng.IntN(4) {
		i := rng.IntN(len(h.chain.Items))
		it, p := h.chain.Items[i], h.chain.Prices[i]
		if it.Weighed {
			continue
		}
		qty := decimal.NewFromInt(int64(1 + rng.IntN(3)))
		r.Lines = append(r.Lines, lineJSON{SKU: it.SKU, Qty: qty.String(), Price: p.Price.StringFixed(2)})
		total = total.Add(qty.Mul(p.Price))
	}
	if len(r.Lines) == 0 {
		return h.newReceipt(rng)
	}
	r.Payments = []paymentJSON{{Method: storeline.Cash, Amount: total.StringFixed(2)}}
	b, _ := json.Marshal(r)
	return b
}

// till posts receipts until ctx ends, retrying each with the same ID until
// it is acknowledged, as a real till does.
func (h *harness) till(ctx context.Context, rng *rand.Rand) {
	for ctx.Err() == nil {
		body := h.newReceipt(rng)
		for ctx.Err() == nil {
			head, status, err := h.post(ctx, body)
			if err == nil && status/100 == 2 {
				h.mu.Lock()
				prev, seen := h.acked[head.ID]
				h.acked[head.ID] = ack{head.Epoch, head.Seq}
				h.mu.Unlock()
				if seen && prev != (ack{head.Epoch, head.Seq}) {
					h.t.Errorf("receipt %s acknowledged at %d/%d, then at %d/%d", head.ID, prev.epoch, prev.seq, head.Epoch, head.Seq)
				}
				h.nAcked.Add(1)
				if status == http.StatusOK && !seen {
					h.nLate.Add(1)
				}
				break
			}
			if err == nil && status/100 == 4 && status != http.StatusTooManyRequests {
				h.t.Errorf("receipt refused: %d %s", status, body)
				return
			}
			// The node is down or stopping: retry the same receipt.
			select {
			case <-ctx.Done():
			case <-time.After(time.Millisecond):
			}
		}
	}
}

func (h *harness) post(ctx context.Context, body []byte) (eventHead, int, error) {
	var head eventHead
	req, err := http.NewRequestWithContext(ctx, "POST", h.cur.Load().till+"/v1/receipts", bytes.NewReader(body))
	if err != nil {
		return head, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+termToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return head, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return head, resp.StatusCode, err
	}
	if resp.StatusCode/100 == 2 {
		err = json.Unmarshal(b, &head)
	}
	return head, resp.StatusCode, err
}

// check verifies, on a freshly restarted node, that every acknowledged
// receipt is in the journal exactly once at the position its till was
// told, that no event appears twice, that a retry of an acknowledged
// receipt answers the same position, and that conservation holds.
func (h *harness) check(c *child, acked map[storeline.EventID]ack) {
	h.t.Helper()
	ctx := context.Background()
	if _, err := adminDo(ctx, c, "GET", "/admin/v1/conservation", nil, nil); err != nil {
		h.t.Errorf("conservation after restart: %v", err)
	}
	seen := map[storeline.EventID]ack{}
	var epoch, seq uint64
	for {
		var page node.JournalPage
		if _, err := adminDo(ctx, c, "GET", fmt.Sprintf("/admin/v1/journal?epoch=%d&seq=%d&limit=1000", epoch, seq), nil, &page); err != nil {
			h.t.Fatalf("journal: %v", err)
		}
		if len(page.Events) == 0 {
			break
		}
		for _, e := range page.Events {
			if prev, dup := seen[e.ID]; dup {
				h.t.Errorf("event %s in the journal twice: at %d/%d and %d/%d", e.ID, prev.epoch, prev.seq, e.Epoch, e.Seq)
			}
			seen[e.ID] = ack{e.Epoch, e.Seq}
		}
		epoch, seq = page.Next.Epoch, page.Next.Seq
	}
	lost := 0
	for id, a := range acked {
		got, ok := seen[id]
		switch {
		case !ok:
			lost++
			if lost <= 10 {
				h.t.Errorf("acknowledged receipt %s (at %d/%d) lost", id, a.epoch, a.seq)
			}
		case got != a:
			h.t.Errorf("receipt %s acknowledged at %d/%d, journal has it at %d/%d", id, a.epoch, a.seq, got.epoch, got.seq)
		}
	}
	if lost > 0 {
		h.t.Errorf("%d of %d acknowledged receipts lost", lost, len(acked))
	}
	// The tills' own view: a few acknowledged receipts read back by ID.
	n := 0
	for id, a := range acked {
		if n++; n > 10 {
			break
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", c.till+"/v1/receipts/"+id.String(), nil)
		req.Header.Set("Authorization", "Bearer "+termToken)
		resp, err := h.client.Do(req)
		if err != nil {
			h.t.Fatalf("GET receipt: %v", err)
		}
		var head eventHead
		err = json.NewDecoder(resp.Body).Decode(&head)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil || (ack{head.Epoch, head.Seq}) != a {
			h.t.Errorf("GET /v1/receipts/%s = %d %+v (%v), want 200 at %d/%d", id, resp.StatusCode, head, err, a.epoch, a.seq)
		}
	}
}
