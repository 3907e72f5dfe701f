package main

import (
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/storeline/storeline/node"
)

// loadConfig runs the node's config loader on args and an environment.
func loadConfig(t *testing.T, getenv func(string) string, args ...string) (node.Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg, _, err := loadNodeConfig(fs, args, getenv)
	return cfg, err
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfigFileFromEnvironment: STORELINE_CONFIG names the config file,
// as the usage says every flag can come from the environment; -config
// wins over it.
func TestConfigFileFromEnvironment(t *testing.T) {
	envFile := writeFile(t, "env.json", `{"store":"from-env-file","pin-attempts":9}`)
	flagFile := writeFile(t, "flag.json", `{"store":"from-flag-file"}`)
	cfg, err := loadConfig(t, env(map[string]string{"STORELINE_CONFIG": envFile}))
	if err != nil || cfg.StoreID != "from-env-file" || cfg.PINAttempts != 9 {
		t.Errorf("STORELINE_CONFIG: store %q pin-attempts %d, %v; want the file's", cfg.StoreID, cfg.PINAttempts, err)
	}
	cfg, err = loadConfig(t, env(map[string]string{"STORELINE_CONFIG": envFile}), "-config", flagFile)
	if err != nil || cfg.StoreID != "from-flag-file" || cfg.PINAttempts != node.DefaultConfig().PINAttempts {
		t.Errorf("-config over STORELINE_CONFIG: store %q pin-attempts %d, %v; want only the flag's file", cfg.StoreID, cfg.PINAttempts, err)
	}
	if _, err := loadConfig(t, env(map[string]string{"STORELINE_CONFIG": filepath.Join(t.TempDir(), "missing.json")})); err == nil {
		t.Errorf("STORELINE_CONFIG naming a missing file: no error")
	}
	// The whole binary: a node configured by STORELINE_CONFIG alone.
	file := writeFile(t, "node.json", `{"store":"shop-env","data":"`+filepath.Join(t.TempDir(), "d")+`","till-addr":"127.0.0.1:0","admin-addr":"127.0.0.1:0"}`)
	p := startNode(t, env(map[string]string{"STORELINE_CONFIG": file, "STORELINE_ADMIN_TOKEN": testToken}))
	if code, out, _ := runCmd(t, env(nil), "ctl", "--node", p.admin, "health"); code != 0 || !strings.Contains(out, `"store":"shop-env"`) {
		t.Errorf("health of a node configured by STORELINE_CONFIG = %d %s", code, out)
	}
}

// TestConfigFileTrailingData: a config file is one JSON object and white
// space; anything after the object is an error, not silently ignored.
func TestConfigFileTrailingData(t *testing.T) {
	for _, text := range []string{
		`{"store":"a"} {"store":"b"} garbage`,
		`{"store":"a"}{"store":"b"}`,
		`{"store":"a"} garbage`,
		`{"store":"a"} null`,
		`{"store":"a"}]`,
	} {
		_, err := loadConfig(t, env(nil), "-config", writeFile(t, "node.json", text))
		if err == nil || !strings.Contains(err.Error(), "after the JSON object") {
			t.Errorf("%q: err = %v, want one about data after the object", text, err)
		}
	}
	cfg, err := loadConfig(t, env(nil), "-config", writeFile(t, "node.json", " \n{\"store\":\"a\"}\n\t \r\n"))
	if err != nil || cfg.StoreID != "a" {
		t.Errorf("an object with white space around it: %q, %v", cfg.StoreID, err)
	}
}

// TestNodeReplicationSettings: the replication section, the loyalty
// settings and the memtable size come from flags, the environment and the
// file like every other setting, reach node.Config, and are validated.
func TestNodeReplicationSettings(t *testing.T) {
	file := writeFile(t, "node.json", `{
		"store": "shop-1", "data": "/var/lib/storeline/node",
		"replication-central": ["https://central-1.example:8444", "https://central-2.example:8444"],
		"replication-ca": "/pki/chain-ca.pem", "replication-cert": "/pki/shop-1.pem", "replication-key": "/pki/shop-1.key",
		"replication-max-batch-events": 200, "replication-max-batch-bytes": 524288, "replication-page-items": 300,
		"replication-push-interval": "1s", "replication-poll-wait": "20s", "replication-request-timeout": "40s",
		"replication-backoff-min": "500ms", "replication-backoff-max": "1m", "replication-loyalty-timeout": "2s",
		"points-float": 50, "points-sweep-interval": "30s", "mem-table-bytes": 134217728, "max-batch-bytes": 8388608
	}`)
	getenv := env(map[string]string{"STORELINE_ADMIN_TOKEN": testToken, "STORELINE_REPLICATION_PUSH_INTERVAL": "2s"})
	cfg, err := loadConfig(t, getenv, "-config", file, "-replication-poll-wait", "10s")
	if err != nil {
		t.Fatal(err)
	}
	want := node.ReplicationConfig{
		Central: []string{"https://central-1.example:8444", "https://central-2.example:8444"},
		CAFile:  "/pki/chain-ca.pem", CertFile: "/pki/shop-1.pem", KeyFile: "/pki/shop-1.key",
		MaxBatchEvents: 200, MaxBatchBytes: 512 << 10, PageItems: 300,
		PushInterval: 2 * time.Second, PollWait: 10 * time.Second, RequestTimeout: 40 * time.Second,
		BackoffMin: 500 * time.Millisecond, BackoffMax: time.Minute, LoyaltyTimeout: 2 * time.Second,
	}
	if !reflect.DeepEqual(cfg.Replication, want) {
		t.Errorf("Replication =\n%+v\nwant\n%+v", cfg.Replication, want)
	}
	if cfg.PointsFloat != 50 || cfg.PointsSweepInterval != 30*time.Second || cfg.MemTableBytes != 128<<20 || cfg.MaxBatchBytes != 8<<20 {
		t.Errorf("PointsFloat %d PointsSweepInterval %v MemTableBytes %d MaxBatchBytes %d", cfg.PointsFloat, cfg.PointsSweepInterval, cfg.MemTableBytes, cfg.MaxBatchBytes)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
	if s := cfg.String(); !strings.Contains(s, "Central=[https://central-1.example:8444,https://central-2.example:8444]") || !strings.Contains(s, "TLS=true") {
		t.Errorf("String() does not show the replication settings: %s", s)
	}
	// The token from the environment, redacted in the log line.
	cfg, err = loadConfig(t, env(map[string]string{"STORELINE_REPLICATION_TOKEN": "shop-1-secret-token-0123", "STORELINE_REPLICATION_CENTRAL": "http://10.0.0.11:8444"}),
		"-store", "shop-1", "-data", "/d", "-admin-token", testToken)
	if err != nil || cfg.Replication.Token != "shop-1-secret-token-0123" || strings.Contains(cfg.String(), "shop-1-secret-token-0123") {
		t.Errorf("token from the environment: %+v, %v (String must redact it)", cfg.Replication, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}

	// Bad settings are usage errors naming the field, before anything opens.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-replication-central", "ftp://central"}, "replication-central[0]"},
		{[]string{"-replication-token", "orphan-token-0123456789"}, "replication-central: "},
		{[]string{"-replication-central", "https://c1:8444"}, "replication-token: "},
		{[]string{"-replication-central", "https://c1:8444", "-replication-ca", "/ca.pem"}, "replication-"},
		{[]string{"-replication-central", "https://c1:8444", "-replication-token", "tok-0123456789abcdef", "-replication-backoff-max", "1ms"}, "replication-backoff-max: "},
		{[]string{"-points-float", "-1"}, "points-float: "},
		{[]string{"-points-sweep-interval", "48h"}, "points-sweep-interval: "},
		{[]string{"-mem-table-bytes", "-1"}, "mem-table-bytes: "},
		{[]string{"-max-batch-bytes", "16777216", "-wal-segment-bytes", "67108864"}, "mem-table-bytes: "},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		args := append([]string{"node", "-store", "shop-1", "-data", dir}, tc.args...)
		code, _, errOut := runCmd(t, env(map[string]string{"STORELINE_ADMIN_TOKEN": testToken}), args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v = %d %q, want %d naming %s", tc.args, code, errOut, exitUsage, tc.want)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%v: the data directory was created (%v)", tc.args, err)
		}
	}
	// A bigger batch with a memtable to match: the command line can now say so.
	cfg, err = loadConfig(t, env(map[string]string{"STORELINE_ADMIN_TOKEN": testToken}),
		"-store", "shop-1", "-data", "/d", "-max-batch-bytes", "16777216", "-wal-segment-bytes", "67108864", "-mem-table-bytes", "134217728")
	if err != nil || cfg.Validate() != nil {
		t.Errorf("-max-batch-bytes 16 MiB with -mem-table-bytes 128 MiB: %v / %v", err, cfg.Validate())
	}
}

// TestNodeAddressesValidated: a bad listen address is a usage error naming
// the field, before the ledger is opened.
func TestNodeAddressesValidated(t *testing.T) {
	for _, tc := range [][]string{{"-till-addr", ":99999", "till-addr: "}, {"-admin-addr", "127.0.0.1:notaport", "admin-addr: "}} {
		dir := filepath.Join(t.TempDir(), "data")
		code, _, errOut := runCmd(t, env(map[string]string{"STORELINE_ADMIN_TOKEN": testToken}), "node", "-store", "shop-1", "-data", dir, tc[0], tc[1])
		if code != exitUsage || !strings.Contains(errOut, tc[2]) {
			t.Errorf("%s %s = %d %q, want %d naming %s", tc[0], tc[1], code, errOut, exitUsage, tc[2])
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s %s: the data directory was created (%v)", tc[0], tc[1], err)
		}
	}
}

// TestDeployExampleConfig: deploy/node.example.json loads, validates with
// the admin token from the environment (as the systemd unit gives it), and
// has every key but the secrets, which belong in node.env.
func TestDeployExampleConfig(t *testing.T) {
	const example = "../../deploy/node.example.json"
	raw, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(t, env(map[string]string{"STORELINE_ADMIN_TOKEN": testToken, "STORELINE_CONFIG": example}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("%s does not validate: %v", example, err)
	}
	if !cfg.Replication.Enabled() {
		t.Errorf("%s does not replicate to central", example)
	}
	secrets := map[string]bool{"admin-token": true, "terminals": true, "replication-token": true}
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	c := node.DefaultConfig()
	level := slog.LevelInfo
	nodeFlags(fs, &c, &level)
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := keys[f.Name]; ok == secrets[f.Name] {
			if ok {
				t.Errorf("%s holds the secret %q: it belongs in node.env", example, f.Name)
			} else {
				t.Errorf("%s lacks the key %q", example, f.Name)
			}
		}
	})
}
