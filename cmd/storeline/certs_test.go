package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/storeline/storeline/replication"
)

// TestCerts: a CA, a shop's certificate and a central node's, which
// verify against the CA for their uses; the shop's names its store;
// nothing is overwritten.
func TestCerts(t *testing.T) {
	dir := t.TempDir()
	runOK := func(args ...string) {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(context.Background(), append([]string{"certs"}, args...), func(string) string { return "" }, &out, &errb); code != 0 {
			t.Fatalf("certs %v: exit %d: %s", args, code, errb.String())
		}
	}
	runOK("ca", "-dir", dir)
	runOK("issue", "-dir", dir, "-store", "s1")
	runOK("issue", "-dir", dir, "-central", "c1", "-host", "127.0.0.1,central.example")
	var errb bytes.Buffer
	if code := run(context.Background(), []string{"certs", "ca", "-dir", dir}, func(string) string { return "" }, &bytes.Buffer{}, &errb); code == 0 {
		t.Errorf("a second CA overwrote the first")
	}
	if code := run(context.Background(), []string{"certs", "issue", "-dir", dir, "-store", "central"}, func(string) string { return "" }, &bytes.Buffer{}, &errb); code != exitUsage {
		t.Errorf("a shop certificate for %q: exit %d, want %d", "central", code, exitUsage)
	}
	if fi, err := os.Stat(filepath.Join(dir, "store-s1-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v (%v), want 0600", fi.Mode(), err)
	}
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem holds no certificate")
	}
	leaf := func(name string) *x509.Certificate {
		kp, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(kp.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	shop := leaf("store-s1")
	if _, err := shop.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("shop certificate: %v", err)
	}
	if st, ok := replication.StoreFromCert(shop); !ok || st != "s1" {
		t.Errorf("StoreFromCert = %q, %v, want s1", st, ok)
	}
	c1 := leaf("central-c1")
	if _, err := c1.Verify(x509.VerifyOptions{Roots: pool, DNSName: "central.example", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("central certificate: %v", err)
	}
	if err := c1.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("central certificate for 127.0.0.1: %v", err)
	}
}
