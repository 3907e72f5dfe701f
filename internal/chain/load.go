package chain

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/node"
)

// loadBatch is the records per import request: central splits each
// request into bounded Raft entries (ImportChunk); a shop's ledger takes
// at most 4096 records per master write.
const loadBatch = 4000

// hoBatch is the records per head-office import request. Larger requests
// cost central more than proportionally (measured: 4,000 items in 2.3 s,
// 1,000 in 0.15 s), so the demo sends many small ones.
const hoBatch = 1000

// hoClient calls central's head-office API. Any node serves any request;
// a request that finds no node (a transport error, or a 5xx) goes to the
// next one, with the same Idempotency-Key, so a retry never applies twice.
type hoClient struct {
	hc    *http.Client
	key   string
	bases func() []string
}

// do sends body (JSON-encoded unless nil) and decodes a 2xx answer into
// out. It tries every live node, for up to a minute in all.
func (h *hoClient) do(ctx context.Context, method, path, idemKey string, body, out any) error {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return fmt.Errorf("chain: encode %s %s: %w", method, path, err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	var last error
	for time.Now().Before(deadline) {
		for _, base := range h.bases() {
			req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(raw))
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+h.key)
			req.Header.Set("Content-Type", "application/json")
			if idemKey != "" {
				req.Header.Set("Idempotency-Key", idemKey)
			}
			resp, err := h.hc.Do(req)
			if err != nil {
				last = err
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode < 300:
				if out != nil {
					if err := json.Unmarshal(b, out); err != nil {
						return fmt.Errorf("chain: %s %s: answer: %w", method, path, err)
					}
				}
				return nil
			case resp.StatusCode >= 500:
				last = fmt.Errorf("%s %s: %d %s", method, base+path, resp.StatusCode, b)
			default:
				return fmt.Errorf("chain: %s %s: %d %s", method, path, resp.StatusCode, b)
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("chain: %s %s: no central node answered: %w", method, path, last)
}

// hoCollections are the head-office API's bulk collections (POST
// /v1/import) by record kind.
var hoCollections = map[storeline.MasterKind]string{
	storeline.KindStore: "stores", storeline.KindGroup: "groups", storeline.KindItem: "items",
	storeline.KindPriceList: "price_lists", storeline.KindCustomerGroup: "customer_groups",
	storeline.KindCustomer: "customers", storeline.KindCard: "cards", storeline.KindMessage: "messages",
	storeline.KindPricePolicy: "price_policies", storeline.KindPromotion: "promotions",
	storeline.KindLoyaltyProgramme: "loyalty_programmes",
}

// centralOnlyKinds reports whether central's head-office API has no
// endpoint for a kind: those would be loaded into each shop directly.
// Every kind the demo loads has one now (pricing rules included), so
// linked shops get all their master data from central's feed.
func centralOnlyKinds(k storeline.MasterKind) bool {
	_, ok := hoCollections[k]
	return !ok && k != storeline.KindPrice
}

// concerns reports whether a shop's admin API takes rec: it refuses
// another shop's store record, terminal, sellers who do not work there and
// messages not for it (node, checkOwnRecords).
func concerns(shop storeline.StoreID, rec storeline.Record) bool {
	switch r := rec.(type) {
	case *storeline.Store:
		return r.ID == shop
	case *storeline.Terminal:
		return r.Store == shop
	case *storeline.Seller:
		return r.WorksAt(shop)
	case *storeline.Message:
		return len(r.Stores) == 0 || slices.Contains(r.Stores, shop)
	}
	return true
}

// loadParallel is how many import requests of one kind are in flight at
// once: central commits them through Raft in parallel, batching entries.
const loadParallel = 4

// loadCentral loads the chain's master data through the head-office API:
// bulk imports, prices through POST /v1/prices, sellers one by one with
// their PINs. It returns the records written.
//
// Each request holds one kind, and kinds go in the order of Records
// (referenced before referencing): central applies a request's
// collections in its own order (stores before the price lists they name),
// one bounded Raft entry at a time, so a request mixing kinds could name
// what only a later entry holds. Requests of the same kind go in
// parallel, each with its own Idempotency-Key, so a retry of one never
// applies it twice.
func (c *Chain) loadCentral(ctx context.Context) (int, error) {
	var kinds [][]storeline.Record
	for _, r := range c.data.Records() {
		if centralOnlyKinds(r.MasterKind()) {
			continue
		}
		if len(kinds) == 0 || kinds[len(kinds)-1][0].MasterKind() != r.MasterKind() {
			kinds = append(kinds, nil)
		}
		kinds[len(kinds)-1] = append(kinds[len(kinds)-1], r)
	}
	n := 0
	for _, recs := range kinds {
		kind := recs[0].MasterKind()
		path, coll := "/v1/import", hoCollections[kind]
		if kind == storeline.KindPrice {
			path, coll = "/v1/prices", "prices"
		}
		sem := make(chan struct{}, loadParallel)
		errs := make(chan error, (len(recs)+hoBatch-1)/hoBatch)
		var wg sync.WaitGroup
		for start := 0; start < len(recs); start += hoBatch {
			part := recs[start:min(start+hoBatch, len(recs))]
			body := map[string][]any{coll: make([]any, len(part))}
			for i, r := range part {
				body[coll][i] = wireRecord(r)
			}
			key := fmt.Sprintf("demo-load-%s-%d", kind, start)
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := c.ho.do(ctx, "POST", path, key, body, nil); err != nil {
					errs <- fmt.Errorf("chain: load %s: %w", coll, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return n, err
		}
		n += len(recs)
	}
	for _, s := range c.data.Sellers {
		body := map[string]any{"name": s.Name, "role": s.Role, "pin": s.PIN}
		if err := c.ho.do(ctx, "PUT", "/v1/sellers/"+string(s.ID), "demo-seller-"+string(s.ID), body, nil); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// provisionShops loads into each shop, through its admin API, what central
// cannot send it: everything while the shops are not linked to central,
// and any kind the head-office API has no endpoint for.
func (c *Chain) provisionShops(ctx context.Context) error {
	var recs []storeline.Record
	for _, r := range c.data.Records() {
		if !linked || centralOnlyKinds(r.MasterKind()) {
			recs = append(recs, r)
		}
	}
	errs := make(chan error, len(c.shops))
	var wg sync.WaitGroup
	for _, s := range c.shops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.provisionShop(ctx, s, recs); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// provisionShop loads recs, and the sellers unless central sends them,
// through the shop's admin API.
func (c *Chain) provisionShop(ctx context.Context, s *Shop, recs []storeline.Record) error {
	recs = slices.DeleteFunc(slices.Clone(recs), func(r storeline.Record) bool { return !concerns(s.ID, r) })
	for start := 0; start < len(recs); start += loadBatch {
		part := recs[start:min(start+loadBatch, len(recs))]
		imp := node.MasterImport{Records: make([]node.MasterEntry, len(part))}
		for i, r := range part {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			imp.Records[i] = node.MasterEntry{Kind: r.MasterKind(), Record: b}
		}
		if err := c.shopAdmin(ctx, s, "POST", "/admin/v1/master", imp, nil); err != nil {
			return err
		}
	}
	if linked {
		return nil
	}
	for _, sp := range c.data.Sellers {
		req := node.SellerRequest{ID: sp.ID, Name: sp.Name, Role: sp.Role, PIN: sp.PIN}
		if err := c.shopAdmin(ctx, s, "POST", "/admin/v1/sellers", req, nil); err != nil {
			return err
		}
	}
	return nil
}

// shopAdmin calls a shop's admin API.
func (c *Chain) shopAdmin(ctx context.Context, s *Shop, method, path string, body, out any) error {
	return c.call(ctx, method, s.Node.AdminURL()+path, s.AdminToken, body, out)
}

// call sends a JSON request with a bearer token and decodes a 2xx answer.
func (c *Chain) call(ctx context.Context, method, url, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("chain: %s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("chain: %s %s: %d %s", method, url, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("chain: %s %s: answer: %w", method, url, err)
		}
	}
	return nil
}

// wireRecord returns a record in the head-office API's JSON: the Go field
// names in snake_case (VATRate → vat_rate), the rule central/wire.go
// decodes by.
func wireRecord(r storeline.Record) any {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("chain: encode %s %s: %v", r.MasterKind(), r.MasterID(), err))
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		panic(err)
	}
	return snakeKeys(v)
}

func snakeKeys(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, c := range x {
			m[snake(k)] = snakeKeys(c)
		}
		return m
	case []any:
		for i := range x {
			x[i] = snakeKeys(x[i])
		}
		return x
	}
	return v
}

// snake turns a Go field name into its JSON name: VATRate → vat_rate,
// PINHash → pin_hash (the same rule as central's decoder).
func snake(name string) string {
	rs := []rune(name)
	var b strings.Builder
	for i, r := range rs {
		if unicode.IsUpper(r) && i > 0 {
			prev := rs[i-1]
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower) {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

var errNotLinked = errors.New("shops are not linked to central (central does not serve replication yet)")
