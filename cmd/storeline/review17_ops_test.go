package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestReview17OpsRestoreDirectoryAsShopBackup: an operator who gives
// `storeline restore` a central node's backup (a directory) without
// -central is told it is a directory and to use -central, not "not a
// ledger backup (header "\x00\x00…")", and the target is left absent.
func TestReview17OpsRestoreDirectoryAsShopBackup(t *testing.T) {
	backup := t.TempDir() // a directory, as a central node's backup is
	target := filepath.Join(t.TempDir(), "shop")
	code, _, errOut := runCmd(t, env(nil), "restore", "-data", target, backup)
	if code != exitError || !strings.Contains(errOut, "is a directory") || !strings.Contains(errOut, "-central") || strings.Contains(errOut, `\x00`) {
		t.Errorf("restore of a directory = %d %q, want an error saying it is a directory and naming -central", code, errOut)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("a refused restore left %s (%v)", target, err)
	}
}

// TestReview17OpsCtlBackupUnwritableTarget: a backup into a directory
// that does not exist fails before asking the node for a stream (which
// the node would log as a failed backup, "broken pipe"), and the error
// names the directory the operator gave, not a temporary file.
func TestReview17OpsCtlBackupUnwritableTarget(t *testing.T) {
	var asked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(make([]byte, 1<<20))
	}))
	defer srv.Close()
	dir := filepath.Join(t.TempDir(), "missing")
	code, _, errOut := runCmd(t, env(map[string]string{"STORELINE_ADMIN_TOKEN": testToken}), "ctl", "--node", srv.URL, "backup", filepath.Join(dir, "shop-1.backup"))
	if code != exitError || !strings.Contains(errOut, dir) || strings.Contains(errOut, ".backup-") {
		t.Errorf("backup into a missing directory = %d %q, want an error naming %s", code, errOut, dir)
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("ctl asked the node for %d backup streams it could not write anywhere", n)
	}
}
