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
	"github.com/storeline/storeline/replication"
)

// centralCaller makes the calls a till waits on (loyalty, expected
// deliveries) to central's replication listener, with the shop's
// credentials, within timeout: each central node in turn from the last
// that answered, again while one answers that it is between leaders (a
// call is safe to repeat), until one answers or the time is up.
type centralCaller struct {
	op      string // names the caller in errors ("node.loyalty")
	urls    []string
	token   string
	hc      *http.Client
	timeout time.Duration
	limit   int64         // bytes of an answer, at most
	next    atomic.Uint32 // the central URL to try first
}

// newCentralCaller is a caller over the node's replication settings: its
// TLS, token and central URLs, bounded by Replication.LoyaltyTimeout.
func (n *Node) newCentralCaller(op string, limit int64) (*centralCaller, error) {
	r := n.cfg.Replication
	tlsConf, err := r.loadClientTLS()
	if err != nil {
		return nil, err
	}
	timeout := r.LoyaltyTimeout
	if timeout == 0 {
		timeout = defaultLoyaltyTimeout
	}
	// Trimmed as the replication client trims them: "https://c/" and a
	// path would make "//v1/...", which central's mux redirects.
	urls := make([]string, len(r.Central))
	for i, u := range r.Central {
		urls[i] = strings.TrimRight(u, "/")
	}
	return &centralCaller{
		op: op, urls: urls, token: r.Token, timeout: timeout, limit: limit,
		// No redirects: central never sends one, and following one would
		// send the shop's token where it points (in clear to http://).
		hc: &http.Client{Transport: replication.NewTransport(tlsConf, timeout),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}, nil
}

// call POSTs req to path and decodes the answer into out. Failing to
// reach any node in time is Unavailable.
func (c *centralCaller) call(ctx context.Context, path string, req, out any) error {
	body, err := replication.Encode(req)
	if err != nil {
		return storeline.E(c.op, storeline.Internal, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var last error
	start := int(c.next.Load())
	for round := 0; ; round++ {
		electing := false
		for i := range c.urls {
			k := (start + i) % len(c.urls)
			err := postToCentral(ctx, c.hc, c.op, c.token, c.urls[k]+path, body, c.limit, out)
			if err == nil {
				c.next.Store(uint32(k))
				return nil
			}
			if storeline.KindOf(err) != storeline.Unavailable {
				return err
			}
			var busy *centralBusy
			electing = electing || errors.As(err, &busy)
			last = err
			if ctx.Err() != nil {
				break
			}
		}
		// Central answered 503 (between leaders: nothing was applied, and
		// asking again is safe): try again while the till waits. A link
		// that refuses connections fails at once.
		if !electing || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(min(round+1, 8)) * 25 * time.Millisecond):
		}
	}
	return storeline.E(c.op, storeline.Unavailable, fmt.Errorf("central unreachable: %w", last))
}

// postToCentral makes one call a till waits on (loyalty, expected
// deliveries) to one central node's replication listener: body (msgpack)
// POSTed with the shop's token, the answer decoded into out. A refusal of
// the request itself keeps its kind (replication.Refusal); anything else
// (a link that fails, an answer over limit bytes or not central's, a node
// in trouble or lacking the shop, a proxy) is Unavailable, so the caller
// tries another node, and central's own 503 (no leader for a moment) is
// marked centralBusy.
func postToCentral(ctx context.Context, hc *http.Client, op, token, url string, body []byte, limit int64, out any) error {
	rq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return storeline.E(op, storeline.Internal, err)
	}
	rq.Header.Set("Content-Type", "application/msgpack")
	if token != "" {
		rq.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(rq)
	if err != nil {
		return storeline.E(op, storeline.Unavailable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return storeline.E(op, storeline.Unavailable, err)
	}
	if int64(len(data)) > limit {
		return storeline.E(op, storeline.Unavailable, fmt.Errorf("answer from %s over %d bytes", url, limit))
	}
	if resp.StatusCode == http.StatusOK {
		if err := replication.Decode(data, out); err != nil {
			// Not central's message (a proxy's page): try another, as
			// the replication client does.
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
		// This node cannot serve the shop (in trouble, its token list or
		// certificate setup lacking the shop, rate limited, a central of
		// an older version, a proxy): try another, as the replication
		// client does.
		kind = storeline.Unavailable
	}
	var cause error = fmt.Errorf("central %s: %d %s", url, resp.StatusCode, p.Detail)
	if resp.StatusCode == http.StatusServiceUnavailable && p.Kind == storeline.Unavailable.String() {
		cause = &centralBusy{cause}
	}
	return &storeline.Error{Op: op, Kind: kind, Field: p.Field, Err: cause}
}

// centralBusy marks central's own 503 (no leader for a moment), as
// against a link that fails.
type centralBusy struct{ error }

func (c *centralBusy) Unwrap() error { return c.error }
