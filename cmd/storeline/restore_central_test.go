package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/storeline/storeline/central"
)

// runCentral runs `storeline central` on dataDir (a one-node cluster on
// loopback, short Raft timers) until stop is called; it waits for the node
// to lead and returns its API address and the admin key it printed.
func runCentral(t *testing.T, dataDir string) (api, key string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errb := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"central", "-data", dataDir, "-heartbeat", "100ms", "-election", "100ms", "-lease", "50ms"}, env(nil), out, errb)
	}()
	stop = func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("central exited %d:\n%s", code, errb.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatal("central did not stop")
		}
	}
	waitFor(t, "central to print its addresses", 30*time.Second, func() bool {
		select {
		case code := <-done:
			t.Fatalf("central exited %d:\n%s", code, errb.String())
		default:
		}
		for _, line := range strings.Split(out.String(), "\n") {
			if v, ok := strings.CutPrefix(line, "api "); ok {
				api = v
			}
			if v, ok := strings.CutPrefix(line, "admin-key "); ok {
				key = v
			}
		}
		return api != "" && key != ""
	})
	e := env(map[string]string{"STORELINE_CENTRAL_KEY": key})
	waitFor(t, "a leader", 10*time.Second, func() bool {
		code, stdout, _ := runCmd(t, e, "ctl", "--central", api, "cluster")
		return code == 0 && strings.Contains(stdout, `"leader":"central-1"`)
	})
	return api, key, stop
}

// TestRestoreCentral restores a stopped central node's data directory with
// `storeline restore -central`: the copy is marked restored, the node
// started on it takes a new incarnation and removes the mark; bad
// arguments and a non-empty or non-central directory are refused.
func TestRestoreCentral(t *testing.T) {
	dir := t.TempDir()
	orig, restored := filepath.Join(dir, "c"), filepath.Join(dir, "restored")
	_, _, stop := runCentral(t, orig)
	stop()

	marker := filepath.Join(restored, central.RestoredMarker)
	if code, out, errOut := runCmd(t, env(nil), "restore", "-central", "-data", restored, orig); code != exitOK || !strings.Contains(out, "restored central node") {
		t.Fatalf("restore -central = %d %q %q", code, out, errOut)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("restored directory is not marked: %v", err)
	}
	if code, _, errOut := runCmd(t, env(nil), "restore", "-central", "-data", restored, orig); code != exitError || !strings.Contains(errOut, "not empty") {
		t.Errorf("restore -central into a non-empty dir = %d %q", code, errOut)
	}
	notCentral := t.TempDir()
	if code, _, errOut := runCmd(t, env(nil), "restore", "-central", "-data", filepath.Join(dir, "x"), notCentral); code != exitError || !strings.Contains(errOut, "not a central node") {
		t.Errorf("restore -central of a non-central dir = %d %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Error("a refused restore created its target")
	}
	if code, _, _ := runCmd(t, env(nil), "restore", "-mark", "-data", restored); code != exitUsage {
		t.Errorf("-mark without -central = %d, want usage", code)
	}
	if code, _, errOut := runCmd(t, env(nil), "restore", "-central", "-mark", "-data", notCentral); code != exitError || !strings.Contains(errOut, "not a central node") {
		t.Errorf("-mark of a non-central dir = %d %q", code, errOut)
	}

	_, _, stop = runCentral(t, restored)
	waitFor(t, "the restored node to take a new incarnation and drop the mark", 20*time.Second, func() bool {
		_, err := os.Stat(marker)
		return os.IsNotExist(err)
	})
	stop()

	if code, out, errOut := runCmd(t, env(nil), "restore", "-central", "-mark", "-data", restored); code != exitOK || !strings.Contains(out, "marked") {
		t.Fatalf("restore -central -mark = %d %q %q", code, out, errOut)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("-mark left no marker: %v", err)
	}
}
