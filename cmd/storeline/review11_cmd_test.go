package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReview11CentralShopTokenTwice: STORELINE_SHOP_TOKENS maps each
// token to one store; a token given for two stores (a copy-paste slip in
// central.env) was silently kept for the last one only, so the first
// shop authenticated as the other. It is refused, naming the variable
// and neither the token nor its position's value.
func TestReview11CentralShopTokenTwice(t *testing.T) {
	const secret = "same-token-0123456789abcdef"
	code, errOut := centralCutOff(t, env(map[string]string{
		"STORELINE_CENTRAL_DATA": t.TempDir(),
		"STORELINE_SHOP_TOKENS":  "shop-1=" + secret + ",shop-2=" + secret,
	}))
	if code != exitUsage || !strings.Contains(errOut, "STORELINE_SHOP_TOKENS") || strings.Contains(errOut, secret) {
		t.Errorf("central with one token for two shops = %d, stderr %q: want a usage error naming the variable, not the token", code, errOut)
	}
	// The same token twice for the same shop is harmless.
	if _, err := parseShopTokens("shop-1=" + secret + ", shop-1=" + secret); err != nil {
		t.Errorf("one token twice for the same shop: %v", err)
	}
}

// TestReview11RestoreCentralFailureLeavesNothing: a central restore that
// fails midway (here on a symbolic link in the backup; a full disk does
// the same) used to leave the part it had copied, unmarked: a node
// started on it ran on half a state, and a second restore was refused as
// "not empty". The target is left as it was (absent or empty).
func TestReview11RestoreCentralFailureLeavesNothing(t *testing.T) {
	backup := filepath.Join(t.TempDir(), "backup")
	if err := os.MkdirAll(filepath.Join(backup, "fsm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(backup, "fsm", "MANIFEST"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent", filepath.Join(backup, "zz-link")); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(t.TempDir(), "restored")
	code, _, errOut := runCmd(t, env(nil), "restore", "-central", "-data", absent, backup)
	if code != exitError {
		t.Fatalf("restore -central of a backup it cannot copy = %d, want %d; stderr %q", code, exitError, errOut)
	}
	if _, err := os.Stat(absent); !os.IsNotExist(err) {
		ents, _ := os.ReadDir(absent)
		t.Errorf("a failed restore into an absent directory left it (%v), holding %d entries", err, len(ents))
	}
	empty := t.TempDir()
	if code, _, errOut := runCmd(t, env(nil), "restore", "-central", "-data", empty, backup); code != exitError {
		t.Fatalf("restore -central into an empty dir = %d; stderr %q", code, errOut)
	}
	if ents, err := os.ReadDir(empty); err != nil || len(ents) != 0 {
		t.Errorf("a failed restore into an empty directory left %d entries (%v), want it empty", len(ents), err)
	}
	// A directory that was not empty is refused and left alone.
	full := t.TempDir()
	keep := filepath.Join(full, "keep")
	if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := runCmd(t, env(nil), "restore", "-central", "-data", full, backup); code != exitError {
		t.Errorf("restore -central into a non-empty dir = %d", code)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("a refused restore touched a non-empty directory: %v", err)
	}
}

// TestReview11CertsNoOrphanKey: certs writes a key and its certificate
// together or not at all. With the certificate's file already there (a CA
// whose key was moved off-line, a shop's certificate kept from before),
// certs used to write a fresh key, then refuse the certificate: the new
// key, matching nothing, stayed and blocked every later run (and beside
// ca.pem, made 'certs issue' sign with a key that is not the CA's).
func TestReview11CertsNoOrphanKey(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCmd(t, env(nil), "certs", "ca", "-dir", dir); code == exitOK {
		t.Fatalf("certs ca over an existing ca.pem = %d; stderr %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca-key.pem")); !os.IsNotExist(err) {
		t.Errorf("a refused certs ca left ca-key.pem (%v)", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); string(b) != "kept" {
		t.Errorf("ca.pem was overwritten: %q", b)
	}

	dir = t.TempDir()
	if code, _, errOut := runCmd(t, env(nil), "certs", "ca", "-dir", dir); code != exitOK {
		t.Fatalf("certs ca = %d %q", code, errOut)
	}
	if err := os.WriteFile(filepath.Join(dir, "store-shop-1.pem"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCmd(t, env(nil), "certs", "issue", "-dir", dir, "-store", "shop-1"); code == exitOK {
		t.Fatalf("certs issue over an existing certificate = %d; stderr %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "store-shop-1-key.pem")); !os.IsNotExist(err) {
		t.Errorf("a refused certs issue left store-shop-1-key.pem (%v)", err)
	}
}

// TestReview11CertsCentralNoHost: a central node's certificate needs a
// host; -host made only of commas and blanks named none and used to be
// accepted, giving a server certificate no shop can verify.
func TestReview11CertsCentralNoHost(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runCmd(t, env(nil), "certs", "ca", "-dir", dir); code != exitOK {
		t.Fatalf("certs ca = %d %q", code, errOut)
	}
	code, out, errOut := runCmd(t, env(nil), "certs", "issue", "-dir", dir, "-central", "c1", "-host", " , ")
	if code != exitUsage || !strings.Contains(errOut, "host") {
		t.Errorf("certs issue -central -host ' , ' = %d, want %d naming -host; stdout %q stderr %q", code, exitUsage, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "central-c1.pem")); !os.IsNotExist(err) {
		t.Errorf("a refused certs issue wrote central-c1.pem (%v)", err)
	}
}

// startCentralArgs runs `storeline central` with args until the test
// ends and returns the addresses it printed (api, gossip, admin-key).
func startCentralArgs(t *testing.T, getenv func(string) string, args ...string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errb := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"central"}, args...), getenv, out, errb) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("central did not stop")
		}
	})
	got := map[string]string{}
	waitFor(t, "central to print its addresses", 30*time.Second, func() bool {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("central exited %d:\n%s", code, errb.String())
		default:
		}
		for _, line := range strings.Split(out.String(), "\n") {
			if k, v, ok := strings.Cut(line, " "); ok {
				got[k] = v
			}
		}
		return got["api"] != "" && got["gossip"] != ""
	})
	return got
}

// TestReview11CentralSeedsTrimmed: -seeds (STORELINE_CENTRAL_SEEDS) is a
// comma-separated list like -admin-key-hashes, whose entries are trimmed;
// a seed written after ", " kept its blank, memberlist looked up the host
// " 127.0.0.1" and the node never joined.
func TestReview11CentralSeedsTrimmed(t *testing.T) {
	const secret = "review11-cluster-secret-0123456789"
	timers := []string{"-heartbeat", "100ms", "-election", "100ms", "-lease", "50ms", "-probe-interval", "100ms", "-probe-timeout", "50ms"}
	c1 := startCentralArgs(t, env(map[string]string{"STORELINE_CLUSTER_SECRET": secret}),
		append([]string{"-data", filepath.Join(t.TempDir(), "c1")}, timers...)...)
	e := env(map[string]string{"STORELINE_CENTRAL_KEY": c1["admin-key"]})
	waitFor(t, "a leader", 10*time.Second, func() bool {
		code, stdout, _ := runCmd(t, e, "ctl", "--central", c1["api"], "cluster")
		return code == 0 && strings.Contains(stdout, `"leader":"central-1"`)
	})
	startCentralArgs(t, env(map[string]string{
		"STORELINE_CLUSTER_SECRET": secret,
		"STORELINE_CENTRAL_SEEDS":  "127.0.0.1:1, " + c1["gossip"],
	}), append([]string{"-id", "central-2", "-data", filepath.Join(t.TempDir(), "c2")}, timers...)...)
	waitFor(t, "central-2 to join through its second seed", 20*time.Second, func() bool {
		code, stdout, _ := runCmd(t, e, "ctl", "--central", c1["api"], "cluster")
		return code == 0 && strings.Contains(stdout, `"central-2"`)
	})
}

// TestCtlTimeoutMustBePositive: `ctl -timeout 0` (or negative) ran every
// request into an immediate "context deadline exceeded"; it is a usage
// error naming the flag.
func TestCtlTimeoutMustBePositive(t *testing.T) {
	for _, v := range []string{"0s", "-5s"} {
		code, _, errOut := runCmd(t, env(nil), "ctl", "-node", "http://127.0.0.1:1", "-timeout", v, "health")
		if code != exitUsage || !strings.Contains(errOut, "-timeout") {
			t.Errorf("ctl -timeout %s = %d, stderr %q: want a usage error naming -timeout", v, code, errOut)
		}
	}
}
