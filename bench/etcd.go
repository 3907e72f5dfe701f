package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcdContender is a 3-member etcd cluster on loopback taking each shop
// batch as one transaction of one put per event (key ev/<shop>/<seq>,
// value the event's wire bytes, as central stores them). etcd acknowledges a write once a quorum has
// fsynced it to its Raft log. Each client owns its etcd client (its own
// gRPC connection), given all three members' endpoints.
type etcdContender struct {
	endpoints []string
	w         *workload
	batch     int
	admin     *clientv3.Client
	clients   []*etcdClient
	retries   atomic.Int64 // Txns sent again after a leader change
}

func newEtcdContender(endpoints []string, w *workload, batch int) *etcdContender {
	return &etcdContender{endpoints: endpoints, w: w, batch: batch}
}

func (c *etcdContender) Name() string { return nameEtcd }
func (c *etcdContender) Unit() string { return "event" }

func (c *etcdContender) dial() (*clientv3.Client, error) {
	cl, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("bench: etcd client: %w", err)
	}
	return cl, nil
}

func (c *etcdContender) Open(ctx context.Context, clients int) error {
	if c.batch > 128 {
		return fmt.Errorf("bench: etcd takes at most 128 operations per transaction (--max-txn-ops); batch is %d", c.batch)
	}
	admin, err := c.dial()
	if err != nil {
		return err
	}
	c.admin = admin
	if _, err := admin.Delete(ctx, "ev/", clientv3.WithPrefix()); err != nil {
		return fmt.Errorf("bench: etcd: %w", err)
	}
	for i := range clients {
		cl, err := c.dial()
		if err != nil {
			return err
		}
		pool, err := newEventPool(c.w, shopID(i), uint64(i))
		if err != nil {
			return err
		}
		c.clients = append(c.clients, &etcdClient{c: c, cl: cl, pool: pool})
	}
	return nil
}

func (c *etcdContender) Client(i int) Client { return c.clients[i] }

func (c *etcdContender) Describe(ctx context.Context) (string, error) {
	var parts []string
	for _, ep := range c.endpoints {
		st, err := c.admin.Status(ctx, ep)
		if err != nil {
			return "", fmt.Errorf("bench: etcd status %s: %w", ep, err)
		}
		parts = append(parts, fmt.Sprintf("%s v%s", ep, st.Version))
	}
	return fmt.Sprintf("%s; fsync on (no --unsafe-no-fsync), batch %d events of about %d bytes as one Txn of puts; %d Txns sent again after a leader change",
		strings.Join(parts, ", "), c.batch, c.clients[0].pool.eventBytes(), c.retries.Load()), nil
}

func (c *etcdContender) Check(ctx context.Context, acked int64) error {
	resp, err := c.admin.Get(ctx, "ev/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("bench: etcd count: %w", err)
	}
	if resp.Count != acked {
		return fmt.Errorf("etcd holds %d events, %d were acknowledged", resp.Count, acked)
	}
	var pushed int64
	for _, cl := range c.clients {
		pushed += int64(cl.pool.pushed())
	}
	if pushed != acked {
		return fmt.Errorf("etcd clients pushed %d events, %d were acknowledged", pushed, acked)
	}
	return nil
}

func (c *etcdContender) Close() error {
	for _, cl := range c.clients {
		cl.cl.Close()
	}
	if c.admin != nil {
		c.admin.Close()
	}
	return nil
}

type etcdClient struct {
	c    *etcdContender
	cl   *clientv3.Client
	pool *eventPool
}

func (cl *etcdClient) Do(ctx context.Context) (int, error) {
	first, evs, err := cl.pool.batch(cl.c.batch)
	if err != nil {
		return 0, err
	}
	ops := make([]clientv3.Op, len(evs))
	for i, b := range evs {
		ops[i] = clientv3.OpPut(fmt.Sprintf("ev/%s/%012d", cl.pool.shop, first+uint64(i)), string(b))
	}
	// An election on the shared machine fails a Txn with a leader error;
	// as a writer would, send it again: the same puts of the same keys
	// leave the same state.
	for {
		resp, err := cl.cl.Txn(ctx).Then(ops...).Commit()
		if isEtcdElection(err) && ctx.Err() == nil {
			cl.c.retries.Add(1)
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("etcd txn of %s seq %d: %w", cl.pool.shop, first, err)
		}
		if !resp.Succeeded {
			return 0, fmt.Errorf("etcd txn of %s seq %d did not succeed", cl.pool.shop, first)
		}
		return len(evs), nil
	}
}

// isEtcdElection reports an error a leader change causes.
func isEtcdElection(err error) bool {
	for _, e := range []error{rpctypes.ErrNoLeader, rpctypes.ErrLeaderChanged, rpctypes.ErrTimeout, rpctypes.ErrTimeoutDueToLeaderFail} {
		if errors.Is(rpctypes.Error(err), e) {
			return true
		}
	}
	return false
}
