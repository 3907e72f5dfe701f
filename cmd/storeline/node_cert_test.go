package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNodeRefusesAnotherStoresCertificateBeforeOpening: a shop started
// with another store's certificate is refused before its ledger opens
// (README: the files are "read before the ledger opens"): its data
// directory stays empty, so the operator can still restore into it.
func TestNodeRefusesAnotherStoresCertificateBeforeOpening(t *testing.T) {
	pki := t.TempDir()
	certs := func(args ...string) {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(context.Background(), append([]string{"certs"}, args...), func(string) string { return "" }, &out, &errb); code != 0 {
			t.Fatalf("certs %v: exit %d: %s", args, code, errb.String())
		}
	}
	certs("ca", "-dir", pki)
	certs("issue", "-dir", pki, "-store", "shop-6")
	data := t.TempDir()
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"node", "-store", "shop-1", "-data", data,
		"-till-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-admin-token", "admin-token-0123456789",
		"-replication-central", "https://127.0.0.1:1",
		"-replication-ca", filepath.Join(pki, "ca.pem"),
		"-replication-cert", filepath.Join(pki, "store-shop-6.pem"),
		"-replication-key", filepath.Join(pki, "store-shop-6-key.pem")}, func(string) string { return "" }, &out, &errb)
	if code == 0 || !strings.Contains(errb.String(), "shop-6") {
		t.Fatalf("node with shop-6's certificate for shop-1: exit %d, stderr %s; want a refusal naming shop-6", code, errb.String())
	}
	if ents, err := os.ReadDir(data); err != nil || len(ents) != 0 {
		t.Fatalf("the data directory holds %v (%v) after the refusal; want it empty", ents, err)
	}
}
