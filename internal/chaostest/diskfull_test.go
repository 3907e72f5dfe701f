package chaostest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/testwait"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/posbridge"
)

// quotaFS is the operating system's file system with a byte quota on
// what the WAL allocates, as a nearly full disk has: a write that extends
// a file beyond the quota fails with ENOSPC, while writes inside a file's
// allocated size (the WAL's preallocated segments) succeed, as they do on
// a real disk. Removing a file gives its bytes back.
type quotaFS struct {
	ledger.FS
	mu    sync.Mutex
	used  int64
	quota int64 // < 0: no quota
	files map[string]*allocated
}

// allocated is the bytes one file holds; files share it across renames.
type allocated struct{ size int64 }

func newQuotaFS() *quotaFS {
	return &quotaFS{FS: ledger.OSFS(), quota: -1, files: map[string]*allocated{}}
}

// setQuota lets the WAL allocate free more bytes than it holds now; < 0
// lifts the quota.
func (q *quotaFS) setQuota(free int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if free < 0 {
		q.quota = -1
	} else {
		q.quota = q.used + free
	}
}

func (q *quotaFS) OpenFile(name string, flag int, perm fs.FileMode) (ledger.File, error) {
	f, err := q.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	a, ok := q.files[name]
	if !ok {
		a = &allocated{}
		if st, err := os.Stat(name); err == nil {
			a.size = st.Size()
			q.used += a.size
		}
		q.files[name] = a
	}
	if flag&os.O_TRUNC != 0 {
		q.used -= a.size
		a.size = 0
	}
	return &quotaFile{File: f, q: q, a: a}, nil
}

func (q *quotaFS) Rename(o, n string) error {
	if err := q.FS.Rename(o, n); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if old, ok := q.files[n]; ok {
		q.used -= old.size
	}
	q.files[n] = q.files[o]
	delete(q.files, o)
	return nil
}

func (q *quotaFS) Remove(name string) error {
	if err := q.FS.Remove(name); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if a, ok := q.files[name]; ok {
		q.used -= a.size
		delete(q.files, name)
	}
	return nil
}

type quotaFile struct {
	ledger.File
	q *quotaFS
	a *allocated
}

func (f *quotaFile) WriteAt(p []byte, off int64) (int, error) {
	q := f.q
	q.mu.Lock()
	grow := max(0, off+int64(len(p))-f.a.size)
	if grow > 0 && q.quota >= 0 && q.used+grow > q.quota {
		q.mu.Unlock()
		return 0, &fs.PathError{Op: "write", Path: "wal", Err: syscall.ENOSPC}
	}
	q.used += grow
	f.a.size += grow
	q.mu.Unlock()
	return f.File.WriteAt(p, off)
}

// TestDiskFullAnswers507 fills the disk under a shop's ledger while tills
// post receipts through the tills' HTTP API: a receipt that cannot be
// made durable is answered 507 Insufficient Storage with a problem+json
// body, nothing of it is written, every receipt answered 2xx is kept
// exactly once, and once space returns the tills' retries of the refused
// receipts are accepted without a restart and counted once. A reopen of
// the ledger finds exactly the acknowledged receipts.
func TestDiskFullAnswers507(t *testing.T) {
	const store = storeline.StoreID("s1")
	dir := t.TempDir()
	qfs := newQuotaFS()
	o := ledger.DefaultOptions(dir, store)
	o.MaxBatchBytes = 64 << 10
	o.MemTableBytes = 8 << 20
	o.WALSegmentBytes = ledger.MaxEventBytes + 128<<10
	o.Seams = &ledger.Seams{FS: qfs}
	// Room for the first segment only: its spare cannot be prepared, so
	// the disk is full once the first segment is.
	qfs.setQuota(o.WALSegmentBytes)
	led, err := ledger.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			led.Close()
		}
	}()
	recs := append(masterData(), &storeline.Terminal{ID: termID, Store: store, TokenHash: storeline.TokenHash(termToken(store))})
	if _, err := led.PutMaster(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	cfg := posbridge.DefaultConfig()
	cfg.Store = store
	cfg.Ledger = led
	cfg.Balances = func(prefix string) ([]posbridge.Balance, error) {
		bs, err := led.Balances(prefix)
		out := make([]posbridge.Balance, len(bs))
		for i, b := range bs {
			out[i] = posbridge.Balance(b)
		}
		return out, err
	}
	cfg.MasterChanges = func(after uint64, limit int) ([]posbridge.MasterChange, error) {
		cs, err := led.MasterChanges(after, limit)
		out := make([]posbridge.MasterChange, len(cs))
		for i, c := range cs {
			out[i] = posbridge.MasterChange(c)
		}
		return out, err
	}
	srv, err := posbridge.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	c := &chaos{t: t, client: &http.Client{Timeout: 30 * time.Second}}
	url := hs.URL + "/v1/receipts"
	tok := termToken(store)

	// Eight tills post until each has been refused once: the first
	// segment fills, the roll finds no space.
	var (
		mu         sync.Mutex
		acked      = map[storeline.EventID]ack{}
		refused    = map[storeline.EventID][]byte{}
		problems   atomic.Int64
		sampleOnce sync.Once
		sample     answer507
	)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 507))
			for n := 0; n < 20000; n++ {
				// Big receipts fill the disk in fewer requests.
				body := newReceiptOf(rng, 40)
				status, hdr, raw, err := postRaw(c.client, url, tok, body)
				if err != nil {
					t.Errorf("post: %v", err)
					return
				}
				switch {
				case status/100 == 2:
					var head eventHead
					if err := json.Unmarshal(raw, &head); err != nil {
						t.Errorf("answer %d: %v", status, err)
						return
					}
					mu.Lock()
					acked[head.ID] = ack{head.Epoch, head.Seq}
					mu.Unlock()
				case status == http.StatusInsufficientStorage:
					checkProblem(t, hdr, raw)
					sampleOnce.Do(func() { sample = answer507{body, hdr, raw} })
					problems.Add(1)
					var r receiptJSON
					_ = json.Unmarshal(body, &r)
					mu.Lock()
					refused[r.ID] = body
					mu.Unlock()
					return
				default:
					t.Errorf("receipt answered %d %s, want 2xx or 507", status, raw)
					return
				}
			}
			t.Errorf("the disk never filled")
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("disk full after %d receipts acknowledged; %d refused with 507", len(acked), len(refused))
	sample.checkSpec(t, url)

	// Nothing of a refused receipt was written; every acknowledged one is
	// held once; while the disk stays full the same receipt is refused
	// again (the ledger is not poisoned: it refuses, it does not fail).
	checkJournal := func(when string) {
		t.Helper()
		var evs []storeline.Event
		from := ledger.Position{}
		for {
			page, err := led.Journal(store, from, ledger.MaxJournalLimit)
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, page...)
			if len(page) < ledger.MaxJournalLimit {
				break
			}
			last := page[len(page)-1]
			from = ledger.Position{Epoch: last.Epoch, Seq: last.Seq + 1}
		}
		held := map[storeline.EventID]ack{}
		for i, ev := range evs {
			// Own sequence numbers stay dense across refusals: central
			// reads a hole as a gap and would wait for it forever.
			if i > 0 && ev.Epoch == evs[i-1].Epoch && ev.Seq != evs[i-1].Seq+1 {
				t.Errorf("%s: seq %d follows %d in epoch %d", when, ev.Seq, evs[i-1].Seq, ev.Epoch)
			}
			if _, dup := held[ev.ID]; dup {
				t.Errorf("%s: %s held twice", when, ev.ID)
			}
			held[ev.ID] = ack{ev.Epoch, ev.Seq}
		}
		mu.Lock()
		defer mu.Unlock()
		for id, a := range acked {
			if held[id] != a {
				t.Errorf("%s: acknowledged %s at %d/%d, held at %v", when, id, a.epoch, a.seq, held[id])
			}
		}
		for id := range refused {
			if _, ok := held[id]; ok {
				t.Errorf("%s: receipt %s refused with 507 but written", when, id)
			}
		}
		if len(held) != len(acked) {
			t.Errorf("%s: journal holds %d events, %d acknowledged", when, len(held), len(acked))
		}
		if err := led.CheckConservation(); err != nil {
			t.Errorf("%s: %v", when, err)
		}
	}
	checkJournal("disk full")
	// A retry while the disk is still full is refused again, or accepted
	// if it is small enough for what is left of the last segment (the
	// refused batch was bigger): either way nothing half-written.
	again := 0
	for id, body := range refused {
		status, hdr, raw, err := postRaw(c.client, url, tok, body)
		if err != nil {
			t.Fatal(err)
		}
		switch status {
		case http.StatusInsufficientStorage:
			again++
			checkProblem(t, hdr, raw)
			req, _ := http.NewRequest("GET", hs.URL+"/v1/receipts/"+id.String(), nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := c.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET refused receipt %s: %d, want 404", id, resp.StatusCode)
			}
		case http.StatusCreated:
			var head eventHead
			if err := json.Unmarshal(raw, &head); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			acked[id] = ack{head.Epoch, head.Seq}
			delete(refused, id)
			mu.Unlock()
		default:
			t.Fatalf("retry of %s while the disk is full: %d %s, want 507 or 201", id, status, raw)
		}
	}
	if again == 0 {
		t.Fatal("no retry was refused while the disk was full")
	}
	checkJournal("retries while full")

	// Space returns: each till retries its refused receipt until it is
	// accepted. The roll that failed is retried in the background, so
	// the first retry may still find no segment; a bounded number of
	// retries must get through, each created once.
	qfs.setQuota(-1)
	for id, body := range refused {
		accepted := testwait.Retry(10*time.Second, func() bool {
			status, hdr, raw, err := postRaw(c.client, url, tok, body)
			if err != nil {
				t.Fatal(err)
			}
			switch status {
			case http.StatusCreated:
				var head eventHead
				if err := json.Unmarshal(raw, &head); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				acked[id] = ack{head.Epoch, head.Seq}
				delete(refused, id)
				mu.Unlock()
				return true
			case http.StatusInsufficientStorage:
				checkProblem(t, hdr, raw)
				return false // the background segment preparation: retry, bounded
			default:
				t.Fatalf("retry of %s after space returned: %d %s, want 201 (or 507 while the segment is prepared)", id, status, raw)
			}
			return false
		})
		if !accepted {
			t.Fatalf("retry of %s never accepted after space returned", id)
		}
	}
	// New receipts go on, over a further segment roll (eight tills, a
	// segment's worth of big receipts).
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range 30 {
				status, _, raw, err := postRaw(c.client, url, tok, newReceiptOf(rng, 40))
				if err != nil || status != http.StatusCreated {
					t.Errorf("receipt after space returned: %d %s %v", status, raw, err)
					return
				}
				var head eventHead
				if err := json.Unmarshal(raw, &head); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[head.ID] = ack{head.Epoch, head.Seq}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	checkJournal("space returned")

	// A reopen finds exactly what was acknowledged.
	hs.Close()
	if err := led.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	o.Seams = nil
	if led, err = ledger.Open(o); err != nil {
		t.Fatal(err)
	}
	defer led.Close()
	checkJournal("reopened")
	if t.Failed() {
		return
	}
	t.Logf("%d receipts acknowledged, %d 507 answers (%d to retries while full), 0 lost, 0 duplicated", len(acked), problems.Load()+int64(again), again)
}

func postRaw(hc *http.Client, url, token string, body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequest("POST", url, strings.NewReader(string(body)))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw, err
}

// checkProblem checks a 507 answer is RFC 9457 problem+json naming the
// full disk.
func checkProblem(t *testing.T, hdr http.Header, raw []byte) {
	t.Helper()
	if ct := hdr.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("507 Content-Type %q, want application/problem+json", ct)
	}
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Errorf("507 body is not JSON: %v: %s", err, raw)
		return
	}
	if p.Status != http.StatusInsufficientStorage || !strings.HasSuffix(p.Type, "/insufficient_storage") || p.Title == "" {
		t.Errorf("507 body %s: want status 507, type .../insufficient_storage and a title", raw)
	}
	if !strings.Contains(p.Detail, "no space left") {
		t.Errorf("507 detail %q does not say the disk is full", p.Detail)
	}
}

// answer507 is one 507 answer and the request it answered.
type answer507 struct {
	body []byte
	hdr  http.Header
	raw  []byte
}

// checkSpec checks the answer against the tills' API spec (openapi.yaml:
// every operation's default answer is a Problem).
func (a answer507) checkSpec(t *testing.T, url string) {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(posbridge.OpenAPI())
	if err == nil {
		err = doc.Validate(loader.Context)
	}
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", url, bytes.NewReader(a.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.URL.Host, req.URL.Scheme, req.Host = "", "", ""
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatalf("POST /v1/receipts not in openapi.yaml: %v", err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	if err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: http.StatusInsufficientStorage, Header: a.hdr, Body: io.NopCloser(bytes.NewReader(a.raw)),
	}); err != nil {
		t.Errorf("the 507 answer breaks openapi.yaml: %v\n%s", err, a.raw)
	}
}
