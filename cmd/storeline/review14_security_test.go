package main

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/storeline/storeline/replication"
)

func review14Cert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := pem.Decode(b)
	if p == nil {
		t.Fatalf("%s: no PEM", file)
	}
	c, err := x509.ParseCertificate(p.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestReview14CertsValidityBounded: -days is bounded (a leaf at most
// 825 days, the CA at most 3650), so no certificate is issued for
// centuries, and a -days whose duration overflows no longer issues a
// certificate that has already expired.
func TestReview14CertsValidityBounded(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runCmd(t, env(nil), "certs", "ca", "-dir", dir, "-days", "200000"); code != exitUsage {
		c := review14Cert(t, filepath.Join(dir, "ca.pem"))
		t.Errorf("certs ca -days 200000 = %d, want %d (issued valid until %v); stderr %q", code, exitUsage, c.NotAfter, errOut)
	}
	dir = t.TempDir()
	if code, _, errOut := runCmd(t, env(nil), "certs", "ca", "-dir", dir); code != exitOK {
		t.Fatalf("certs ca = %d %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, env(nil), "certs", "issue", "-dir", dir, "-store", "shop-1", "-days", "36500"); code != exitUsage {
		c := review14Cert(t, filepath.Join(dir, "store-shop-1.pem"))
		t.Errorf("certs issue -days 36500 = %d, want %d (issued valid until %v); stderr %q", code, exitUsage, c.NotAfter, errOut)
	}
}

// TestReview14CertsLeafNotBeyondCA: a certificate is never valid
// longer than the CA that signed it.
func TestReview14CertsLeafNotBeyondCA(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runCmd(t, env(nil), "certs", "ca", "-dir", dir, "-days", "30"); code != exitOK {
		t.Fatalf("certs ca = %d %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, env(nil), "certs", "issue", "-dir", dir, "-store", "shop-1"); code != exitOK {
		t.Fatalf("certs issue = %d %q", code, errOut)
	}
	ca := review14Cert(t, filepath.Join(dir, "ca.pem"))
	leaf := review14Cert(t, filepath.Join(dir, "store-shop-1.pem"))
	if leaf.NotAfter.After(ca.NotAfter) {
		t.Errorf("shop certificate valid until %v, beyond its CA's %v", leaf.NotAfter, ca.NotAfter)
	}
	if leaf.NotAfter.Before(time.Now().Add(29 * 24 * time.Hour)) {
		t.Errorf("shop certificate valid until %v only", leaf.NotAfter)
	}
}

// TestReview14CentralCertIsNoShop: a central node's certificate, which
// the chain CA signs for client authentication too, does not
// authenticate at the replication listener as the shop its node name
// spells (StoreFromCert falls back to the common name).
func TestReview14CentralCertIsNoShop(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runCmd(t, env(nil), "certs", "ca", "-dir", dir); code != exitOK {
		t.Fatalf("certs ca = %d %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, env(nil), "certs", "issue", "-dir", dir, "-central", "shop-1", "-host", "127.0.0.1"); code != exitOK {
		t.Fatalf("certs issue -central = %d %q", code, errOut)
	}
	c := review14Cert(t, filepath.Join(dir, "central-shop-1.pem"))
	if st, ok := replication.StoreFromCert(c); ok {
		t.Errorf("a central node's certificate authenticates as store %q", st)
	}
}
