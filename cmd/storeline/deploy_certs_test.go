package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeployExampleCertFiles: the certificate files deploy/node.example.json
// and deploy/central.example.env name are the ones storeline certs writes
// (ca.pem, and for the example's store and a central node their
// certificate and key), so an operator following README's steps finds
// every file where the examples look for it.
func TestDeployExampleCertFiles(t *testing.T) {
	dir := t.TempDir()
	certs := func(args ...string) {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(context.Background(), append([]string{"certs"}, args...), func(string) string { return "" }, &out, &errb); code != 0 {
			t.Fatalf("certs %v: exit %d: %s", args, code, errb.String())
		}
	}
	written := func(what, path string) {
		t.Helper()
		if path == "" {
			t.Errorf("%s: not set", what)
			return
		}
		if _, err := os.Stat(filepath.Join(dir, filepath.Base(path))); err != nil {
			names, _ := filepath.Glob(filepath.Join(dir, "*.pem"))
			for i := range names {
				names[i] = filepath.Base(names[i])
			}
			t.Errorf("%s names %s, which storeline certs does not write (it wrote %v)", what, path, names)
		}
	}
	certs("ca", "-dir", dir)

	raw, err := os.ReadFile("../../deploy/node.example.json")
	if err != nil {
		t.Fatal(err)
	}
	var nodeEx map[string]any
	if err := json.Unmarshal(raw, &nodeEx); err != nil {
		t.Fatal(err)
	}
	str := func(k string) string { s, _ := nodeEx[k].(string); return s }
	certs("issue", "-dir", dir, "-store", str("store"))
	for _, k := range []string{"replication-ca", "replication-cert", "replication-key"} {
		written("node.example.json "+k, str(k))
	}

	f, err := os.Open("../../deploy/central.example.env")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	// A central certificate's name is free (-central NAME); the example's
	// certificate file says which it used.
	cert := filepath.Base(env["STORELINE_CENTRAL_REPLICATION_CERT"])
	name, ok := strings.CutPrefix(strings.TrimSuffix(cert, ".pem"), "central-")
	if !ok || name == "" {
		t.Fatalf("central.example.env's REPLICATION_CERT %q is not a central certificate of storeline certs (central-NAME.pem)", cert)
	}
	certs("issue", "-dir", dir, "-central", name, "-host", "10.0.0.11")
	for _, k := range []string{"STORELINE_CENTRAL_REPLICATION_CA", "STORELINE_CENTRAL_REPLICATION_CERT", "STORELINE_CENTRAL_REPLICATION_KEY"} {
		written("central.example.env "+k, env[k])
	}
}
