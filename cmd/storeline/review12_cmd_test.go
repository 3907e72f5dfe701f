package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestReview12CtlImportRefusesKeyTwice: `ctl import` of a file naming a
// key twice (here the wrapper's "records", once as "Records") fails
// naming it and imports nothing: decoding the file on the client kept the
// last and sent batches in which the node could no longer see it.
func TestReview12CtlImportRefusesKeyTwice(t *testing.T) {
	getenv := env(map[string]string{"STORELINE_ADMIN_TOKEN": testToken})
	p := startNode(t, getenv, "-store", "shop-1", "-data", filepath.Join(t.TempDir(), "data"), "-till-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0")
	file := writeFile(t, "import.json", `{"records":[{"kind":"group","record":{"id":"g1","name":"One"}}],"Records":[{"kind":"group","record":{"id":"g2","name":"Two"}}]}`)
	code, out, errOut := runCmd(t, getenv, "ctl", "--node", p.admin, "import", file)
	if code != exitError || !strings.Contains(errOut, "given twice") || !strings.Contains(errOut, "(field Records)") {
		t.Fatalf("import of a file with records twice = %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, out, _ := runCmd(t, getenv, "ctl", "--node", p.admin, "health"); code != 0 || !strings.Contains(out, `"master_version":0`) {
		t.Errorf("health after the refused import = %d %s, want master_version 0", code, out)
	}
}

// TestReview12NodeConfigErrorsNameFlags: a bad node configuration is
// refused naming each bad setting by its flag (README: every setting has
// one name, its flag name), once, not by the Go field the node checks and
// the tills' API checks again.
func TestReview12NodeConfigErrorsNameFlags(t *testing.T) {
	getenv := env(map[string]string{"STORELINE_ADMIN_TOKEN": testToken})
	code, _, errOut := runCmd(t, getenv, "node", "-store", "shop-1", "-data", filepath.Join(t.TempDir(), "data"),
		"-max-page-size", "0", "-pin-window", "0", "-weighed-pattern", "XX", "-terminals", "t1=short")
	if code != exitUsage {
		t.Fatalf("node with a bad config = %d, want %d; stderr %q", code, exitUsage, errOut)
	}
	for _, want := range []string{"\n  max-page-size: ", "\n  pin-window: ", "\n  weighed-pattern: ", "\n  terminals[0].Token: "} {
		if strings.Count(errOut, want) != 1 {
			t.Errorf("stderr names %q %d times, want once:\n%s", want, strings.Count(errOut, want), errOut)
		}
	}
	for _, field := range []string{"MaxPageSize", "PINWindow", "WeighedLayout", "posbridge.Config"} {
		if strings.Contains(errOut, field) {
			t.Errorf("stderr names the Go field %s:\n%s", field, errOut)
		}
	}
}
