package node

import (
	"context"
	"fmt"
	"time"

	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// The journal's retention (DESIGN.md, "Scale and retention"): a shop keeps
// its journal Config.JournalRetention after central acknowledged it, then
// the ledger prunes it (ledger.PruneJournal), so the shop's disk does not
// grow with its history. A standalone node prunes nothing: nobody else
// holds its events. Balances, master data and the stubs that keep pruned
// IDs deduplicated stay.

// Journal retention defaults and bounds (Config.JournalRetention,
// Config.JournalPruneInterval).
const (
	DefaultJournalRetention = 90 * 24 * time.Hour
	// MinJournalRetention keeps at least a week at the shop: the week's
	// reports at the tills, a return naming its receipt, a shift reopened
	// after a long weekend.
	MinJournalRetention         = 7 * 24 * time.Hour
	MaxJournalRetention         = 10 * 366 * 24 * time.Hour
	DefaultJournalPruneInterval = time.Hour
)

// journalRetention is Config.JournalRetention with its default; negative
// keeps everything.
func (c Config) journalRetention() time.Duration {
	if c.JournalRetention == 0 {
		return DefaultJournalRetention
	}
	return c.JournalRetention
}

func (c Config) journalPruneInterval() time.Duration {
	if c.JournalPruneInterval == 0 {
		return DefaultJournalPruneInterval
	}
	return c.JournalPruneInterval
}

// PruneJournal runs one pass of the journal's retention: it removes, in
// bounded batches, the events older than the retention that central
// acknowledged (own ones) or that central sent (others), and returns how
// many it removed. A standalone node, or one keeping everything, removes
// none.
func (n *Node) PruneJournal(ctx context.Context) (int, error) {
	keep := n.cfg.journalRetention()
	if keep < 0 || n.repl == nil {
		return 0, nil
	}
	now := time.Now
	if n.cfg.Clock != nil {
		now = n.cfg.Clock
	}
	return n.PruneJournalBefore(ctx, now().Add(-keep))
}

// PruneJournalBefore is PruneJournal at the cutoff before instead of now
// less the retention, for a harness whose clock does not run for days
// (internal/simtest): the acknowledged position still bounds the own
// journal, and a standalone node, or one keeping everything, removes
// none.
func (n *Node) PruneJournalBefore(ctx context.Context, before time.Time) (int, error) {
	if n.cfg.journalRetention() < 0 || n.repl == nil {
		return 0, nil
	}
	ack, err := n.acked()
	if err != nil {
		return 0, err
	}
	p := ledger.PruneJournal{Before: before, Acked: ack}
	total := 0
	for {
		res, err := n.ledger.PruneJournal(ctx, p)
		total += res.Pruned
		if err != nil {
			return total, fmt.Errorf("node: journal retention: %w", err)
		}
		if !res.More {
			if total > 0 {
				n.log.Info("journal retention", "pruned", total, "before", p.Before, "oldest_kept", res.OldestKept, "stubs", res.Stubs)
			}
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

// acked is the own position central acknowledged, as the replication
// client stored it (zero if none yet: nothing own is pruned).
func (n *Node) acked() (ledger.Position, error) {
	v, ok, err := n.ledger.Meta(replication.AckKey)
	if err != nil || !ok {
		return ledger.Position{}, err
	}
	var p replication.Position
	if err := replication.Decode(v, &p); err != nil {
		return ledger.Position{}, fmt.Errorf("node: stored ack: %w", err)
	}
	return ledger.Position{Epoch: p.Epoch, Seq: p.Seq}, nil
}

func (n *Node) startJournalRetention() {
	if n.cfg.journalRetention() < 0 || n.repl == nil {
		return
	}
	every := n.cfg.journalPruneInterval()
	n.retention = n.startPeriodic("journal retention", every, max(every, time.Minute), func(ctx context.Context) error {
		_, err := n.PruneJournal(ctx)
		return err
	})
}

func (n *Node) stopJournalRetention() {
	n.retention.end()
	n.retention = nil
}
