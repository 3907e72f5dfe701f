package central_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/internal/testwait"
	"github.com/storeline/storeline/replication"
)

// issue signs a certificate for tmpl with the CA (self-signed when ca is
// nil) and returns it with its key.
func issue(t *testing.T, tmpl *x509.Certificate, ca *tls.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	parent, signer := tmpl, any(key)
	if ca != nil {
		parent, signer = ca.Leaf, ca.PrivateKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// TestReplicationMutualTLS: with ReplicationTLS, a shop is known by the
// certificate the chain CA issued it: it pushes as its own store, a push
// naming another store is 403, and a client without a certificate does
// not get through the handshake.
func TestReplicationMutualTLS(t *testing.T) {
	ca := issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "chain CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, nil)
	server := issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "central"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, &ca)
	shop := issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "shop one"}, URIs: []*url.URL{{Scheme: "storeline", Opaque: "store:s1"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, &ca)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Leaf)
	c := startClusterWith(t, 1, func(cfg *central.Config) {
		cfg.ReplicationTLS = &tls.Config{Certificates: []tls.Certificate{server}, ClientCAs: pool, MinVersion: tls.VersionTLS13}
	})
	n := c.nodes[0]
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: pool, Certificates: certs, MinVersion: tls.VersionTLS13}}}
	}
	push := func(hc *http.Client, store string) (int, error) {
		body, err := replication.Encode(&replication.PushRequest{V: replication.ProtocolVersion, Store: store, Epoch: 1})
		if err != nil {
			t.Fatal(err)
		}
		var code int
		testwait.Retry(10*time.Second, func() bool {
			var resp *http.Response
			if resp, err = hc.Post(n.ReplicationURL()+"/v1/replication/push", "application/msgpack", bytes.NewReader(body)); err != nil {
				return true
			}
			resp.Body.Close()
			code = resp.StatusCode
			return code != http.StatusServiceUnavailable
		})
		return code, err
	}
	if code, err := push(client(shop), "s1"); err != nil || code != http.StatusOK {
		t.Errorf("shop s1 pushing as s1: %d, %v; want 200", code, err)
	}
	if code, err := push(client(shop), "s2"); err != nil || code != http.StatusForbidden {
		t.Errorf("shop s1 pushing as s2: %d, %v; want 403", code, err)
	}
	if code, err := push(client(), "s1"); err == nil {
		t.Errorf("a client without a certificate got through: %d", code)
	}
}
