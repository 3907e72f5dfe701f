package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// Journal page limits.
const (
	DefaultJournalLimit = 1000
	MaxJournalLimit     = 10000
)

type computer interface{ Compute() error }
type validator interface{ Validate() error }

// normalise runs the body's own Compute or Validate, which normalise its
// decimals where they have one (a ShiftClose has neither, so idempotency
// compares bodies by value, not by bytes: sameBody).
func normalise(b storeline.Body) error {
	switch v := b.(type) {
	case computer:
		return v.Compute()
	case validator:
		return v.Validate()
	}
	return nil
}

// Append stores an event authored at this node. The caller sets ID, Kind,
// Body, OccurredAt and BusinessDate; the ledger sets Origin, Epoch, Seq,
// HLC, SchemaVersion and Postings (derived once from the body). Body is
// normalised in place by its Compute or Validate method.
//
// Append is idempotent by ID: the same ID with the same body (equal after
// decoding, decimals by value: sameBody) returns the stored event with
// created false; the same ID with another body is a Conflict. It returns only after the event
// is durable (fdatasync of its WAL batch). If ctx ends first, the outcome
// is unknown (Unavailable wrapping ctx.Err()); retrying with the same ID is
// safe. The ID of an event retention pruned is a Conflict wrapping
// ErrPruned: its body is gone, so the retry is not compared, and never
// counted twice.
func (l *Ledger) Append(ctx context.Context, ev storeline.Event) (stored storeline.Event, created bool, err error) {
	const op = "ledger.Append"
	if ev.ID.IsZero() {
		return ev, false, storeline.E(op, storeline.Invalid, storeline.Invalidf("id", "an event needs an ID"))
	}
	if ev.Body == nil {
		return ev, false, storeline.E(op, storeline.Invalid, storeline.Invalidf("body", "an event needs a body"))
	}
	if ev.Kind == "" {
		ev.Kind = ev.Body.EventKind()
	}
	if ev.Kind != ev.Body.EventKind() {
		return ev, false, storeline.E(op, storeline.Invalid, storeline.Invalidf("kind", "kind %q with a %q body", ev.Kind, ev.Body.EventKind()))
	}
	if err := checkDate(ev.BusinessDate); err != nil {
		return ev, false, storeline.E(op, storeline.Invalid, err)
	}
	if err := normalise(ev.Body); err != nil {
		return ev, false, fmt.Errorf("ledger: append %s: %w", ev.ID, err)
	}
	ps, err := storeline.DeriveEventPostings(l.o.Origin, ev.ID, ev.Body)
	if err != nil {
		return ev, false, fmt.Errorf("ledger: append %s: postings: %w", ev.ID, err)
	}
	body, err := encodeBody(ev.Body)
	if err != nil {
		return ev, false, storeline.E(op, storeline.Invalid, err)
	}
	ev.Origin, ev.SchemaVersion, ev.Postings = l.o.Origin, storeline.SchemaVersion, ps
	ev.OccurredAt = ev.OccurredAt.UTC()
	se := toStored(&ev, body)
	size := len(body) + 64*len(ps) + 128
	if size > MaxEventBytes {
		return ev, false, storeline.Errorf(storeline.TooLarge, op, "event %s is %d bytes, over %d", ev.ID, size, MaxEventBytes)
	}
	res := l.submit(ctx, op, &request{kind: reqAppend, ev: ev, se: se, size: size})
	if res.err != nil {
		return ev, false, res.err
	}
	return res.ev, res.created, nil
}

// ApplyRemote applies an event authored elsewhere (another origin, or this
// node's own from an older epoch after a restore) with its stored postings,
// which are checked to sum to zero per asset and never re-derived.
//
// It is idempotent by (origin, ID), across epochs: a known event returns
// applied false (this node's own event too, back at its own position; an
// own event at any other position of the current epoch is Invalid). A second copy of a known event at a new (epoch, seq) is
// recorded at that position of its origin's journal and has no effect. The
// same (origin, ID) with another body or postings (compared by value,
// postings in any order), or a position held by another event, is a
// Conflict. A known event retention pruned has no effect, at any position
// (only its kind is compared), and no second copy is recorded. It returns
// after the event is durable.
func (l *Ledger) ApplyRemote(ctx context.Context, ev storeline.Event) (applied bool, err error) {
	const op = "ledger.ApplyRemote"
	if err := checkRemote(&ev); err != nil {
		return false, storeline.E(op, storeline.KindOf(err), fmt.Errorf("event %s of %s: %w", ev.ID, ev.Origin, err))
	}
	body, err := encodeBody(ev.Body)
	if err != nil {
		return false, storeline.E(op, storeline.Invalid, err)
	}
	se := toStored(&ev, body)
	size := len(body) + 64*len(ev.Postings) + 128
	if size > MaxEventBytes {
		return false, storeline.Errorf(storeline.TooLarge, op, "event %s is %d bytes, over %d", ev.ID, size, MaxEventBytes)
	}
	res := l.submit(ctx, op, &request{kind: reqRemote, ev: ev, se: se, size: size})
	return res.created, res.err
}

// checkDate refuses a business date that is neither empty nor
// YYYY-MM-DD: the date index orders events by it.
func checkDate(d storeline.Date) error {
	if d == "" {
		return nil
	}
	_, err := storeline.ParseDate("business_date", string(d))
	return err
}

func checkRemote(ev *storeline.Event) error {
	if ev.ID.IsZero() {
		return storeline.Invalidf("id", "an event needs an ID")
	}
	if err := storeline.CheckID("origin", string(ev.Origin)); err != nil {
		return err
	}
	if ev.Epoch == 0 || ev.Seq == 0 {
		return storeline.Invalidf("seq", "position %d/%d: epoch and seq start at 1", ev.Epoch, ev.Seq)
	}
	if ev.Body == nil || ev.Kind != ev.Body.EventKind() {
		return storeline.Invalidf("kind", "kind %q does not match its body", ev.Kind)
	}
	if err := checkDate(ev.BusinessDate); err != nil {
		return err
	}
	for i, p := range ev.Postings {
		if err := checkKeyPart(fmt.Sprintf("postings[%d].account", i), p.Account); err != nil {
			return err
		}
		if err := checkKeyPart(fmt.Sprintf("postings[%d].asset", i), string(p.Asset)); err != nil {
			return err
		}
	}
	return storeline.CheckPostings(ev.Postings)
}

// Event returns the event (origin, id) at the position it was first
// stored; NotFound if there is none, NotFound wrapping ErrPruned if
// retention pruned it.
func (l *Ledger) Event(origin storeline.StoreID, id storeline.EventID) (storeline.Event, error) {
	const op = "ledger.Event"
	var ev storeline.Event
	err := l.view(func(txn *badger.Txn) error {
		se, err := getStored(txn, origin, id)
		if err != nil {
			return err
		}
		if se == nil {
			return storeline.Errorf(storeline.NotFound, op, "no event %s of %s", id, origin)
		}
		if se.Pruned {
			return prunedError(op, origin, id, se.pos())
		}
		ev, err = fromStored(se)
		return err
	})
	return ev, l.readErr(op, err)
}

// Journal returns up to limit events of origin at positions at or after
// from, in (epoch, seq) order (limit <= 0 means DefaultJournalLimit; at
// most MaxJournalLimit). A second copy of an event appears at its own
// position, with that position's Epoch and Seq; appliers deduplicate by
// (origin, ID), as ApplyRemote does. From a position retention pruned
// (PrunedThrough), or on reaching a second copy of a pruned event, it
// answers NotFound wrapping ErrPruned rather than skip them.
func (l *Ledger) Journal(origin storeline.StoreID, from Position, limit int) ([]storeline.Event, error) {
	const op = "ledger.Journal"
	if limit <= 0 {
		limit = DefaultJournalLimit
	}
	limit = min(limit, MaxJournalLimit)
	var out []storeline.Event
	err := l.view(func(txn *badger.Txn) error {
		through, err := prunedThrough(txn, origin)
		if err != nil {
			return err
		}
		if through != (Position{}) && !through.Less(from) {
			return storeline.E(op, storeline.NotFound, fmt.Errorf("journal of %s from %s: pruned through %s: %w", origin, from, through, ErrPruned))
		}
		prefix := journalPrefix(origin)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Seek(journalKey(origin, from)); it.ValidForPrefix(prefix) && len(out) < limit; it.Next() {
			pos := journalPos(it.Item().Key())
			idb, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			ev, err := loadEvent(txn, origin, idb)
			if errors.Is(err, ErrPruned) {
				// A second copy of an event pruned at its first position.
				return prunedError(op, origin, ev.ID, pos)
			}
			if err != nil {
				return err
			}
			ev.Epoch, ev.Seq = pos.Epoch, pos.Seq
			out = append(out, ev)
		}
		return nil
	})
	return out, l.readErr(op, err)
}

func loadEvent(txn *badger.Txn, origin storeline.StoreID, idb []byte) (storeline.Event, error) {
	var id storeline.EventID
	if len(idb) != len(id) {
		return storeline.Event{}, fmt.Errorf("ledger: index entry of %d bytes", len(idb))
	}
	copy(id[:], idb)
	se, err := getStored(txn, origin, id)
	if err != nil {
		return storeline.Event{}, err
	}
	if se == nil {
		return storeline.Event{}, fmt.Errorf("ledger: index names missing event %s of %s", id, origin)
	}
	if se.Pruned {
		return storeline.Event{ID: id}, ErrPruned
	}
	return fromStored(se)
}

// Balance returns the balance of asset on account (zero if never posted).
func (l *Ledger) Balance(account string, asset storeline.Asset) (decimal.Decimal, error) {
	var d decimal.Decimal
	err := l.view(func(txn *badger.Txn) error {
		var err error
		d, err = getDecimal(plainTxn{txn}, balanceKey(account, asset))
		return err
	})
	return d, l.readErr("ledger.Balance", err)
}

// Balances returns every balance of an account starting with prefix
// ("stock/<store>/"), ordered by account then asset.
func (l *Ledger) Balances(prefix string) ([]Balance, error) {
	var out []Balance
	err := l.scanBalances(prefix, func(b Balance) error {
		out = append(out, b)
		return nil
	})
	return out, l.readErr("ledger.Balances", err)
}

func (l *Ledger) scanBalances(prefix string, fn func(Balance) error) error {
	return l.view(func(txn *badger.Txn) error {
		p := append([]byte{tBalance}, prefix...)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			acct, asset := parseBalanceKey(it.Item().Key())
			var d decimal.Decimal
			if err := it.Item().Value(d.UnmarshalBinary); err != nil {
				return err
			}
			if err := fn(Balance{acct, asset, d}); err != nil {
				return err
			}
		}
		return nil
	})
}

// BalancesAcross calls fn with the balance of asset
// on every account prefix+part+suffix that has one, part being one path
// segment (no '/'): one item's stock in each department of a shop
// ("stock/<store>/", "/<item>"). It seeks from one part to the next and
// reads no other account's balance, however many the parts hold.
func (l *Ledger) BalancesAcross(prefix, suffix string, asset storeline.Asset, fn func(part string, amount decimal.Decimal)) error {
	err := l.view(func(txn *badger.Txn) error {
		p := append([]byte{tBalance}, prefix...)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
		defer it.Close()
		done := map[string]bool{}
		var seek []byte
		for it.Seek(p); it.Valid(); it.Seek(seek) {
			rest := it.Item().Key()[len(p):]
			end := bytes.IndexAny(rest, "/\x00")
			if end < 0 {
				end = len(rest)
			}
			part := string(rest[:end])
			// Past this part's keys: an account ending at the part (a 0
			// byte follows) sorts before accounts extending it with
			// characters below '/', which come before its own path.
			seek = append(append(seek[:0], p...), part...)
			if end < len(rest) && rest[end] == 0 {
				seek = append(seek, 1)
			} else {
				seek = append(seek, '/'+1)
			}
			if done[part] {
				continue
			}
			done[part] = true
			target := appendBalanceKey(nil, prefix+part+suffix, asset)
			it.Seek(target)
			if !it.Valid() || !bytes.Equal(it.Item().Key(), target) {
				continue
			}
			var d decimal.Decimal
			if err := it.Item().Value(d.UnmarshalBinary); err != nil {
				return err
			}
			fn(part, d)
		}
		return nil
	})
	return l.readErr("ledger.BalancesAcross", err)
}

// CheckConservation returns an error unless, for every asset, the balances
// of all accounts sum to zero.
func (l *Ledger) CheckConservation() error {
	sums := map[storeline.Asset]decimal.Decimal{}
	err := l.scanBalances("", func(b Balance) error {
		sums[b.Asset] = sums[b.Asset].Add(b.Amount)
		return nil
	})
	if err != nil {
		return l.readErr("ledger.CheckConservation", err)
	}
	for a, s := range sums {
		if !s.IsZero() {
			return storeline.Errorf(storeline.Internal, "ledger.CheckConservation", "balances of %s sum to %s, want 0", a, s)
		}
	}
	return nil
}

// EventsByDate calls fn for every own-origin event whose business date is
// in [from, to], by date then (epoch, seq). An error from fn stops the
// scan and is returned.
func (l *Ledger) EventsByDate(from, to storeline.Date, fn func(storeline.Event) error) error {
	var fnErr error
	err := l.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tDate}})
		defer it.Close()
		for it.Seek(append([]byte{tDate}, from...)); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) < 17 || storeline.Date(k[1:len(k)-16]) > to {
				break
			}
			idb, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			ev, err := loadEvent(txn, l.o.Origin, idb)
			if err != nil {
				return err
			}
			if fnErr = fn(ev); fnErr != nil {
				return fnErr
			}
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	return l.readErr("ledger.EventsByDate", err)
}

// ReturnsOf returns the return events (of any origin) that name original
// as the receipt they return from.
func (l *Ledger) ReturnsOf(original storeline.EventID) ([]storeline.Event, error) {
	var out []storeline.Event
	err := l.view(func(txn *badger.Txn) error {
		p := returnPrefix(original)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			rest := it.Item().Key()[len(p):]
			origin, idb, ok := bytes.Cut(rest, []byte{0})
			if !ok {
				return fmt.Errorf("ledger: malformed return index key %q", it.Item().Key())
			}
			ev, err := loadEvent(txn, storeline.StoreID(origin), idb)
			if err != nil {
				return err
			}
			out = append(out, ev)
		}
		return nil
	})
	return out, l.readErr("ledger.ReturnsOf", err)
}

// SetMeta durably stores a small value (a replication cursor) under key.
func (l *Ledger) SetMeta(ctx context.Context, key string, val []byte) error {
	const op = "ledger.SetMeta"
	if err := checkKeyPart("key", key); err != nil {
		return storeline.E(op, storeline.Invalid, err)
	}
	if len(key)+len(val) > MaxEventBytes {
		return storeline.Errorf(storeline.TooLarge, op, "meta %q of %d bytes", key, len(val))
	}
	r := &request{kind: reqMeta, metaKey: key, metaVal: append([]byte{}, val...), size: len(key) + len(val) + 32}
	return l.submit(ctx, op, r).err
}

// Meta returns the value stored under key by SetMeta.
func (l *Ledger) Meta(key string) ([]byte, bool, error) {
	var v []byte
	err := l.view(func(txn *badger.Txn) error {
		var err error
		v, err = getValue(txn, metaKey(key))
		return err
	})
	if err != nil {
		return nil, false, l.readErr("ledger.Meta", err)
	}
	return v, v != nil, nil
}

// readErr classifies an error of a read.
func (l *Ledger) readErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var se *storeline.Error
	if errors.As(err, &se) {
		return err
	}
	if errors.Is(err, badger.ErrDBClosed) {
		return storeline.E(op, storeline.Unavailable, err)
	}
	return storeline.E(op, storeline.Internal, err)
}
