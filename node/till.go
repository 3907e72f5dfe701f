package node

import (
	"net/http"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/posbridge"
)

// bridgeConfig returns the tills' API config for this node's config, with
// led as its ledger. posbridge declares the ledger interface it needs;
// *ledger.Ledger satisfies it as it is, and the two calls that return
// ledger-owned types are adapted here by plain struct conversions.
func (c Config) bridgeConfig(led *ledger.Ledger) posbridge.Config {
	b := posbridge.DefaultConfig()
	b.Store = c.StoreID
	b.Ledger = led
	b.Balances = func(prefix string) ([]posbridge.Balance, error) {
		bs, err := led.Balances(prefix)
		if err != nil {
			return nil, err
		}
		out := make([]posbridge.Balance, len(bs))
		for i, x := range bs {
			out[i] = posbridge.Balance(x)
		}
		return out, nil
	}
	b.MasterChanges = func(after uint64, limit int) ([]posbridge.MasterChange, error) {
		cs, err := led.MasterChanges(after, limit)
		if err != nil {
			return nil, err
		}
		out := make([]posbridge.MasterChange, len(cs))
		for i, x := range cs {
			out[i] = posbridge.MasterChange(x)
		}
		return out, nil
	}
	// The tills' API reads the same wall clock as the HLC: prices, sessions,
	// shift-close windows and loyalty dates follow a configured clock.
	b.Now = wallClock(c.Clock)
	b.NewID = storeline.NewEventID
	b.WeighedLayout = c.WeighedLayout
	b.MaxBodyBytes = c.MaxBodyBytes
	b.MaxJSONDepth = c.MaxJSONDepth
	b.PINAttempts = c.PINAttempts
	b.PINWindow = c.PINWindow
	b.SessionTTL = c.SessionTTL
	b.MaxSessions = c.MaxSessions
	b.MaxShiftDays = c.MaxShiftDays
	b.MaxStatsDays = c.MaxStatsDays
	b.MaxPageSize = c.MaxPageSize
	b.PointsFloat = c.PointsFloat
	b.MaxReservationDays = c.maxReservationDays()
	if c.Version != "" {
		b.Version = c.Version
	}
	return b
}

// tillHandler builds the tills' API over the open ledger, its metrics on
// the node's registry.
func (n *Node) tillHandler() (http.Handler, error) {
	b := n.cfg.bridgeConfig(n.ledger)
	b.Registerer = n.met
	b.Logger = n.log.With("api", "till")
	b.Replication = n.replicationState
	if n.repl != nil {
		pb, err := n.pointsBroker() // loyalty.go
		if err != nil {
			return nil, err
		}
		b.Points = pb
		n.points = pb
		oc, err := n.ordersClient() // orders.go
		if err != nil {
			return nil, err
		}
		b.Orders = oc
		n.orders = oc
		b.ReplicationSync = func() (bool, time.Time) {
			st := n.repl.Status()
			return st.Reachable, st.LastSync
		}
	}
	s, err := posbridge.New(b)
	if err != nil {
		return nil, err
	}
	n.startPointsSweep(s)      // loyalty.go
	n.startReservationLapse(s) // reservations.go
	n.startOrdersCopy()        // orders.go
	return s.Handler(), nil
}
