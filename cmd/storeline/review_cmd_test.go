package main

import (
	"flag"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReviewCentralBootstrapBadValue: -bootstrap (and its variable) takes
// a boolean; a value that is not one is refused as a usage error, not
// taken as false, which leaves a first node waiting for a cluster that
// never forms.
func TestReviewCentralBootstrapBadValue(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		name string
	}{
		{[]string{"-bootstrap", "yes"}, nil, "-bootstrap"},
		{nil, map[string]string{"STORELINE_CENTRAL_BOOTSTRAP": "ture"}, "STORELINE_CENTRAL_BOOTSTRAP"},
	} {
		vars := map[string]string{"STORELINE_CENTRAL_DATA": t.TempDir()}
		for k, v := range c.env {
			vars[k] = v
		}
		start := time.Now()
		code, stderr := centralCutOff(t, env(vars), c.args...)
		if code != exitUsage || !strings.Contains(stderr, c.name) {
			t.Errorf("bad %s: exit %d after %s, want %d naming %s; stderr:\n%s", c.name, code, time.Since(start).Round(time.Millisecond), exitUsage, c.name, stderr)
		}
	}
}

// TestReviewCentralUnexpectedArgs: `storeline central` refuses positional
// arguments like every other command that takes none: a value given
// without its flag (here the node id, -id forgotten) is not silently
// dropped, nor the flags after it ignored.
func TestReviewCentralUnexpectedArgs(t *testing.T) {
	dir := t.TempDir()
	code, stderr := centralCutOff(t, env(nil), "-data", dir, "c2")
	if code != exitUsage || !strings.Contains(stderr, "c2") {
		t.Errorf("central with a stray argument: exit %d, want %d naming it; stderr:\n%s", code, exitUsage, stderr)
	}
}

// TestReviewCtlNodeFlagBeatsCentralEnv: an explicit --node wins over
// STORELINE_CENTRAL in the environment (flags win over the environment);
// ctl used to send the node's command to central.
func TestReviewCtlNodeFlagBeatsCentralEnv(t *testing.T) {
	getenv := env(map[string]string{"STORELINE_ADMIN_TOKEN": testToken})
	p := startNode(t, getenv, "-store", "shop-1", "-data", filepath.Join(t.TempDir(), "data"), "-till-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0")
	both := env(map[string]string{"STORELINE_ADMIN_TOKEN": testToken, "STORELINE_CENTRAL": "http://127.0.0.1:1"})
	code, out, errOut := runCmd(t, both, "ctl", "--node", p.admin, "health")
	if code != exitOK || !strings.Contains(out, "master_version") {
		t.Errorf("ctl --node URL health with STORELINE_CENTRAL set = %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	// Both given on the command line is ambiguous: a usage error.
	code, _, errOut = runCmd(t, both, "ctl", "--node", p.admin, "--central", "http://127.0.0.1:1", "health")
	if code != exitUsage {
		t.Errorf("ctl with --node and --central = %d, want %d; stderr %q", code, exitUsage, errOut)
	}
}

// TestReviewBadTokenListNotEchoed: a malformed entry of a token list in
// the environment (the place the docs say secrets belong) is refused
// without printing the entry, which holds the token, to the log.
func TestReviewBadTokenListNotEchoed(t *testing.T) {
	const secret = "s3cret-token-0123456789abcdef"
	code, _, errOut := runCmd(t, env(map[string]string{
		"STORELINE_ADMIN_TOKEN": testToken,
		"STORELINE_TERMINALS":   "till-1:" + secret,
	}), "node", "-store", "shop-1", "-data", t.TempDir(), "-till-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0")
	if code != exitUsage || !strings.Contains(errOut, "STORELINE_TERMINALS") || strings.Contains(errOut, secret) {
		t.Errorf("node with a malformed STORELINE_TERMINALS = %d, stderr %q: want a usage error naming the variable, not the token", code, errOut)
	}
	code, errOut = centralCutOff(t, env(map[string]string{
		"STORELINE_CENTRAL_DATA": t.TempDir(),
		"STORELINE_SHOP_TOKENS":  "shop-1:" + secret,
	}))
	if code != exitUsage || !strings.Contains(errOut, "STORELINE_SHOP_TOKENS") || strings.Contains(errOut, secret) {
		t.Errorf("central with a malformed STORELINE_SHOP_TOKENS = %d, stderr %q: want a usage error naming the variable, not the token", code, errOut)
	}
}

// TestReviewConfigFileNull: a config file's value is a string, a number,
// a boolean or an array of strings; null is none of them and is refused
// naming the key, not taken as an empty value (which made a node with
// "replication-central": null silently standalone).
func TestReviewConfigFileNull(t *testing.T) {
	file := writeFile(t, "node.json", `{"store":"shop-1","data":"/d","replication-central":null}`)
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	_, _, err := loadNodeConfig(fs, []string{"-config", file}, env(nil))
	if err == nil || !strings.Contains(err.Error(), "replication-central") {
		t.Errorf("a null value in the config file: err %v, want one naming replication-central", err)
	}
}

// TestReviewConfigFileKeyTwice: a key given twice in the config file is
// refused, naming it (the decoder kept the last, so a file read one way by
// an operator ran another way).
func TestReviewConfigFileKeyTwice(t *testing.T) {
	file := writeFile(t, "node.json", `{"store":"shop-1","data":"/d","till-addr":":8080","till-addr":":9090"}`)
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	_, _, err := loadNodeConfig(fs, []string{"-config", file}, env(nil))
	if err == nil || !strings.Contains(err.Error(), "till-addr") || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a key twice in the config file: err %v, want one naming till-addr", err)
	}
}

// TestReviewCertsBadFlags: certs refuses a negative -days (it used to
// fall back to the default validity silently) and -host on a shop's
// certificate (which has no hosts: it was dropped silently).
func TestReviewCertsBadFlags(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runCmd(t, env(nil), "certs", "ca", "-dir", dir, "-days", "-30"); code != exitUsage {
		t.Errorf("certs ca -days -30 = %d, want %d; stderr %q", code, exitUsage, errOut)
	}
	dir = t.TempDir()
	if code, _, errOut := runCmd(t, env(nil), "certs", "ca", "-dir", dir); code != exitOK {
		t.Fatalf("certs ca = %d %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, env(nil), "certs", "issue", "-dir", dir, "-store", "shop-1", "-host", "shop-1.example"); code != exitUsage || !strings.Contains(errOut, "host") {
		t.Errorf("certs issue -store with -host = %d, want %d naming -host; stderr %q", code, exitUsage, errOut)
	}
}
