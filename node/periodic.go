package node

import (
	"context"
	"time"
)

// periodic runs a job every interval while the node runs (the loyalty
// hand-back sweep, the journal's retention), and stops it before the
// ledger closes.
type periodic struct {
	stop, done chan struct{}
	// cancel ends a run in progress at Stop: a run may make thousands of
	// durable writes.
	cancel context.CancelFunc
}

// startPeriodic runs job every interval, each run bounded by timeout.
// Its errors are logged with what, unless the node is stopping.
func (n *Node) startPeriodic(what string, every, timeout time.Duration, job func(context.Context) error) *periodic {
	return n.startPeriodicFrom(what, every, every, timeout, job)
}

// startPeriodicFrom runs job first after first, then every interval.
func (n *Node) startPeriodicFrom(what string, first, every, timeout time.Duration, job func(context.Context) error) *periodic {
	base, cancelAll := context.WithCancel(context.Background())
	w := &periodic{stop: make(chan struct{}), done: make(chan struct{}), cancel: cancelAll}
	go func() {
		defer close(w.done)
		t := time.NewTimer(first)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
			t.Reset(every)
			ctx, cancel := context.WithTimeout(base, timeout)
			if err := job(ctx); err != nil && base.Err() == nil {
				n.log.Warn(what, "err", err)
			}
			cancel()
		}
	}()
	return w
}

// end stops the job and waits for a run in progress; nil is a no-op.
func (w *periodic) end() {
	if w == nil {
		return
	}
	w.cancel()
	close(w.stop)
	<-w.done
}
