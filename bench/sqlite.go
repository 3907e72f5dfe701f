package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"

	_ "github.com/mattn/go-sqlite3" // the "sqlite3" database/sql driver (cgo, the SQLite amalgamation)

	"github.com/storeline/storeline"
)

// SQLite has no decimal type: the schema keeps money in cents and
// quantities in thousandths, as integers, as a SQLite application would.
const sqliteSchema = `
CREATE TABLE stock (
	store TEXT NOT NULL,
	item  TEXT NOT NULL,
	qty_milli INTEGER NOT NULL,
	PRIMARY KEY (store, item)
) WITHOUT ROWID;
CREATE TABLE receipts (
	id            TEXT PRIMARY KEY,
	store         TEXT NOT NULL,
	terminal      TEXT NOT NULL,
	shift         TEXT NOT NULL,
	seller        TEXT NOT NULL,
	occurred_at   TEXT NOT NULL,
	business_date TEXT NOT NULL,
	currency      TEXT NOT NULL,
	total_cents   INTEGER NOT NULL,
	change_cents  INTEGER NOT NULL
);
CREATE TABLE lines (
	receipt_id  TEXT NOT NULL REFERENCES receipts (id),
	n           INTEGER NOT NULL,
	item        TEXT NOT NULL,
	dept        TEXT NOT NULL,
	qty_milli   INTEGER NOT NULL,
	price_cents INTEGER NOT NULL,
	discount_cents INTEGER NOT NULL,
	vat_rate    TEXT NOT NULL,
	total_cents INTEGER NOT NULL,
	vat_cents   INTEGER NOT NULL,
	PRIMARY KEY (receipt_id, n)
);
CREATE TABLE payments (
	receipt_id   TEXT NOT NULL REFERENCES receipts (id),
	n            INTEGER NOT NULL,
	method       TEXT NOT NULL,
	amount_cents INTEGER NOT NULL,
	reference    TEXT NOT NULL,
	PRIMARY KEY (receipt_id, n)
);
`

// sqliteDSN opens every connection in WAL mode with synchronous=FULL (an
// fsync of the WAL at every commit), foreign keys on, a 10 s busy timeout
// (writers queue rather than fail) and BEGIN IMMEDIATE for transactions.
const sqliteDSN = "file:%s?_journal_mode=WAL&_synchronous=FULL&_foreign_keys=on&_busy_timeout=10000&_txlock=immediate"

var sqliteStatements = []string{
	`BEGIN IMMEDIATE`,
	`INSERT INTO receipts (id, store, terminal, shift, seller, occurred_at, business_date, currency, total_cents, change_cents)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	`INSERT INTO lines (receipt_id, n, item, dept, qty_milli, price_cents, discount_cents, vat_rate, total_cents, vat_cents)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	`INSERT INTO payments (receipt_id, n, method, amount_cents, reference) VALUES (?, ?, ?, ?, ?)`,
	`UPDATE stock SET qty_milli = qty_milli - ? WHERE store = ? AND item = ?`,
	`COMMIT`,
	`ROLLBACK`,
}

// sqliteContender is SQLite in process with one transaction per receipt
// (BEGIN IMMEDIATE … COMMIT), each client on its own connection with its
// statements prepared. SQLite admits one writer at a time; left to its
// busy handler, waiting writers sleep and retry (1 to 100 ms backoff),
// which at 8 or 64 writers leaves the disk idle. Tuned up, as a Go
// application using SQLite would be: writers queue on an in-process mutex
// before BEGIN IMMEDIATE, so the next writer starts the moment the last
// one commits. Durability is untouched.
type sqliteContender struct {
	dir     string
	w       *workload
	db      *sql.DB
	admin   *sql.Conn
	clients []*sqliteClient
	sold    atomic.Int64
	writeMu sync.Mutex
}

func newSQLiteContender(dir string, w *workload) *sqliteContender {
	return &sqliteContender{dir: dir, w: w}
}

func (c *sqliteContender) Name() string { return nameSQLite }
func (c *sqliteContender) Unit() string { return "receipt" }

func (c *sqliteContender) Open(ctx context.Context, clients int) error {
	db, err := sql.Open("sqlite3", fmt.Sprintf(sqliteDSN, filepath.Join(c.dir, "bench.db")))
	if err != nil {
		return fmt.Errorf("bench: sqlite: %w", err)
	}
	c.db = db
	db.SetMaxOpenConns(clients + 1)
	db.SetMaxIdleConns(clients + 1)
	db.SetConnMaxLifetime(0)
	if c.admin, err = db.Conn(ctx); err != nil {
		return fmt.Errorf("bench: sqlite: %w", err)
	}
	if _, err := c.admin.ExecContext(ctx, sqliteSchema); err != nil {
		return fmt.Errorf("bench: sqlite schema: %w", err)
	}
	tx, err := c.admin.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for _, it := range c.w.items {
		if _, err := tx.ExecContext(ctx, `INSERT INTO stock (store, item, qty_milli) VALUES (?, ?, ?)`, string(benchStore), string(it.ID), initialStock*1000); err != nil {
			tx.Rollback()
			return fmt.Errorf("bench: sqlite stock: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("bench: sqlite stock: %w", err)
	}
	for i := range clients {
		conn, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("bench: sqlite: %w", err)
		}
		cl := &sqliteClient{c: c, conn: conn, term: storeline.TerminalID(fmt.Sprintf("till-%d", i+1)), rng: rand.New(rand.NewPCG(uint64(i), 4))}
		c.clients = append(c.clients, cl)
		for _, q := range sqliteStatements {
			st, err := conn.PrepareContext(ctx, q)
			if err != nil {
				return fmt.Errorf("bench: sqlite prepare: %w", err)
			}
			cl.st = append(cl.st, st)
		}
	}
	return nil
}

func (c *sqliteContender) Client(i int) Client { return c.clients[i] }

func (c *sqliteContender) Describe(ctx context.Context) (string, error) {
	var version, journal string
	var syncMode int
	if err := c.admin.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&version); err != nil {
		return "", err
	}
	if err := c.admin.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&journal); err != nil {
		return "", err
	}
	if err := c.admin.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&syncMode); err != nil {
		return "", err
	}
	names := map[int]string{0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
	return fmt.Sprintf("sqlite %s (mattn/go-sqlite3), journal_mode=%s, synchronous=%s, busy_timeout=10s, writers queue on an in-process mutex, then BEGIN IMMEDIATE", version, journal, names[syncMode]), nil
}

func (c *sqliteContender) Check(ctx context.Context, acked int64) error {
	var n, lines, pays, left int64
	if err := c.admin.QueryRowContext(ctx, "SELECT (SELECT count(*) FROM receipts), (SELECT count(*) FROM lines), (SELECT count(*) FROM payments), (SELECT sum(qty_milli) FROM stock)").Scan(&n, &lines, &pays, &left); err != nil {
		return err
	}
	if n != acked || lines != acked*receiptLines || pays != acked*2 {
		return fmt.Errorf("sqlite holds %d receipts, %d lines, %d payments; %d receipts were acknowledged", n, lines, pays, acked)
	}
	if want := (int64(len(c.w.items))*initialStock - c.sold.Load()) * 1000; left != want {
		return fmt.Errorf("sqlite stock sums to %d thousandths, want %d", left, want)
	}
	return nil
}

func (c *sqliteContender) Close() error {
	for _, cl := range c.clients {
		for _, st := range cl.st {
			st.Close()
		}
		cl.conn.Close()
	}
	if c.admin != nil {
		c.admin.Close()
	}
	if c.db == nil {
		return nil
	}
	return c.db.Close()
}

type sqliteClient struct {
	c    *sqliteContender
	conn *sql.Conn
	st   []*sql.Stmt // in sqliteStatements order
	term storeline.TerminalID
	rng  *rand.Rand
}

func cents(d decimal.Decimal) int64 { return d.Shift(2).IntPart() }
func milli(d decimal.Decimal) int64 { return d.Shift(3).IntPart() }

func (cl *sqliteClient) Do(ctx context.Context) (int, error) {
	r := cl.c.w.receipt(cl.rng, cl.term)
	ev := receiptEvent(r, time.Now())
	id := ev.ID.String()
	begin, insR, insL, insP, dec, commit, rollback := cl.st[0], cl.st[1], cl.st[2], cl.st[3], cl.st[4], cl.st[5], cl.st[6]
	cl.c.writeMu.Lock()
	defer cl.c.writeMu.Unlock()
	if _, err := begin.ExecContext(ctx); err != nil {
		return 0, fmt.Errorf("sqlite begin: %w", err)
	}
	err := func() error {
		if _, err := insR.ExecContext(ctx, id, string(benchStore), string(r.Terminal), string(r.Shift), string(r.Seller),
			ev.OccurredAt.Format(time.RFC3339Nano), string(ev.BusinessDate), string(r.Currency), cents(r.Total), cents(r.Change)); err != nil {
			return err
		}
		for i, l := range r.Lines {
			if _, err := insL.ExecContext(ctx, id, i, string(l.Item), string(l.Dept), milli(l.Qty), cents(l.Price), cents(l.Discount),
				l.VATRate.String(), cents(l.Total), cents(l.VAT)); err != nil {
				return err
			}
		}
		for i, p := range r.Payments {
			if _, err := insP.ExecContext(ctx, id, i, string(p.Method), cents(p.Amount), p.Reference); err != nil {
				return err
			}
		}
		for _, l := range r.Lines {
			if _, err := dec.ExecContext(ctx, milli(l.Qty), string(benchStore), string(l.Item)); err != nil {
				return err
			}
		}
		_, err := commit.ExecContext(ctx)
		return err
	}()
	if err != nil {
		rollback.ExecContext(context.WithoutCancel(ctx))
		return 0, fmt.Errorf("sqlite receipt: %w", err)
	}
	cl.c.sold.Add(unitsSold(r).IntPart())
	return 1, nil
}
