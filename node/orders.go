package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/posbridge"
	"github.com/storeline/storeline/replication"
)

// The node's side of the shop's expected deliveries
// (posbridge.OrderSource): head office's purchase orders for the shop,
// asked of central's replication listener (replication.PathShopOrders)
// with the shop's credentials whenever a till lists them. Nothing is
// kept: offline the tills are told head office cannot be reached.
//
// The call is made while a till waits, as a loyalty call is, so it is
// bounded by the same Replication.LoyaltyTimeout and classifies central's
// answers the same way (pointsBroker.post): a refusal of the request
// itself keeps its kind, anything else means that node cannot serve the
// shop and the next is tried.

// maxOrdersAnswer bounds a page from central: up to
// replication.MaxShopOrders orders, each with its lines.
const maxOrdersAnswer = 32 << 20

// ordersClient implements posbridge.OrderSource over central's
// replication listener.
type ordersClient struct {
	urls    []string
	token   string
	hc      *http.Client
	timeout time.Duration
	next    atomic.Uint32 // the central URL to try first
}

var _ posbridge.OrderSource = (*ordersClient)(nil)

func (n *Node) ordersClient() (*ordersClient, error) {
	r := n.cfg.Replication
	tlsConf, err := r.loadClientTLS()
	if err != nil {
		return nil, err
	}
	timeout := r.LoyaltyTimeout
	if timeout == 0 {
		timeout = defaultLoyaltyTimeout
	}
	return &ordersClient{
		urls: r.Central, token: r.Token, timeout: timeout,
		// No redirects: following one would send the shop's token where
		// it points (in clear to http://).
		hc: &http.Client{Transport: replication.NewTransport(tlsConf, timeout),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}, nil
}

// ShopOrders asks each central URL in turn, within the timeout, again
// while a node answers it is between leaders; failing to reach any is
// Unavailable.
func (c *ordersClient) ShopOrders(ctx context.Context, after string, limit int) (posbridge.ShopOrdersPage, error) {
	const op = "node.orders"
	body, err := replication.Encode(replication.ShopOrdersRequest{After: after, Limit: limit})
	if err != nil {
		return posbridge.ShopOrdersPage{}, storeline.E(op, storeline.Internal, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var last error
	start := int(c.next.Load())
	for round := 0; ; round++ {
		electing := false
		for i := range c.urls {
			k := (start + i) % len(c.urls)
			var page replication.ShopOrdersPage
			err := c.post(ctx, c.urls[k]+replication.PathShopOrders, body, &page)
			if err == nil {
				c.next.Store(uint32(k))
				return pageOf(page), nil
			}
			if storeline.KindOf(err) != storeline.Unavailable {
				return posbridge.ShopOrdersPage{}, err
			}
			var busy *centralBusy
			electing = electing || errors.As(err, &busy)
			last = err
			if ctx.Err() != nil {
				break
			}
		}
		if !electing || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(min(round+1, 8)) * 25 * time.Millisecond):
		}
	}
	return posbridge.ShopOrdersPage{}, storeline.E(op, storeline.Unavailable, fmt.Errorf("central unreachable: %w", last))
}

func (c *ordersClient) post(ctx context.Context, url string, body []byte, out any) error {
	const op = "node.orders"
	rq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return storeline.E(op, storeline.Internal, err)
	}
	rq.Header.Set("Content-Type", "application/msgpack")
	if c.token != "" {
		rq.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(rq)
	if err != nil {
		return storeline.E(op, storeline.Unavailable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxOrdersAnswer+1))
	if err != nil {
		return storeline.E(op, storeline.Unavailable, err)
	}
	if len(data) > maxOrdersAnswer {
		return storeline.E(op, storeline.Unavailable, fmt.Errorf("answer from %s over %d bytes", url, maxOrdersAnswer))
	}
	if resp.StatusCode == http.StatusOK {
		if err := replication.Decode(data, out); err != nil {
			// Not central's message (a proxy's page): try another.
			return storeline.E(op, storeline.Unavailable, fmt.Errorf("answer from %s: %w", url, err))
		}
		return nil
	}
	var p struct {
		Kind, Detail, Field string
	}
	isProblem := strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") && json.Unmarshal(data, &p) == nil
	kind := storeline.ParseKind(p.Kind)
	if !isProblem || !replication.Refusal(resp.StatusCode, isProblem, kind, p.Field) {
		// This node cannot serve the shop (in trouble, a central of the
		// version before orders, its token list lacking the shop, a
		// proxy): try another.
		kind = storeline.Unavailable
	}
	var cause error = fmt.Errorf("central %s: %d %s", url, resp.StatusCode, p.Detail)
	if resp.StatusCode == http.StatusServiceUnavailable && p.Kind == storeline.Unavailable.String() {
		cause = &centralBusy{cause}
	}
	return &storeline.Error{Op: op, Kind: kind, Field: p.Field, Err: cause}
}

// pageOf is central's page as posbridge declares it.
func pageOf(p replication.ShopOrdersPage) posbridge.ShopOrdersPage {
	out := posbridge.ShopOrdersPage{Orders: make([]posbridge.ShopOrder, 0, len(p.Orders)), Next: p.Next}
	for _, o := range p.Orders {
		po := posbridge.ShopOrder{ID: o.ID, Supplier: o.Supplier, SupplierName: o.SupplierName, ExpectedOn: o.ExpectedOn,
			Note: o.Note, Status: o.Status, Lines: make([]posbridge.ShopOrderLine, len(o.Lines))}
		for i, l := range o.Lines {
			po.Lines[i] = posbridge.ShopOrderLine(l)
		}
		out.Orders = append(out.Orders, po)
	}
	return out
}
