package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// pgSchema is the normalised schema a SQL back office would use, in a
// schema of its own so a DSN pointing at a shared database loses nothing
// else.
const pgSchema = `
DROP SCHEMA IF EXISTS storeline_bench CASCADE;
CREATE SCHEMA storeline_bench;
SET search_path TO storeline_bench;
CREATE TABLE stock (
	store text NOT NULL,
	item  text NOT NULL,
	qty   numeric(14,3) NOT NULL,
	PRIMARY KEY (store, item)
);
CREATE TABLE receipts (
	id            uuid PRIMARY KEY,
	store         text NOT NULL,
	terminal      text NOT NULL,
	shift         text NOT NULL,
	seller        text NOT NULL,
	occurred_at   timestamptz NOT NULL,
	business_date date NOT NULL,
	currency      char(3) NOT NULL,
	total         numeric(14,2) NOT NULL,
	change        numeric(14,2) NOT NULL
);
CREATE TABLE lines (
	receipt_id uuid NOT NULL REFERENCES receipts (id),
	n          int NOT NULL,
	item       text NOT NULL,
	dept       text NOT NULL,
	qty        numeric(14,3) NOT NULL,
	price      numeric(14,2) NOT NULL,
	discount   numeric(14,2) NOT NULL,
	vat_rate   numeric(5,2) NOT NULL,
	total      numeric(14,2) NOT NULL,
	vat        numeric(14,2) NOT NULL,
	PRIMARY KEY (receipt_id, n)
);
CREATE TABLE payments (
	receipt_id uuid NOT NULL REFERENCES receipts (id),
	n          int NOT NULL,
	method     text NOT NULL,
	amount     numeric(14,2) NOT NULL,
	reference  text NOT NULL,
	PRIMARY KEY (receipt_id, n)
);
`

// initialStock is every item's opening stock in the SQL peers.
const initialStock = 1_000_000

// The statements of one receipt, prepared on every connection.
var pgStatements = map[string]string{
	"ins_receipt": `INSERT INTO receipts (id, store, terminal, shift, seller, occurred_at, business_date, currency, total, change)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
	"ins_line": `INSERT INTO lines (receipt_id, n, item, dept, qty, price, discount, vat_rate, total, vat)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
	"ins_payment": `INSERT INTO payments (receipt_id, n, method, amount, reference) VALUES ($1, $2, $3, $4, $5)`,
	"dec_stock":   `UPDATE stock SET qty = qty - $1 WHERE store = $2 AND item = $3`,
}

// pgContender is PostgreSQL with one transaction per receipt: the receipt
// row, its lines, its payments and one stock UPDATE per line, committed
// with the server's defaults (fsync=on, synchronous_commit=on). Tuned up,
// and said so in the report: each client owns one connection with every
// statement prepared, and sends a receipt's 13 statements as one pipelined
// batch, which PostgreSQL runs as one implicit transaction (a single round
// trip and a single commit).
type pgContender struct {
	dsn     string
	w       *workload
	admin   *pgx.Conn
	clients []*pgClient
	sold    atomic.Int64
}

func newPGContender(dsn string, w *workload) *pgContender { return &pgContender{dsn: dsn, w: w} }

func (c *pgContender) Name() string { return namePG }
func (c *pgContender) Unit() string { return "receipt" }

func (c *pgContender) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(c.dsn)
	if err != nil {
		return nil, fmt.Errorf("bench: postgres DSN: %w", err)
	}
	cfg.RuntimeParams["search_path"] = "storeline_bench"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("bench: connect to postgres: %w", err)
	}
	return conn, nil
}

func (c *pgContender) Open(ctx context.Context, clients int) error {
	admin, err := c.connect(ctx)
	if err != nil {
		return err
	}
	c.admin = admin
	if _, err := admin.Exec(ctx, pgSchema); err != nil {
		return fmt.Errorf("bench: postgres schema: %w", err)
	}
	rows := make([][]any, len(c.w.items))
	for i, it := range c.w.items {
		rows[i] = []any{string(benchStore), string(it.ID), decimal.NewFromInt(initialStock)}
	}
	if _, err := admin.CopyFrom(ctx, pgx.Identifier{"stock"}, []string{"store", "item", "qty"}, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("bench: postgres stock: %w", err)
	}
	if _, err := admin.Exec(ctx, "ANALYZE"); err != nil {
		return fmt.Errorf("bench: postgres analyze: %w", err)
	}
	for i := range clients {
		conn, err := c.connect(ctx)
		if err != nil {
			return err
		}
		cl := &pgClient{c: c, conn: conn, term: storeline.TerminalID(fmt.Sprintf("till-%d", i+1)), rng: rand.New(rand.NewPCG(uint64(i), 3))}
		c.clients = append(c.clients, cl)
		for name, sql := range pgStatements {
			if _, err := conn.Prepare(ctx, name, sql); err != nil {
				return fmt.Errorf("bench: postgres prepare %s: %w", name, err)
			}
		}
	}
	return nil
}

func (c *pgContender) Client(i int) Client { return c.clients[i] }

func (c *pgContender) Describe(ctx context.Context) (string, error) {
	var parts []string
	for _, s := range []string{"server_version", "fsync", "synchronous_commit", "wal_sync_method", "full_page_writes", "commit_delay", "shared_buffers", "max_wal_size"} {
		var v string
		if err := c.admin.QueryRow(ctx, "SHOW "+s).Scan(&v); err != nil {
			return "", fmt.Errorf("bench: postgres SHOW %s: %w", s, err)
		}
		parts = append(parts, s+"="+v)
	}
	return strings.Join(parts, ", ") + "; tuned up: one connection per client, statements prepared, a receipt's 13 statements pipelined as one implicit transaction (one round trip, one commit)", nil
}

func (c *pgContender) Check(ctx context.Context, acked int64) error {
	var n, lines, pays int64
	if err := c.admin.QueryRow(ctx, "SELECT (SELECT count(*) FROM receipts), (SELECT count(*) FROM lines), (SELECT count(*) FROM payments)").Scan(&n, &lines, &pays); err != nil {
		return err
	}
	if n != acked || lines != acked*receiptLines || pays != acked*2 {
		return fmt.Errorf("postgres holds %d receipts, %d lines, %d payments; %d receipts were acknowledged", n, lines, pays, acked)
	}
	var left decimal.Decimal
	if err := c.admin.QueryRow(ctx, "SELECT sum(qty) FROM stock").Scan(&left); err != nil {
		return err
	}
	want := decimal.NewFromInt(int64(len(c.w.items))*initialStock - c.sold.Load())
	if !left.Equal(want) {
		return fmt.Errorf("postgres stock sums to %s, want %s", left, want)
	}
	return nil
}

func (c *pgContender) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, cl := range c.clients {
		cl.conn.Close(ctx)
	}
	if c.admin != nil {
		c.admin.Close(ctx)
	}
	return nil
}

type pgClient struct {
	c    *pgContender
	conn *pgx.Conn
	term storeline.TerminalID
	rng  *rand.Rand
}

func (cl *pgClient) Do(ctx context.Context) (int, error) {
	r := cl.c.w.receipt(cl.rng, cl.term)
	ev := receiptEvent(r, time.Now())
	id := ev.ID.String()
	b := &pgx.Batch{}
	b.Queue("ins_receipt", id, string(benchStore), string(r.Terminal), string(r.Shift), string(r.Seller), ev.OccurredAt, string(ev.BusinessDate), string(r.Currency), r.Total, r.Change)
	for i, l := range r.Lines {
		b.Queue("ins_line", id, i, string(l.Item), string(l.Dept), l.Qty, l.Price, l.Discount, l.VATRate, l.Total, l.VAT)
	}
	for i, p := range r.Payments {
		b.Queue("ins_payment", id, i, string(p.Method), p.Amount, p.Reference)
	}
	for _, l := range r.Lines {
		b.Queue("dec_stock", l.Qty, string(benchStore), string(l.Item))
	}
	// SendBatch runs the queued statements in one implicit transaction;
	// Close returns the first error and only after the commit's answer.
	if err := cl.conn.SendBatch(ctx, b).Close(); err != nil {
		return 0, fmt.Errorf("postgres receipt: %w", err)
	}
	cl.c.sold.Add(unitsSold(r).IntPart())
	return 1, nil
}
