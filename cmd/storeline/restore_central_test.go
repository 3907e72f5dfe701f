package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/storeline/storeline/central"
)

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
