package simtest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// arrivals is a server that records the order requests reach it in.
type arrivals struct {
	mu    sync.Mutex
	order []string
}

func (a *arrivals) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.order = append(a.order, string(b))
	a.mu.Unlock()
	_, _ = w.Write([]byte("answer to " + string(b)))
}

func (a *arrivals) got() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.order)
}

func send(t *testing.T, url, body string) (string, error) {
	t.Helper()
	resp, err := http.Post(url+"/v1/replication/push", "text/plain", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestReordererHoldsRequestBehindLaterOnes: an armed reorderer delivers
// the held request to central only after the drawn number of later
// requests were answered, whether the shop waits for its answer (and then
// gets it) or loses it at once; unarmed, it keeps the order.
func TestReordererHoldsRequestBehindLaterOnes(t *testing.T) {
	for _, lose := range []bool{false, true} {
		name := "shop-waits"
		if lose {
			name = "answer-lost"
		}
		t.Run(name, func(t *testing.T) {
			srv := &arrivals{}
			ts := httptest.NewServer(srv)
			defer ts.Close()
			r := newReorderer()
			defer r.close()
			l, err := r.link(ts.URL)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := send(t, l.URL(), "first"); err != nil {
				t.Fatal(err)
			}
			r.arm(holdPlan{after: 2, lose: lose, path: "/v1/replication/"})
			type answer struct {
				body string
				err  error
			}
			held := make(chan answer, 1)
			go func() {
				b, err := send(t, l.URL(), "held")
				held <- answer{b, err}
			}()
			if lose {
				if a := <-held; a.err == nil {
					t.Fatalf("the held request's answer was not lost: %q", a.body)
				}
			} else {
				// Held: it has not reached the server while the shop waits.
				if err := waitUntil(t.Context(), 5*time.Second, func() bool {
					r.mu.Lock()
					defer r.mu.Unlock()
					return len(r.held) == 1
				}); err != nil {
					t.Fatal("the request was never held")
				}
			}
			for _, b := range []string{"later-1", "later-2"} {
				if a, err := send(t, l.URL(), b); err != nil || a != "answer to "+b {
					t.Fatalf("%s: %q %v", b, a, err)
				}
			}
			if !lose {
				if a := <-held; a.err != nil || a.body != "answer to held" {
					t.Fatalf("the waiting shop got %q %v, want the held request's own answer", a.body, a.err)
				}
			}
			if err := waitUntil(t.Context(), 5*time.Second, func() bool { return len(srv.got()) == 4 }); err != nil {
				t.Fatalf("arrivals %v", srv.got())
			}
			if want := []string{"first", "later-1", "later-2", "held"}; !slices.Equal(srv.got(), want) {
				t.Fatalf("central saw %v, want %v", srv.got(), want)
			}
			// Counted once central answered it.
			faults := map[string]int{}
			if err := waitUntil(t.Context(), 5*time.Second, func() bool {
				clear(faults)
				r.stats(faults)
				return len(faults) > 0
			}); err != nil || faults[FaultReorder] != 1 || len(faults) != 1 {
				t.Fatalf("counted %v, want one reordered", faults)
			}
		})
	}
}
