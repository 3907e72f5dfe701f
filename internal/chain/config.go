package chain

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/storeline/storeline/internal/sample"
)

// Config is one chain run. Build it with DefaultConfig (the demo's full
// size) or SmallConfig (tests), then change what you need.
type Config struct {
	// Dir holds every node's data (Dir/central-N, Dir/shop-N). Required.
	Dir string
	// Centrals is the central cluster's size (1, 3 or 5).
	Centrals int
	// Size is the generated chain: shops, items, customers.
	Size sample.Size
	// TillsPerShop is how many simulated tills sell at each shop.
	TillsPerShop int
	// Duration is how long the tills sell (0: until the context ends).
	Duration time.Duration
	// Rate bounds the receipts started per second over all tills (0: as
	// fast as they go).
	Rate float64
	// Seed drives the tills' random choices.
	Seed int64
	// Moments runs the scripted moments while the tills sell.
	Moments bool
	// MomentTimeout bounds the wait for each moment's outcome (a new
	// leader, a catch-up, a price reaching the shops).
	MomentTimeout time.Duration
	// DrainTimeout bounds the wait, after the tills stop, for every shop's
	// journal to reach central before the closing check.
	DrainTimeout time.Duration

	// Raft and gossip timers of the central nodes. The Raft timers are
	// central's defaults (a failover takes about two seconds): shorter
	// ones make a loaded machine (a laptop, -race, parallel tests) lose
	// its leader now and then for no other reason than a late heartbeat.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	ProbeInterval    time.Duration
	// ReplicationPoll is the shops' long-poll wait and push interval.
	ReplicationPoll time.Duration
	// CatalogRefresh is how often the tills poll their shop's catalogue.
	CatalogRefresh time.Duration

	// StatusEvery is the period of Status reports to OnStatus.
	StatusEvery time.Duration
	// OnStatus receives the live status (nil: none).
	OnStatus func(Status)
	// Narrate receives one line per step and moment (nil: none).
	Narrate func(string)
	// Logger receives the nodes' logs (nil: discarded).
	Logger *slog.Logger
}

// DefaultConfig is the demo's chain: 3 central nodes, 2 shops, 5,000
// items, 10,000 customers with cards, 4 tills per shop for a minute.
func DefaultConfig(dir string) Config {
	return Config{
		Dir:              dir,
		Centrals:         3,
		Size:             sample.FullSize,
		TillsPerShop:     4,
		Duration:         time.Minute,
		Seed:             1,
		Moments:          true,
		MomentTimeout:    20 * time.Second,
		DrainTimeout:     30 * time.Second,
		HeartbeatTimeout: time.Second,
		ElectionTimeout:  time.Second,
		ProbeInterval:    200 * time.Millisecond,
		ReplicationPoll:  200 * time.Millisecond,
		CatalogRefresh:   500 * time.Millisecond,
		StatusEvery:      time.Second,
	}
}

// SmallConfig is a chain small and short enough for a test under -race:
// 3 central nodes, 2 shops, 300 items, 200 customers, 2 tills per shop
// for 8 seconds at a bounded rate.
func SmallConfig(dir string) Config {
	c := DefaultConfig(dir)
	c.Size = sample.Size{Stores: 2, Items: 300, Customers: 200}
	c.TillsPerShop = 2
	c.Duration = 8 * time.Second
	c.Rate = 40
	c.MomentTimeout = 10 * time.Second
	c.DrainTimeout = 15 * time.Second
	return c
}

// Validate names every bad field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("chain: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Dir == "" {
		bad("Dir", "required")
	}
	if c.Centrals != 1 && c.Centrals != 3 && c.Centrals != 5 {
		bad("Centrals", "%d: want 1, 3 or 5", c.Centrals)
	}
	if c.Size.Stores < 1 || c.Size.Stores > 100 {
		bad("Size.Stores", "%d out of [1, 100]", c.Size.Stores)
	}
	if c.Size.Items < 10 || c.Size.Items > 1_000_000 {
		bad("Size.Items", "%d out of [10, 1000000]", c.Size.Items)
	}
	if c.Size.Customers < 1 || c.Size.Customers > 10_000_000 {
		bad("Size.Customers", "%d out of [1, 10000000]", c.Size.Customers)
	}
	if c.TillsPerShop < 1 || c.TillsPerShop > 100 {
		bad("TillsPerShop", "%d out of [1, 100]", c.TillsPerShop)
	}
	if c.Duration < 0 {
		bad("Duration", "must not be negative")
	}
	if c.Rate < 0 {
		bad("Rate", "must not be negative")
	}
	for _, d := range []struct {
		f string
		v time.Duration
	}{{"MomentTimeout", c.MomentTimeout}, {"DrainTimeout", c.DrainTimeout}, {"HeartbeatTimeout", c.HeartbeatTimeout},
		{"ElectionTimeout", c.ElectionTimeout}, {"ProbeInterval", c.ProbeInterval}, {"ReplicationPoll", c.ReplicationPoll},
		{"CatalogRefresh", c.CatalogRefresh}, {"StatusEvery", c.StatusEvery}} {
		if d.v <= 0 || d.v > time.Hour {
			bad(d.f, "%s out of (0, 1h]", d.v)
		}
	}
	if c.ElectionTimeout < c.HeartbeatTimeout {
		bad("ElectionTimeout", "%s below HeartbeatTimeout", c.ElectionTimeout)
	}
	return errors.Join(errs...)
}
