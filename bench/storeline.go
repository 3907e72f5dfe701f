package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/sample"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/node"
)

// fsyncMetric is the ledger's count of WAL fsyncs (one per group commit).
const fsyncMetric = "storeline_ledger_fsyncs_total"

// counterValue reads a counter from a registry.
func counterValue(g prometheus.Gatherer, name string) (int64, error) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, fmt.Errorf("bench: gather metrics: %w", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return int64(mf.GetMetric()[0].GetCounter().GetValue()), nil
		}
	}
	return 0, fmt.Errorf("bench: metric %s not found", name)
}

// checkStock verifies that the stock accounts of the bench store hold
// exactly -sold units, and that the ledger's balances conserve.
func checkStock(l *ledger.Ledger, sold int64) error {
	if err := l.CheckConservation(); err != nil {
		return err
	}
	bs, err := l.Balances("stock/" + string(benchStore) + "/")
	if err != nil {
		return err
	}
	sum := decimal.Zero
	for _, b := range bs {
		sum = sum.Add(b.Amount)
	}
	if !sum.Equal(decimal.NewFromInt(-sold)) {
		return fmt.Errorf("stock balances sum to %s, want %d", sum, -sold)
	}
	return nil
}

// ledgerContender is Storeline's store node engine in process:
// ledger.Append of the receipt event, which returns once its group commit
// is fdatasynced and applied to Badger.
type ledgerContender struct {
	dir     string
	reg     *prometheus.Registry
	l       *ledger.Ledger
	w       *workload
	clients []*ledgerClient
	sold    atomic.Int64
}

func newLedgerContender(dir string, w *workload) *ledgerContender {
	return &ledgerContender{dir: dir, w: w}
}

func (c *ledgerContender) Name() string { return nameLedger }
func (c *ledgerContender) Unit() string { return "receipt" }

func (c *ledgerContender) Open(ctx context.Context, clients int) error {
	c.reg = prometheus.NewRegistry()
	o := ledger.DefaultOptions(c.dir, benchStore)
	o.Registerer = c.reg
	l, err := ledger.Open(o)
	if err != nil {
		return fmt.Errorf("bench: open ledger: %w", err)
	}
	c.l = l
	for i := range clients {
		c.clients = append(c.clients, &ledgerClient{c: c, term: storeline.TerminalID(fmt.Sprintf("till-%d", i+1)), rng: rand.New(rand.NewPCG(uint64(i), 1))})
	}
	return nil
}

func (c *ledgerContender) Client(i int) Client { return c.clients[i] }

func (c *ledgerContender) Syncs() (int64, error) { return counterValue(c.reg, fsyncMetric) }

func (c *ledgerContender) Describe(context.Context) (string, error) {
	return "ledger.DefaultOptions: preallocated zero-filled WAL segments, group commit, fdatasync per batch before any caller is answered", nil
}

func (c *ledgerContender) Check(_ context.Context, acked int64) error {
	if got := int64(c.l.Position().Seq); got != acked {
		return fmt.Errorf("journal holds %d events, %d were acknowledged", got, acked)
	}
	return checkStock(c.l, c.sold.Load())
}

func (c *ledgerContender) Close() error {
	if c.l == nil {
		return nil
	}
	return c.l.Close()
}

type ledgerClient struct {
	c    *ledgerContender
	term storeline.TerminalID
	rng  *rand.Rand
}

func (cl *ledgerClient) Do(ctx context.Context) (int, error) {
	r := cl.c.w.receipt(cl.rng, cl.term)
	if _, _, err := cl.c.l.Append(ctx, receiptEvent(r, time.Now())); err != nil {
		return 0, err
	}
	cl.c.sold.Add(unitsSold(r).IntPart())
	return 1, nil
}

// nodeContender is a Storeline store node started in process, driven over
// loopback HTTP: POST /v1/receipts, as a till sends it, each client a till
// with its own terminal token and its own keep-alive connection.
type nodeContender struct {
	dir     string
	w       *workload
	n       *node.Node
	clients []*nodeClient
	sold    atomic.Int64
}

func newNodeContender(dir string, w *workload) *nodeContender {
	return &nodeContender{dir: dir, w: w}
}

func (c *nodeContender) Name() string { return nameNode }
func (c *nodeContender) Unit() string { return "receipt" }

func (c *nodeContender) Open(ctx context.Context, clients int) error {
	cfg := node.DefaultConfig()
	cfg.StoreID = benchStore
	cfg.DataDir = c.dir
	cfg.TillAddr = "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.AdminToken = node.NewToken()
	for i := range clients {
		cfg.Terminals = append(cfg.Terminals, node.TerminalToken{ID: storeline.TerminalID(fmt.Sprintf("till-%d", i+1)), Token: node.NewToken()})
	}
	n, err := node.New(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		return fmt.Errorf("bench: node: %w", err)
	}
	if err := n.Start(); err != nil {
		return fmt.Errorf("bench: start node: %w", err)
	}
	c.n = n
	var recErr error
	recs := c.w.chain.Records(func(s sample.SellerPIN) *storeline.Seller {
		rec, err := node.SellerRecord(node.SellerRequest{ID: s.ID, Name: s.Name, Role: s.Role, PIN: s.PIN})
		if err != nil {
			recErr = err
			return &storeline.Seller{ID: s.ID}
		}
		return rec
	})
	if recErr != nil {
		return fmt.Errorf("bench: sample sellers: %w", recErr)
	}
	if _, err := n.Ledger().PutMaster(ctx, recs); err != nil {
		return fmt.Errorf("bench: load the sample chain: %w", err)
	}
	for i, t := range cfg.Terminals {
		c.clients = append(c.clients, &nodeClient{
			c: c, term: t.ID, token: t.Token, url: n.TillURL() + "/v1/receipts",
			rng: rand.New(rand.NewPCG(uint64(i), 2)),
			hc: &http.Client{Transport: &http.Transport{
				MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, DisableCompression: true, IdleConnTimeout: time.Minute,
			}},
		})
	}
	return nil
}

func (c *nodeContender) Client(i int) Client { return c.clients[i] }

func (c *nodeContender) Syncs() (int64, error) { return counterValue(c.n.Registry(), fsyncMetric) }

func (c *nodeContender) Describe(context.Context) (string, error) {
	return "node.DefaultConfig (ledger defaults) behind the tills' API; a 201 is sent only after the receipt's group commit is fdatasynced", nil
}

func (c *nodeContender) Check(_ context.Context, acked int64) error {
	n, err := counterValue(c.n.Registry(), "storeline_receipts_committed_total")
	if err != nil {
		return err
	}
	if n != acked {
		return fmt.Errorf("node committed %d receipts, %d were acknowledged", n, acked)
	}
	return checkStock(c.n.Ledger(), c.sold.Load())
}

func (c *nodeContender) Close() error {
	for _, cl := range c.clients {
		cl.hc.CloseIdleConnections()
	}
	if c.n == nil {
		return nil
	}
	return c.n.Stop()
}

type nodeClient struct {
	c     *nodeContender
	term  storeline.TerminalID
	token string
	url   string
	rng   *rand.Rand
	hc    *http.Client
}

// Wire shapes of POST /v1/receipts (posbridge/openapi.yaml).
type (
	lineJSON struct {
		SKU   string `json:"sku"`
		Qty   string `json:"qty"`
		Price string `json:"price"`
	}
	paymentJSON struct {
		Method    string `json:"method"`
		Amount    string `json:"amount"`
		Reference string `json:"reference,omitempty"`
	}
	receiptJSON struct {
		ID         string        `json:"id"`
		Terminal   string        `json:"terminal"`
		Shift      string        `json:"shift"`
		Seller     string        `json:"seller"`
		OccurredAt time.Time     `json:"occurred_at"`
		Lines      []lineJSON    `json:"lines"`
		Payments   []paymentJSON `json:"payments"`
	}
)

func (cl *nodeClient) Do(ctx context.Context) (int, error) {
	r := cl.c.w.receipt(cl.rng, cl.term)
	in := receiptJSON{
		ID: storeline.NewEventID().String(), Terminal: string(cl.term), Shift: string(r.Shift), Seller: string(r.Seller),
		OccurredAt: time.Now().UTC(),
	}
	for _, l := range r.Lines {
		in.Lines = append(in.Lines, lineJSON{SKU: cl.c.w.sku(l.Item), Qty: l.Qty.String(), Price: l.Price.StringFixed(2)})
	}
	for _, p := range r.Payments {
		in.Payments = append(in.Payments, paymentJSON{Method: string(p.Method), Amount: p.Amount.StringFixed(2), Reference: p.Reference})
	}
	body, err := json.Marshal(in)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cl.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+cl.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := cl.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusCreated {
		return 0, fmt.Errorf("POST /v1/receipts = %d %s", resp.StatusCode, b)
	}
	cl.c.sold.Add(unitsSold(r).IntPart())
	return 1, nil
}
