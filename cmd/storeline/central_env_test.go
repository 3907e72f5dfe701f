package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// centralCutOff runs `storeline central` with args, cut off after a few
// seconds: a configuration the command did not refuse starts a node, and
// the test then sees its clean exit instead of a usage error.
func centralCutOff(t *testing.T, getenv func(string) string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, append([]string{"central"}, args...), getenv, &out, &errb)
	return code, errb.String()
}

// TestCentralEveryFlagFromEnv: every flag of `storeline central` is read
// from STORELINE_CENTRAL_<FLAG> by the flag's own parser (timers and
// -max-voters included, which the environment used to be silently
// ignored for), a bad value is refused naming the variable, and a flag on
// the command line wins over its variable.
func TestCentralEveryFlagFromEnv(t *testing.T) {
	dir := t.TempDir()
	code, stderr := centralCutOff(t, env(map[string]string{
		"STORELINE_CENTRAL_DATA":                   dir,
		"STORELINE_CENTRAL_HEARTBEAT":              "soon",
		"STORELINE_CENTRAL_DEAD_NODE_REMOVE_AFTER": "-",
		"STORELINE_CENTRAL_LOG_LEVEL":              "loud",
	}))
	if code != exitUsage {
		t.Fatalf("bad timer and level in the environment: exit %d, want %d (usage); stderr:\n%s", code, exitUsage, stderr)
	}
	for _, v := range []string{"STORELINE_CENTRAL_HEARTBEAT", "STORELINE_CENTRAL_DEAD_NODE_REMOVE_AFTER", "STORELINE_CENTRAL_LOG_LEVEL"} {
		if !strings.Contains(stderr, v) {
			t.Errorf("the refusal does not name %s:\n%s", v, stderr)
		}
	}

	// A value that parses reaches the configuration: two voters is not
	// an odd number. The command line's heartbeat wins over a variable
	// that would not parse.
	code, stderr = centralCutOff(t, env(map[string]string{
		"STORELINE_CENTRAL_DATA":       dir,
		"STORELINE_CENTRAL_MAX_VOTERS": "2",
		"STORELINE_CENTRAL_HEARTBEAT":  "soon",
	}), "-heartbeat", "1s")
	if code != exitUsage || !strings.Contains(stderr, "MaxVoters") || strings.Contains(stderr, "HEARTBEAT") {
		t.Fatalf("STORELINE_CENTRAL_MAX_VOTERS=2 with -heartbeat 1s: exit %d, stderr:\n%s\nwant a usage error about MaxVoters and none about the heartbeat", code, stderr)
	}
}

// TestCentralKeyPrintedOnlyWhenStarting: with no API keys configured,
// `storeline central` generates an admin key, and prints it only once the
// node has started: a configuration it refuses, or a node that cannot
// open (its API address taken), prints no key, since none would ever
// work.
func TestCentralKeyPrintedOnlyWhenStarting(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		code int
	}{
		{"invalid configuration", map[string]string{"STORELINE_CENTRAL_MAX_VOTERS": "2"}, nil, exitUsage},
		{"API address taken", nil, []string{"-api", busy.Addr().String()}, exitError},
	} {
		vars := map[string]string{"STORELINE_CENTRAL_DATA": t.TempDir()}
		for k, v := range c.env {
			vars[k] = v
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var out, errb bytes.Buffer
		code := run(ctx, append([]string{"central"}, c.args...), env(vars), &out, &errb)
		cancel()
		if code != c.code {
			t.Errorf("%s: exit %d, want %d; stderr:\n%s", c.name, code, c.code, errb.String())
		}
		if strings.Contains(out.String(), "admin-key") {
			t.Errorf("%s: the refused node printed an admin key:\n%s", c.name, out.String())
		}
	}
}
