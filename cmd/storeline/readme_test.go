package main

import (
	"flag"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/storeline/storeline/node"
)

// TestReadmeNamesEveryNodeFlag: the README's node configuration table
// names every flag `storeline node` takes, so a new setting cannot land
// undocumented (the table is the settings' only reference: the same names
// are the config file's keys and, upper-cased, the environment's).
func TestReadmeNamesEveryNodeFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "### Configuring a node")
	if !ok {
		t.Fatal("README has no section \"### Configuring a node\"")
	}
	section, _, _ = strings.Cut(section, "\n### ")
	documented := map[string]bool{}
	names := regexp.MustCompile("`([a-z][a-z0-9-]*)`")
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "|"), "|")
		for _, m := range names.FindAllStringSubmatch(first, -1) {
			documented[m[1]] = true
		}
	}
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	cfg := node.DefaultConfig()
	level := slog.LevelInfo
	nodeFlags(fs, &cfg, &level)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		if !documented[f.Name] {
			t.Errorf("flag -%s is not in the README's node configuration table", f.Name)
		}
	})
	if n < 20 {
		t.Fatalf("only %d node flags visited", n)
	}
}
