package chain

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// playMoments plays the scripted moments at fixed shares of the selling
// time (or fixed offsets when it is unbounded), each waiting for its
// outcome at most MomentTimeout. It stops early when ctx ends.
func (c *Chain) playMoments(ctx context.Context) []Moment {
	at := func(share float64, fallback time.Duration) time.Duration {
		if c.cfg.Duration > 0 {
			return time.Duration(float64(c.cfg.Duration) * share)
		}
		return fallback
	}
	steps := []struct {
		when time.Duration
		run  func(context.Context) Moment
	}{
		{at(0.15, 10*time.Second), c.killCentral},
		{at(0.40, 25*time.Second), nil}, // the cut, healed at the next step
		{at(0.65, 40*time.Second), nil},
		{at(0.75, 50*time.Second), c.changePrice},
	}
	var out []Moment
	var cut *Shop
	for i, st := range steps {
		wait := time.Until(c.start.Add(st.when))
		select {
		case <-ctx.Done():
			if cut != nil {
				// Never leave a shop cut off: the closing check needs
				// its journal at central.
				out = append(out, c.healShop(context.WithoutCancel(ctx), cut))
			}
			return out
		case <-time.After(wait):
		}
		switch {
		case i == 1:
			var m Moment
			cut, m = c.cutShop()
			if cut == nil {
				out = append(out, m)
			}
		case i == 2:
			if cut != nil {
				out = append(out, c.healShop(context.WithoutCancel(ctx), cut))
				cut = nil
			}
		default:
			m := st.run(ctx)
			if !m.OK && ctx.Err() != nil {
				// Selling ended (the duration, or Ctrl-C) before the
				// outcome: not a failure of the chain.
				m.Skipped = true
				m.Detail = "the run ended before the outcome: " + m.Detail
			}
			out = append(out, m)
		}
	}
	return out
}

// killCentral stops the leader, shows a new one taking over and the head
// office still accepting writes, then restarts the stopped node and waits
// until it is a voter again.
func (c *Chain) killCentral(ctx context.Context) Moment {
	m := Moment{Name: "a central node dies"}
	c.mu.Lock()
	victim := -1
	for i, s := range c.centrals {
		if s.node != nil && s.node.IsLeader() {
			victim = i
		}
	}
	if victim < 0 || len(c.centrals) < 3 {
		c.mu.Unlock()
		m.Detail = "no leader to stop, or a cluster of fewer than 3 nodes"
		return m
	}
	s := c.centrals[victim]
	n := s.node
	s.node = nil
	c.mu.Unlock()
	c.say("moment: stopping central leader %s", s.cfg.NodeID)
	t0 := time.Now()
	n.Close()
	if err := waitUntil(ctx, c.cfg.MomentTimeout, func() bool { return c.Leader() != "" }); err != nil {
		m.Detail = fmt.Sprintf("no new leader within %s after stopping %s", c.cfg.MomentTimeout, s.cfg.NodeID)
		return m
	}
	elected := time.Since(t0)
	leader := c.Leader()
	msg := map[string]any{
		"text": fmt.Sprintf("Head office kept going: %s stopped, %s took over in %s.", s.cfg.NodeID, leader, elected.Round(time.Millisecond)),
		"from": time.Now().UTC().Add(-time.Minute).Format(time.RFC3339),
	}
	if err := c.ho.do(ctx, "PUT", "/v1/messages/failover", "demo-failover", msg, nil); err != nil {
		m.Detail = fmt.Sprintf("%s took over in %s, but a write failed: %v", leader, elected.Round(time.Millisecond), err)
		return m
	}
	c.say("moment: %s is leader after %s; head office accepted a write with %d of %d nodes", leader, elected.Round(time.Millisecond), len(c.centrals)-1, len(c.centrals))
	if err := c.rejoinCentral(victim); err != nil {
		m.Detail = fmt.Sprintf("%s took over in %s; restarting %s failed: %v", leader, elected.Round(time.Millisecond), s.cfg.NodeID, err)
		return m
	}
	if err := waitUntil(ctx, c.cfg.MomentTimeout, func() bool { return c.voters() == len(c.centrals) }); err != nil {
		m.Detail = fmt.Sprintf("%s restarted but not back among the voters within %s", s.cfg.NodeID, c.cfg.MomentTimeout)
		return m
	}
	c.say("moment: %s restarted and caught up; %d voters again", s.cfg.NodeID, len(c.centrals))
	m.OK = true
	m.Detail = fmt.Sprintf("stopped leader %s; %s elected in %s; a head-office write succeeded meanwhile; %s restarted and rejoined",
		s.cfg.NodeID, leader, elected.Round(time.Millisecond), s.cfg.NodeID)
	return m
}

// rejoinCentral restarts stopped slot i's node, seeded with the gossip
// addresses of the live nodes.
func (c *Chain) rejoinCentral(i int) error {
	c.mu.Lock()
	s := c.centrals[i]
	s.cfg.Seeds = nil
	for _, o := range c.centrals {
		if o.node != nil {
			s.cfg.Seeds = append(s.cfg.Seeds, o.cfg.GossipAddr)
		}
	}
	c.mu.Unlock()
	return c.openCentral(i)
}

// restartStopped restarts every stopped central node (a run ended in the
// middle of killCentral) and waits until all are voters again.
func (c *Chain) restartStopped() error {
	restarted := 0
	for i := range c.centrals {
		c.mu.Lock()
		stopped := c.centrals[i].node == nil
		c.mu.Unlock()
		if !stopped {
			continue
		}
		if err := c.rejoinCentral(i); err != nil {
			return err
		}
		restarted++
	}
	if restarted == 0 {
		return nil
	}
	if err := waitUntil(context.Background(), c.cfg.MomentTimeout, func() bool { return c.voters() == len(c.centrals) }); err != nil {
		return fmt.Errorf("%d stopped nodes restarted, but not all voters within %s", restarted, c.cfg.MomentTimeout)
	}
	c.say("central: %d stopped nodes restarted; %d voters again", restarted, len(c.centrals))
	return nil
}

// cutShop cuts the last shop off from central; its tills keep selling.
func (c *Chain) cutShop() (*Shop, Moment) {
	s := c.shops[len(c.shops)-1]
	if !linked {
		return nil, Moment{Name: "a shop is cut off and catches up", Skipped: true, Detail: errNotLinked.Error()}
	}
	c.mu.Lock()
	s.cut = true
	c.mu.Unlock()
	for _, p := range s.proxies {
		p.Cut()
	}
	c.say("moment: %s cut off from central; its tills keep selling", s.ID)
	return s, Moment{}
}

// healShop reconnects a cut shop and waits until central has acknowledged
// its whole journal.
func (c *Chain) healShop(ctx context.Context, s *Shop) Moment {
	m := Moment{Name: "a shop is cut off and catches up"}
	backlog := c.backlog(s)
	for _, p := range s.proxies {
		p.Heal()
	}
	c.mu.Lock()
	s.cut = false
	c.mu.Unlock()
	c.say("moment: %s reconnected with %d events waiting", s.ID, backlog)
	t0 := time.Now()
	if s.Node.Replication() != nil {
		s.Node.Replication().Nudge()
	}
	// Caught up: central acknowledged everything the shop held when it
	// was healed (the tills keep adding more).
	target := s.Node.Ledger().Position()
	err := waitUntil(ctx, c.cfg.MomentTimeout, func() bool {
		a := s.Node.Replication().Status().Acked
		return a.Epoch > target.Epoch || a.Epoch == target.Epoch && a.Seq >= target.Seq
	})
	if err != nil {
		m.Detail = fmt.Sprintf("%s did not catch up within %s (%d events waiting)", s.ID, c.cfg.MomentTimeout, c.backlog(s))
		return m
	}
	took := time.Since(t0).Round(time.Millisecond)
	c.say("moment: %s caught up in %s", s.ID, took)
	m.OK = true
	m.Detail = fmt.Sprintf("%s sold on while cut off; %d events waited; central had them all %s after the link came back", s.ID, backlog, took)
	return m
}

// changePrice changes an item's base price at head office and waits until
// every shop's tills' API shows it.
func (c *Chain) changePrice(ctx context.Context) Moment {
	m := Moment{Name: "a price change reaches every shop"}
	// The first item is priced from the base list at every shop (the city
	// list prices every tenth item from the sixth).
	it := c.data.Items[0]
	var old decimal.Decimal
	for _, p := range c.data.Prices {
		if p.Item == it.ID && p.List == "base" {
			old = p.Price
		}
	}
	price := old.Add(decimal.RequireFromString("0.50"))
	from := time.Now().UTC().Add(-time.Second).Truncate(time.Second)
	body := map[string]any{"prices": []any{map[string]any{"list": "base", "item": it.ID, "from": from.Format(time.RFC3339), "price": price.StringFixed(2)}}}
	t0 := time.Now()
	if err := c.ho.do(ctx, "POST", "/v1/prices", "demo-price-change", body, nil); err != nil {
		m.Detail = fmt.Sprintf("head office refused the price change: %v", err)
		return m
	}
	c.say("moment: head office set %s (%s) from %s to %s", it.Name, it.SKU, old.StringFixed(2), price.StringFixed(2))
	if !linked {
		m.Skipped = true
		m.Detail = fmt.Sprintf("central accepted %s at %s; %s", it.SKU, price.StringFixed(2), errNotLinked)
		return m
	}
	var took []string
	for _, s := range c.shops {
		err := waitUntil(ctx, c.cfg.MomentTimeout, func() bool {
			var out struct {
				Price *string `json:"price"`
			}
			if err := c.call(ctx, "GET", s.Node.TillURL()+"/v1/items/"+it.SKU, s.CheckToken, nil, &out); err != nil || out.Price == nil {
				return false
			}
			p, err := decimal.NewFromString(*out.Price)
			return err == nil && p.Equal(price)
		})
		if err != nil {
			m.Detail = fmt.Sprintf("%s did not show %s at %s within %s", s.ID, it.SKU, price.StringFixed(2), c.cfg.MomentTimeout)
			return m
		}
		took = append(took, fmt.Sprintf("%s after %s", s.ID, time.Since(t0).Round(time.Millisecond)))
	}
	c.say("moment: the new price is at the tills: %s", strings.Join(took, ", "))
	m.OK = true
	m.Detail = fmt.Sprintf("%s %s → %s at head office; tills' API showed it at %s", it.SKU, old.StringFixed(2), price.StringFixed(2), strings.Join(took, ", "))
	return m
}
