package replication_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

// TestReview14TokenNotSentAfterARedirect: whatever answers at central's
// https address (a misconfigured proxy, a captive portal on the shop's
// uplink) cannot get the shop's bearer token sent in clear, or to another
// port, by answering a redirect: central never redirects, so the client
// follows none.
func TestReview14TokenNotSentAfterARedirect(t *testing.T) {
	var mu sync.Mutex
	var leaked []string
	sniff := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		leaked = append(leaked, r.Method+" "+r.URL.Path+" Authorization: "+r.Header.Get("Authorization"))
		mu.Unlock()
		http.NotFound(w, r)
	}))
	defer sniff.Close()
	front := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, sniff.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer front.Close()
	pool := x509.NewCertPool()
	pool.AddCert(front.Certificate())

	l, _ := shopLedger(t, 3)
	cc := replication.DefaultClientConfig()
	cc.Store, cc.Central, cc.Token = shop, []string{front.URL}, shopToken
	cc.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	cc.PollWait, cc.BackoffMin, cc.BackoffMax = 100*time.Millisecond, 5*time.Millisecond, 20*time.Millisecond
	reg := prometheus.NewRegistry()
	met, err := replication.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := replication.NewClient(cc, node.LedgerLocal(l, nil), met)
	if err != nil {
		t.Fatal(err)
	}
	cl.Start()
	// Each failed exchange has followed its redirects (or not) before it
	// is counted.
	waitFor(t, "failed pushes and pulls", 10*time.Second, func() bool {
		return gathered(t, reg, "storeline_replication_pull_errors_total") >= 2 &&
			gathered(t, reg, "storeline_replication_push_errors_total") >= 2
	})
	cl.Stop()
	mu.Lock()
	defer mu.Unlock()
	if len(leaked) > 0 {
		t.Errorf("the client followed central's redirect to plain http: %d requests, first %q", len(leaked), leaked[0])
	}
}

// TestReview14ClientCertificateOfAnotherShopRefused: a shop configured
// with another shop's certificate (a file copied from the wrong folder)
// is told so when its client is built, naming TLS, instead of starting
// "offline" for good while central answers every push and pull 403.
func TestReview14ClientCertificateOfAnotherShopRefused(t *testing.T) {
	pki := newPKI(t)
	l, _ := shopLedger(t, 0)
	for _, tc := range []struct {
		cn string
		ok bool
	}{{string(shop), true}, {"s2", false}} {
		cc := replication.DefaultClientConfig()
		cc.Store, cc.Central = shop, []string{"https://127.0.0.1:1"}
		cc.TLS = &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.leaf(t, tc.cn, false)}, MinVersion: tls.VersionTLS13}
		_, err := replication.NewClient(cc, node.LedgerLocal(l, nil), nil)
		switch {
		case tc.ok && err != nil:
			t.Errorf("store %s with its own certificate: %v", shop, err)
		case !tc.ok && err == nil:
			t.Errorf("store %s with %s's certificate: NewClient accepted it", shop, tc.cn)
		case !tc.ok && (storeline.KindOf(err) != storeline.Invalid || !strings.Contains(err.Error(), "TLS")):
			t.Errorf("store %s with %s's certificate: %v, want Invalid naming TLS", shop, tc.cn, err)
		}
	}
}
