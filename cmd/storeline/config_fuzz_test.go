package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzNodeConfigFile feeds the node's -config loader arbitrary file bytes.
// It must never panic, whatever the file holds, and loading the same file
// twice must give the same config (no state leaks between loads), so what
// an operator sees validated is what the node runs with.
func FuzzNodeConfigFile(f *testing.F) {
	for _, seed := range []string{
		`{"store":"shop-1","data":"/var/lib/storeline","till-addr":":8080"}`,
		`{"store":"shop-1","central":["https://c1:7000","https://c2:7000"],"pin-attempts":5}`,
		`{"store":1}`, `{"store":null}`, `{"central":[1,2]}`, `{"unknown":"x"}`,
		`{"pin-attempts":"99999999999999999999"}`, `{"log-level":"loud"}`,
		`{"store":"shop-1","replication-central":["https://c1:8444"],"replication-token":"tok","mem-table-bytes":134217728}`,
		`{"replication-central":"https://c1:8444,https://c2:8444","points-sweep-interval":"-1s","points-float":0}`,
		`{"store":"a"} {"store":"b"} garbage`, `{"store":"a"}` + "\n\t ",
		`[]`, `null`, ``, `{`, `{"a":{"b":{"c":{}}}}`,
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, raw []byte) {
		path := filepath.Join(dir, "node.json")
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		load := func() (any, string) {
			fs := flag.NewFlagSet("fuzz", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cfg, level, err := loadNodeConfig(fs, []string{"-config", path}, func(string) string { return "" })
			if err != nil {
				return nil, err.Error()
			}
			_ = cfg.Validate() // must not panic on anything the loader accepted
			return []any{cfg, level}, ""
		}
		c1, e1 := load()
		c2, e2 := load()
		if e1 != e2 || !reflect.DeepEqual(c1, c2) {
			t.Fatalf("two loads of %q differ: %v %q / %v %q", raw, c1, e1, c2, e2)
		}
	})
}
