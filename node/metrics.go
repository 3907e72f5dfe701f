package node

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// trackedRegisterer registers on the caller's registry and remembers what
// it registered, so a stopped node takes its metrics off again (the ledger
// does the same for its own): a node started again in the same process on
// the same registry registers them anew instead of failing as a duplicate.
type trackedRegisterer struct {
	reg prometheus.Registerer
	mu  sync.Mutex
	cs  []prometheus.Collector
}

var _ prometheus.Registerer = (*trackedRegisterer)(nil)

func (t *trackedRegisterer) Register(c prometheus.Collector) error {
	if err := t.reg.Register(c); err != nil {
		return err
	}
	t.mu.Lock()
	t.cs = append(t.cs, c)
	t.mu.Unlock()
	return nil
}

func (t *trackedRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := t.Register(c); err != nil {
			panic(err)
		}
	}
}

func (t *trackedRegisterer) Unregister(c prometheus.Collector) bool {
	t.mu.Lock()
	for i, x := range t.cs {
		if x == c {
			t.cs = append(t.cs[:i], t.cs[i+1:]...)
			break
		}
	}
	t.mu.Unlock()
	return t.reg.Unregister(c)
}

// unregisterAll takes every collector registered through t off the
// registry.
func (t *trackedRegisterer) unregisterAll() {
	t.mu.Lock()
	cs := t.cs
	t.cs = nil
	t.mu.Unlock()
	for _, c := range cs {
		t.reg.Unregister(c)
	}
}
