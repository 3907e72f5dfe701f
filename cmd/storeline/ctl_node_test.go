package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/node"
)

// groupImport writes an import file of n group records; bad, if >= 0, is
// the index of a record with an invalid ID.
func groupImport(t *testing.T, n, bad int) string {
	t.Helper()
	imp := node.MasterImport{Records: make([]node.MasterEntry, n)}
	for i := range imp.Records {
		id := fmt.Sprintf("g%d", i)
		if i == bad {
			id = "bad/id"
		}
		imp.Records[i] = node.MasterEntry{Kind: "group", Record: json.RawMessage(fmt.Sprintf(`{"id":%q,"name":"Group %d"}`, id, i))}
	}
	b, err := json.Marshal(imp)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "import.json", string(b))
}

// TestCtlImportInBatches: `ctl import` of more records than the ledger
// stores in one call goes through, in batches of at most its limit, with
// progress on stderr and the totals on stdout. A bad record in a later
// batch is named by its index in the file.
func TestCtlImportInBatches(t *testing.T) {
	getenv := env(map[string]string{"STORELINE_ADMIN_TOKEN": testToken})
	p := startNode(t, getenv, "-store", "shop-1", "-data", filepath.Join(t.TempDir(), "data"), "-till-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0")
	n := 2*ledger.MaxMasterRecords + 808
	code, out, errOut := runCmd(t, getenv, "ctl", "--node", p.admin, "import", groupImport(t, n, -1))
	if code != 0 {
		t.Fatalf("import of %d records = %d\n%s\n%s", n, code, out, errOut)
	}
	var got struct{ Version, Count, Batches int }
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Count != n || got.Batches != 3 || got.Version < n {
		t.Errorf("import = %s (%v), want count %d in 3 batches, version >= %d", out, err, n, n)
	}
	if !strings.Contains(errOut, fmt.Sprintf("%d/%d records", n, n)) || !strings.Contains(errOut, "100.0%") {
		t.Errorf("import progress: %q", errOut)
	}
	var h struct {
		MasterVersion int `json:"master_version"`
	}
	if code, out, _ := runCmd(t, getenv, "ctl", "--node", p.admin, "health"); code != 0 || json.Unmarshal([]byte(out), &h) != nil || h.MasterVersion != got.Version {
		t.Errorf("health after the import = %s, want master_version %d", out, got.Version)
	}

	bad := ledger.MaxMasterRecords + 404
	code, _, errOut = runCmd(t, getenv, "ctl", "--node", p.admin, "import", groupImport(t, n, bad))
	for _, want := range []string{"400 Bad Request", fmt.Sprintf("(field: records[%d].record.id)", bad), fmt.Sprintf("the %d before are imported", ledger.MaxMasterRecords)} {
		if code != exitError || !strings.Contains(errOut, want) {
			t.Errorf("import with record %d bad = %d, stderr %q, want %q", bad, code, errOut, want)
		}
	}
}

// TestCtlShowsProblems: ctl shows an admin error as its status, detail and
// field, not as a raw body.
func TestCtlShowsProblems(t *testing.T) {
	getenv := env(map[string]string{"STORELINE_ADMIN_TOKEN": testToken})
	p := startNode(t, getenv, "-store", "shop-1", "-data", filepath.Join(t.TempDir(), "data"), "-till-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0")
	code, _, errOut := runCmd(t, getenv, "ctl", "--node", p.admin, "seller", "s-1", "Ann", "cashier", "12")
	if code != exitError || !strings.Contains(errOut, "400 Bad Request: ") || !strings.Contains(errOut, "PIN is 4-12 digits") ||
		!strings.Contains(errOut, "(field: pin)") || strings.Contains(errOut, "{") {
		t.Errorf("seller with a 2-digit PIN = %d %q", code, errOut)
	}
	code, _, errOut = runCmd(t, env(nil), "ctl", "--node", p.admin, "--token", "wrong-token-0123456789", "conservation")
	if code != exitError || !strings.Contains(errOut, "401 Unauthorized: ") || !strings.Contains(errOut, "admin token") {
		t.Errorf("wrong token = %d %q", code, errOut)
	}
}

// TestCtlBackupUnavailable: a backup of a node whose ledger is unavailable
// is refused with a 503 that ctl shows, not a cut connection ("EOF"), and
// leaves no file.
func TestCtlBackupUnavailable(t *testing.T) {
	c := node.DefaultConfig()
	c.StoreID, c.DataDir, c.AdminToken = "shop-1", t.TempDir(), testToken
	c.TillAddr, c.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	c.WALSegmentBytes, c.MaxBatchBytes = 8<<20, 1<<20
	n, err := node.New(c, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	if err := n.Ledger().Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "shop-1.backup")
	code, _, errOut := runCmd(t, env(map[string]string{"STORELINE_ADMIN_TOKEN": testToken}), "ctl", "--node", n.AdminURL(), "backup", path)
	if code != exitError || !strings.Contains(errOut, "503 Service Unavailable") || !strings.Contains(errOut, "ledger closed") || strings.Contains(errOut, "EOF") {
		t.Errorf("backup of a closed ledger = %d %q, want a 503 saying the ledger is closed", code, errOut)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a refused backup left %s (%v)", path, err)
	}
}
