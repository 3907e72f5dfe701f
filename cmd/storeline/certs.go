package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/storeline/storeline"
)

// cmdCerts works on local files: it creates the chain's CA and issues
// the certificates shops and central nodes authenticate each other with
// on the replication listener (mutual TLS). Keys are ECDSA P-256, written
// 0600; nothing is ever overwritten.
//
//	storeline certs ca    -dir DIR
//	storeline certs issue -dir DIR -store ID
//	storeline certs issue -dir DIR -central NAME -host HOST[,HOST...]
func cmdCerts(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintln(stderr, "usage: storeline certs ca -dir DIR [-days N]\n       storeline certs issue -dir DIR (-store ID | -central NAME -host HOST[,HOST]) [-days N]\n\nCreates the chain CA (DIR/ca.pem, DIR/ca-key.pem) and issues a shop's client\ncertificate (CN and URI SAN storeline:store:ID) or a central node's\ncertificate (server and client, for the hosts given), signed by it.")
	}
	if len(args) == 0 || (args[0] != "ca" && args[0] != "issue") {
		usage()
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return exitOK
		}
		return exitUsage
	}
	fs := flag.NewFlagSet("storeline certs "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory of the CA and the certificates")
	days := fs.Int("days", 0, fmt.Sprintf("validity in days (default and at most %d for the CA, %d for a certificate, never beyond the CA's)", maxCADays, maxCertDays))
	store := fs.String("store", "", "issue: the shop's store id")
	central := fs.String("central", "", "issue: the central node's name")
	hosts := fs.String("host", "", "issue -central: comma-separated DNS names or IP addresses")
	fs.Usage = func() { usage(); fs.PrintDefaults() }
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *dir == "" || fs.NArg() != 0 {
		fs.Usage()
		return exitUsage
	}
	if *days < 0 {
		fmt.Fprintf(stderr, "storeline certs %s: -days %d: want a positive number of days (0: the default)\n", args[0], *days)
		return exitUsage
	}
	maxDays := maxCertDays
	if args[0] == "ca" {
		maxDays = maxCADays
	}
	if *days > maxDays {
		fmt.Fprintf(stderr, "storeline certs %s: -days %d: at most %d (a long-lived key is a long-lived risk: issue a new one instead)\n", args[0], *days, maxDays)
		return exitUsage
	}
	now := time.Now()
	var (
		files []string
		err   error
	)
	if args[0] == "ca" {
		files, err = makeCA(*dir, now, orDays(*days, maxCADays))
	} else {
		files, err = issueCert(*dir, certRequest{store: *store, central: *central, hosts: *hosts}, now, orDays(*days, maxCertDays))
	}
	if err != nil {
		fmt.Fprintf(stderr, "storeline certs %s: %v\n", args[0], err)
		if storeline.KindOf(err) == storeline.Invalid {
			return exitUsage
		}
		return exitError
	}
	for _, f := range files {
		fmt.Fprintln(stdout, "wrote", f)
	}
	return exitOK
}

// maxCADays and maxCertDays bound -days (and are its defaults): a
// certificate valid for decades outlives every key rotation, and a
// -days past about 290 years overflowed time.Duration into a
// certificate that had already expired.
const (
	maxCADays   = 3650
	maxCertDays = 825
)

func orDays(d, def int) time.Duration {
	if d <= 0 {
		d = def
	}
	return time.Duration(d) * 24 * time.Hour
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// makeCA writes DIR/ca.pem and DIR/ca-key.pem.
func makeCA(dir string, now time.Time, validity time.Duration) ([]string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{CommonName: "Storeline chain CA", Organization: []string{"Storeline"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(validity),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return writePair(dir, "ca", der, key)
}

type certRequest struct{ store, central, hosts string }

// issueCert signs a shop's or a central node's certificate with the CA in
// dir.
func issueCert(dir string, r certRequest, now time.Time, validity time.Duration) ([]string, error) {
	if (r.store == "") == (r.central == "") {
		return nil, storeline.Invalidf("store", "give exactly one of -store and -central")
	}
	if r.store != "" && r.hosts != "" {
		return nil, storeline.Invalidf("host", "-host goes with -central: a shop's certificate names no hosts")
	}
	ca, caKey, err := loadCA(dir)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	if !now.Before(ca.NotAfter) {
		return nil, fmt.Errorf("the CA in %s expired on %s: create a new one", dir, ca.NotAfter.UTC().Format(time.DateOnly))
	}
	// Never valid beyond the CA that signs it: verification fails
	// then anyway, and a date the certificate does not keep misleads.
	notAfter := now.Add(validity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{SerialNumber: sn, NotBefore: now.Add(-time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature}
	var name string
	if r.store != "" {
		if err := storeline.CheckID("store", r.store); err != nil {
			return nil, err
		}
		if storeline.StoreID(r.store) == storeline.Central {
			return nil, storeline.Invalidf("store", "%q is reserved for head office; use -central", r.store)
		}
		name = "store-" + r.store
		tmpl.Subject = pkix.Name{CommonName: r.store, Organization: []string{"Storeline shop"}}
		tmpl.URIs = []*url.URL{{Scheme: "storeline", Opaque: "store:" + r.store}}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		if err := storeline.CheckID("central", r.central); err != nil {
			return nil, err
		}
		name = "central-" + r.central
		// The common name is no valid ID, so the replication listener,
		// which takes a certificate without a storeline:store URI by
		// its common name, never takes this one (client auth too) for
		// the shop its node name spells.
		tmpl.Subject = pkix.Name{CommonName: "Storeline central " + r.central, Organization: []string{"Storeline central"}}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		for _, h := range strings.Split(r.hosts, ",") {
			h = strings.TrimSpace(h)
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else if h != "" {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
		if len(tmpl.IPAddresses)+len(tmpl.DNSNames) == 0 {
			return nil, storeline.Invalidf("host", "a central certificate needs at least one host")
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	return writePair(dir, name, der, key)
}

func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, nil, fmt.Errorf("no CA in %s (run 'storeline certs ca -dir %s' first): %w", dir, dir, err)
	}
	kb, err := os.ReadFile(filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		return nil, nil, err
	}
	cp, _ := pem.Decode(cb)
	kp, _ := pem.Decode(kb)
	if cp == nil || kp == nil {
		return nil, nil, fmt.Errorf("%s: ca.pem or ca-key.pem is not PEM", dir)
	}
	ca, err := x509.ParseCertificate(cp.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kp.Bytes)
	if err != nil {
		return nil, nil, err
	}
	return ca, key, nil
}

// writePair writes DIR/name.pem and DIR/name-key.pem (0600), refusing to
// overwrite either: both are written or neither (a key left without its
// certificate would match nothing and block the next run).
func writePair(dir, name string, der []byte, key *ecdsa.PrivateKey) (files []string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	certFile, keyFile := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	var created []string
	defer func() {
		if err != nil {
			for _, p := range created {
				_ = os.Remove(p)
			}
		}
	}()
	for _, f := range []struct {
		path, typ string
		der       []byte
		mode      os.FileMode
	}{{keyFile, "EC PRIVATE KEY", kder, 0o600}, {certFile, "CERTIFICATE", der, 0o644}} {
		fh, err := os.OpenFile(f.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
		if err != nil {
			return nil, fmt.Errorf("%w (certificates and keys are never overwritten)", err)
		}
		created = append(created, f.path)
		if err := pem.Encode(fh, &pem.Block{Type: f.typ, Bytes: f.der}); err != nil {
			fh.Close()
			return nil, err
		}
		if err := fh.Sync(); err != nil {
			fh.Close()
			return nil, err
		}
		if err := fh.Close(); err != nil {
			return nil, err
		}
	}
	return []string{certFile, keyFile}, nil
}
