package tillsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Endpoint names, as the API's route patterns.
const (
	epLogin    = "POST /v1/sessions"
	epCatalog  = "GET /v1/catalog/changes"
	epCard     = "GET /v1/cards/{code}"
	epReceipt  = "POST /v1/receipts"
	epPrice    = "POST /v1/baskets/price"
	epReturn   = "POST /v1/returns"
	epCash     = "POST /v1/cash"
	epOpen     = "POST /v1/shifts"
	epClose    = "POST /v1/shifts/{id}/close"
	epSellers  = "GET /v1/sellers"
	epReserve  = "POST /v1/reservations"
	epCollect  = "POST /v1/reservations/{id}/collect"
	epRelease  = "POST /v1/reservations/{id}/release"
	epTerminal = "POST /admin/v1/terminals"
)

// maxAnswerBytes bounds an answer body the simulator reads.
const maxAnswerBytes = 8 << 20

// errUnknown is an outcome the simulator could not learn: every attempt
// timed out, failed in transport or got a 5xx, so the node may or may not
// hold the fact.
var errUnknown = errors.New("outcome unknown after every attempt")

// errBadAnswer is a 2xx whose body does not decode: the node did what was
// asked (a fact is stored, under the ID the till chose), but the till
// cannot read the answer's details.
var errBadAnswer = errors.New("2xx answer that does not decode")

// refused is a 4xx answer: the node refused the request and changed
// nothing.
type refused struct {
	status int
	body   string
}

func (r *refused) Error() string { return fmt.Sprintf("refused %d: %s", r.status, r.body) }

// counters are the run's shared tallies that are not per shop.
type counters struct {
	mu       sync.Mutex
	retries  int
	created  int
	replayed int
	unknown  int
	failed   int
	// pointsRefused counts receipts refused for their points payment
	// (409 naming payments[i].points), each then paid otherwise.
	pointsRefused int
	// reservationsRefused counts reservations refused for holding more
	// than is available (422 naming lines[i].qty); reservationsEnded ends
	// of reservations another till or the node ended first (409). Both are
	// business answers, not errors.
	reservationsRefused, reservationsEnded int
	errors                                 map[string]int
	firstError                             string
}

func (c *counters) add(f func(c *counters)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
}

func (c *counters) errorTotal() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.errors {
		n += v
	}
	return n
}

// client sends requests with retries and records each attempt.
type client struct {
	http *http.Client
	cfg  *Config
	lat  *latencies
	cnt  *counters
}

// request is one logical call; a retry resends body unchanged.
type request struct {
	endpoint string
	method   string
	url      string
	body     []byte
	headers  map[string]string
}

// do sends req until it gets an answer that is not a 5xx or 429, or
// MaxAttempts have been made, or ctx ends, and decodes a 2xx into out. It
// returns the final status. A 4xx is a *refused; no answer at all is
// errUnknown; a 2xx whose body does not decode into out is errBadAnswer,
// with the 2xx status.
//
// An attempt cut short because ctx ended (the run stopping its own
// request: a catalogue poll when the selling ends, a fact when the
// wind-down's CloseTimeout runs out) is no error of the node's and is not
// counted in the Summary's Errors; an attempt that ran into
// RequestTimeout is counted as "timeout", any other failure without an
// answer as "transport".
func (c *client) do(ctx context.Context, rng *rand.Rand, req request, out any) (int, error) {
	backoff := c.cfg.RetryBackoff
	var last error
	for attempt := 1; attempt <= c.cfg.MaxAttempts; attempt++ {
		if attempt > 1 {
			c.cnt.add(func(c *counters) { c.retries++ })
		}
		status, body, wait, err := c.once(ctx, req)
		switch {
		case err == nil && status >= 200 && status < 300:
			if out != nil && len(body) > 0 {
				if err := json.Unmarshal(body, out); err != nil {
					c.countError("bad answer", fmt.Sprintf("%s %d: answer does not decode: %v", req.endpoint, status, err))
					return status, fmt.Errorf("tillsim: %s: %w: %w", req.endpoint, errBadAnswer, err)
				}
			}
			return status, nil
		case err == nil && status < 500 && status != http.StatusTooManyRequests:
			r := &refused{status: status, body: strings.TrimSpace(string(body))}
			if businessAnswer(req.endpoint, r) == "" {
				c.countError(strconv.Itoa(status), fmt.Sprintf("%s %d %s", req.endpoint, status, r.body))
			}
			return status, r
		case err != nil && ctx.Err() != nil:
			return 0, fmt.Errorf("tillsim: %s: %w (last: %v; %v)", req.endpoint, errUnknown, err, ctx.Err())
		case err != nil:
			if errors.Is(err, context.DeadlineExceeded) {
				c.countError("timeout", "")
			} else {
				c.countError("transport", "")
			}
			last = err
		default:
			c.countError(strconv.Itoa(status), "")
			last = fmt.Errorf("status %d: %s", status, body)
		}
		if attempt == c.cfg.MaxAttempts {
			break
		}
		// Full jitter, so tills that failed together do not retry together;
		// a Retry-After from the node wins when it is longer.
		pause := time.Duration(rng.Int64N(int64(backoff) + 1))
		pause = max(pause, wait)
		backoff = min(2*backoff, c.cfg.MaxRetryBackoff)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, fmt.Errorf("tillsim: %s: %w (last: %v; %v)", req.endpoint, errUnknown, last, ctx.Err())
		case <-t.C:
		}
	}
	return 0, fmt.Errorf("tillsim: %s: %w (last: %v)", req.endpoint, errUnknown, last)
}

// Refusals that are the shop's business answers to a till's request, not
// errors of the till's or the node's.
const (
	answerTooFewAvailable = "too few available" // a reservation holding more than is available
	answerEndedElsewhere  = "ended elsewhere"   // an end of a reservation another till or the node ended first
)

// businessAnswer names the business answer refusal r is to a request of
// endpoint, or "" when it is an error: a reservation is refused naming
// lines[i].qty saying what is available when its goods are not (sold, or
// held for others),
// and an end of a reservation naming id when it has ended already.
func businessAnswer(endpoint string, r *refused) string {
	var p struct {
		Field string `json:"field"`
	}
	if json.Unmarshal([]byte(r.body), &p) != nil {
		return ""
	}
	switch {
	case endpoint == epReserve && r.status == http.StatusUnprocessableEntity && strings.HasPrefix(p.Field, "lines[") && strings.HasSuffix(p.Field, "].qty") &&
		strings.Contains(r.body, "available"):
		return answerTooFewAvailable
	case (endpoint == epCollect || endpoint == epRelease) && r.status == http.StatusConflict && p.Field == "id":
		return answerEndedElsewhere
	}
	return ""
}

// answered is the business answer err is to a request of endpoint, or "".
func answered(endpoint string, err error) string {
	var r *refused
	if !errors.As(err, &r) {
		return ""
	}
	return businessAnswer(endpoint, r)
}

func (c *client) countError(key, detail string) {
	c.cnt.add(func(c *counters) {
		if c.errors == nil {
			c.errors = map[string]int{}
		}
		c.errors[key]++
		if c.firstError == "" && detail != "" {
			c.firstError = detail
		}
	})
}

// once makes one attempt and records its latency under the endpoint.
func (c *client) once(ctx context.Context, req request) (status int, body []byte, retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	start := time.Now()
	status, head, body, err := Call(ctx, c.http, req.method, req.url, req.headers, req.body)
	c.lat.record(req.endpoint, time.Since(start))
	if err != nil {
		return 0, nil, 0, err
	}
	if s, e := strconv.Atoi(head.Get("Retry-After")); e == nil && s > 0 {
		retryAfter = min(time.Duration(s)*time.Second, c.cfg.MaxRetryBackoff)
	}
	return status, body, retryAfter, nil
}

// Call sends one request to a node's tills' API, a JSON body (nil: none)
// with the headers given (the terminal's bearer token, a seller's
// X-Session), and returns the status, the answer's headers and its body
// (at most 8 MiB read). It makes one attempt, without retries, so a test
// that drives the API (internal/simtest) sees each answer as the node
// gave it: 201 for a fact stored, 200 for the same bytes sent again.
func Call(ctx context.Context, hc *http.Client, method, url string, headers map[string]string, body []byte) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		hr.Header.Set(k, v)
	}
	resp, err := hc.Do(hr)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	ans, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, ans, nil
}

// post marshals v as a request body.
func post(endpoint, url string, v any, headers map[string]string) (request, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return request{}, fmt.Errorf("tillsim: %s: encode: %w", endpoint, err)
	}
	return request{endpoint: endpoint, method: http.MethodPost, url: url, body: b, headers: headers}, nil
}
