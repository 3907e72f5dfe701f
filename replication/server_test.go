package replication_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

// shopLedger opens a ledger of origin s1 holding n receipts.
func shopLedger(t testing.TB, n int) (*ledger.Ledger, []storeline.Event) {
	t.Helper()
	o := ledger.DefaultOptions(t.TempDir(), shop)
	o.Clock = crdt.NewClock(time.Now, time.Minute)
	o.WALSegmentBytes = 8 << 20
	o.MaxBatchBytes = 1 << 20
	o.MemTableBytes = 16 << 20
	l, err := ledger.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	sell(t, l, n)
	var evs []storeline.Event
	for len(evs) < n {
		page, err := l.Journal(shop, ledger.Position{Epoch: 1, Seq: uint64(len(evs)) + 1}, n-len(evs))
		if err != nil || len(page) == 0 {
			t.Fatalf("Journal after %d: %d events, %v", len(evs), len(page), err)
		}
		evs = append(evs, page...)
	}
	return l, evs
}

func wireEvents(t testing.TB, evs []storeline.Event) replication.WireEvents {
	t.Helper()
	out := make(replication.WireEvents, len(evs))
	for i, ev := range evs {
		w, err := replication.EventToWire(ev)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = w
	}
	return out
}

// post sends body to the push endpoint and returns the status, the
// problem's field (for errors) and the body.
func post(t testing.TB, client *http.Client, base, token string, body []byte) (int, string, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/replication/push", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/msgpack")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var p struct{ Field string }
	if resp.StatusCode != 200 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("error Content-Type %q", ct)
		}
		_ = json.Unmarshal(b, &p)
	}
	return resp.StatusCode, p.Field, b
}

func encode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := replication.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadBatchesChangeNothing: wrong origin, garbage, a batch skipping
// positions, an old protocol version: refused or answered with a gap, and
// central holds nothing of them.
func TestBadBatchesChangeNothing(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(10)...)
	srv := c.serve(t, map[string]storeline.StoreID{shopToken: shop, "s2-replication-token-0123456789": "s2"})
	_, evs := shopLedger(t, 20)
	good := func() *replication.PushRequest {
		return &replication.PushRequest{V: replication.ProtocolVersion, Store: string(shop), Epoch: 1, Events: wireEvents(t, evs[:5])}
	}
	cases := []struct {
		name, token string
		body        func() []byte
		status      int
		field       string
	}{
		{"no token", "", func() []byte { return encode(t, good()) }, 401, ""},
		{"unknown token", "not-a-token-0123456789", func() []byte { return encode(t, good()) }, 401, ""},
		{"another store's batch", "s2-replication-token-0123456789", func() []byte { return encode(t, good()) }, 403, "st"},
		{"another origin's event", shopToken, func() []byte {
			r := good()
			r.Events[3].Origin = "s2"
			return encode(t, r)
		}, 403, "ev[3].origin"},
		{"garbage", shopToken, func() []byte { return []byte("\xc1\xff garbage") }, 400, ""},
		{"trailing bytes", shopToken, func() []byte { return append(encode(t, good()), 0x01) }, 400, ""},
		{"huge count", shopToken, func() []byte {
			return []byte{0x84, 0xa1, 'v', 0x02, 0xa2, 's', 't', 0xa2, 's', '1', 0xa1, 'e', 0x01,
				0xa2, 'e', 'v', 0xdd, 0x7f, 0xff, 0xff, 0xff}
		}, 400, ""},
		{"protocol older than N-1", shopToken, func() []byte {
			r := good()
			r.V = replication.MinProtocolVersion - 1
			return encode(t, r)
		}, 400, "v"},
		{"protocol newer than N", shopToken, func() []byte {
			r := good()
			r.V = replication.ProtocolVersion + 1
			return encode(t, r)
		}, 400, "v"},
		{"hole inside the batch", shopToken, func() []byte {
			r := good()
			r.Events = append(r.Events[:2], r.Events[3:]...)
			return encode(t, r)
		}, 400, "ev[2].seq"},
		{"unbalanced postings", shopToken, func() []byte {
			r := good()
			r.Events[1].Postings = r.Events[1].Postings[1:]
			return encode(t, r)
		}, 400, "ev[1].postings"},
		{"undecodable body", shopToken, func() []byte {
			r := good()
			r.Events[0].Body = []byte{0xa1, 'x'} // a string, not a receipt
			return encode(t, r)
		}, 400, "ev[0].body"},
		{"epoch 0", shopToken, func() []byte {
			r := good()
			r.Epoch = 0
			return encode(t, r)
		}, 400, "e"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, field, body := post(t, srv.Client(), srv.URL, tc.token, tc.body())
			if code != tc.status || field != tc.field {
				t.Errorf("status %d field %q (%s), want %d %q", code, field, body, tc.status, tc.field)
			}
		})
	}
	if ids := c.journalIDs(t, shop); len(ids) != 0 || c.batches != 0 {
		t.Fatalf("central holds %d events after %d refused batches, want none reaching the backend", len(ids), c.batches)
	}

	// A batch that skips positions is answered with the position needed,
	// and applies nothing.
	r := good()
	r.Events = wireEvents(t, evs[3:8])
	code, _, body := post(t, srv.Client(), srv.URL, shopToken, encode(t, r))
	var resp replication.PushResponse
	if code != 200 {
		t.Fatalf("gap batch: status %d: %s", code, body)
	}
	if err := replication.Decode(body, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Gap == nil || *resp.Gap != (replication.Position{Epoch: 1, Seq: 1}) || resp.Applied != 0 {
		t.Errorf("gap answer = %+v, want gap at 1/1 and nothing applied", resp)
	}
	if ids := c.journalIDs(t, shop); len(ids) != 0 {
		t.Fatalf("central holds %d events after a gap", len(ids))
	}
	// The good batch, twice: applied once, then acknowledged as held.
	for i := range 2 {
		code, _, body = post(t, srv.Client(), srv.URL, shopToken, encode(t, good()))
		if code != 200 {
			t.Fatalf("good batch: status %d: %s", code, body)
		}
		resp = replication.PushResponse{}
		if err := replication.Decode(body, &resp); err != nil {
			t.Fatal(err)
		}
		if want := 5 * (1 - i); resp.Applied != want || resp.Acked != (replication.Position{Epoch: 1, Seq: 5}) {
			t.Errorf("push %d: applied %d acked %v, want %d and 1/5", i, resp.Applied, resp.Acked, want)
		}
	}
	if ids := c.journalIDs(t, shop); len(ids) != 5 {
		t.Fatalf("central holds %d events, want 5", len(ids))
	}
}

// certs makes a CA and a leaf certificate for each name (server: the
// first, with 127.0.0.1).
type testPKI struct {
	pool *x509.CertPool
	key  *ecdsa.PrivateKey
	ca   *x509.Certificate
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test chain CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{pool: pool, key: key, ca: ca}
}

func (p *testPKI) leaf(t testing.TB, cn string, server bool) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = append(tmpl.IPAddresses, []byte{127, 0, 0, 1})
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tmpl.URIs = []*url.URL{{Scheme: "storeline", Opaque: "store:" + cn}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestMutualTLS: the caller's store comes from its verified certificate;
// a certificate of another shop cannot push for s1, and a client without
// a certificate does not get through the handshake.
func TestMutualTLS(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(10)...)
	pki := newPKI(t)
	cfg := replication.DefaultServerConfig()
	cfg.Backend = c
	s, err := replication.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.leaf(t, "central-1", true)},
		ClientCAs: pki.pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
	srv.StartTLS()
	defer srv.Close()
	client := func(cn string) *http.Client {
		tc := &tls.Config{RootCAs: pki.pool, MinVersion: tls.VersionTLS13}
		if cn != "" {
			tc.Certificates = []tls.Certificate{pki.leaf(t, cn, false)}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	}
	_, evs := shopLedger(t, 3)
	body := encode(t, &replication.PushRequest{V: replication.ProtocolVersion, Store: string(shop), Epoch: 1, Events: wireEvents(t, evs)})
	if code, field, b := post(t, client("s2"), srv.URL, "", body); code != 403 || field != "st" {
		t.Errorf("s2's certificate pushing for s1: %d %q %s, want 403", code, field, b)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/v1/replication/push", bytes.NewReader(body))
	if _, err := client("").Do(req); err == nil {
		t.Errorf("a client without a certificate got through")
	}
	if code, _, b := post(t, client("s1"), srv.URL, "", body); code != 200 {
		t.Fatalf("s1's certificate: %d %s", code, b)
	}
	if ids := c.journalIDs(t, shop); len(ids) != 3 {
		t.Errorf("central holds %d events, want 3", len(ids))
	}

	// And the client end to end over mutual TLS.
	l, _ := shopLedger(t, 0)
	cc := replication.DefaultClientConfig()
	cc.Store, cc.Central = shop, []string{srv.URL}
	cc.TLS = &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.leaf(t, "s1", false)}, MinVersion: tls.VersionTLS13}
	cc.PushInterval, cc.PollWait, cc.BackoffMin, cc.BackoffMax = 10*time.Millisecond, 200*time.Millisecond, 5*time.Millisecond, 50*time.Millisecond
	cl, err := replication.NewClient(cc, node.LedgerLocal(l, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	cl.Start()
	defer cl.Stop()
	sell(t, l, 10)
	waitFor(t, "the client's pushes over mutual TLS", 10*time.Second, func() bool {
		return cl.Status().Acked == replication.Position{Epoch: 1, Seq: 10}
	})
	waitFor(t, "the client's pulls over mutual TLS", 10*time.Second, func() bool {
		var it storeline.Item
		return l.GetMaster(storeline.KindItem, "i9", &it) == nil
	})
}
