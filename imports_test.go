package storeline_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/storeline/storeline"

// importRule is one row of DESIGN.md's table "Packages and what they may
// import": the packages of ours a package may import, and the third-party
// modules (by path prefix) it may use. The standard library is always
// allowed; decimal and uuid, the root's own dependencies, appear in every
// API, so every package may use them.
type importRule struct {
	ours   []string // directories relative to the module root; "." is the root
	third  []string // module path prefixes; "*" means any
	reason string
}

var (
	vocabulary = []string{"github.com/shopspring/decimal", "github.com/google/uuid"}
	prom       = "github.com/prometheus/client_golang"
	msgpack    = "github.com/vmihailenco/msgpack/v5"
)

// rules is DESIGN.md's import table. A package not listed fails the test:
// a new package needs a row here and in DESIGN.md.
var rules = map[string]importRule{
	".": {nil, nil,
		"the root is the domain vocabulary: it depends on decimal and uuid alone, so it compiles and tests without Badger, Raft or msgpack"},
	"crdt": {nil, []string{msgpack},
		"crdt holds pure data types every package may use; one edge back into the module would be a cycle"},
	"pricing": {[]string{"."}, nil,
		"pricing is pure functions over the domain types"},
	"ledger": {[]string{".", "crdt"}, []string{"github.com/dgraph-io/badger/v4", msgpack, prom},
		"the ledger owns storage; it must not know who calls it (tills, replication, central)"},
	"posbridge": {[]string{".", "pricing"}, []string{prom},
		"posbridge declares the interfaces it needs from the ledger; wiring them is node's job"},
	"replication": {[]string{".", "crdt"}, []string{msgpack, prom},
		"replication declares the interfaces it needs; wiring them is node's and central's job"},
	"central": {[]string{".", "crdt", "pricing", "ledger", "replication"}, []string{"github.com/hashicorp/raft", "github.com/hashicorp/memberlist", msgpack, prom},
		"central is head office; it never depends on the tills' API or a store node"},
	"node": {[]string{".", "crdt", "pricing", "ledger", "posbridge", "replication"}, []string{"*"},
		"a store node wires everything but central: a shop must run without head office's code"},
	"deploy": {nil, nil,
		"deploy holds configs, Prometheus rules and dashboards; its Go code is only the checks of them"},
	"cmd/storeline": {[]string{".", "crdt", "ledger", "node", "central", "replication", "internal/sample", "internal/tillsim", "internal/chain"}, []string{"*"},
		"main is thin: it runs node or central and the clients it needs, never posbridge or pricing directly"},
}

// pkgFiles maps each package directory (relative, "." for the root) to its
// non-test Go files.
func pkgFiles(t *testing.T) map[string][]string {
	t.Helper()
	pkgs := map[string][]string{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata") {
				return filepath.SkipDir
			}
			if path != "." {
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir // a module of its own (bench/)
				}
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			dir := filepath.ToSlash(filepath.Dir(path))
			pkgs[dir] = append(pkgs[dir], path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// TestImports enforces DESIGN.md's import table on every package's
// non-test files.
func TestImports(t *testing.T) {
	for dir, files := range pkgFiles(t) {
		if dir == "internal" || strings.HasPrefix(dir, "internal/") {
			continue // test harnesses may import anything
		}
		rule, ok := rules[dir]
		if !ok {
			t.Errorf("package %s is not in DESIGN.md's import table (\"Packages and what they may import\"); add a row there and in imports_test.go", dir)
			continue
		}
		for _, file := range files {
			f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if msg := rule.check(path); msg != "" {
					t.Errorf("forbidden edge %s -> %s (in %s): %s; %s", pkgName(dir), path, file, msg, rule.reason)
				}
			}
		}
	}
}

func (r importRule) check(path string) string {
	if !strings.Contains(strings.Split(path, "/")[0], ".") {
		return "" // standard library
	}
	if path == module || strings.HasPrefix(path, module+"/") {
		dir := "."
		if path != module {
			dir = strings.TrimPrefix(path, module+"/")
		}
		for _, o := range r.ours {
			if o == dir {
				return ""
			}
		}
		return "may import of ours only " + list(r.ours)
	}
	for _, p := range append(append([]string{}, vocabulary...), r.third...) {
		if p == "*" || path == p || strings.HasPrefix(path, p+"/") {
			return ""
		}
	}
	return "may import third-party only " + list(append(append([]string{}, vocabulary...), r.third...))
}

func pkgName(dir string) string {
	if dir == "." {
		return "storeline (root)"
	}
	return dir
}

func list(xs []string) string {
	if len(xs) == 0 {
		return "nothing"
	}
	names := make([]string, len(xs))
	for i, x := range xs {
		names[i] = pkgName(x)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// TestPackageDocs checks that every package has a package doc comment
// saying what it owns (STYLE.md: one doc.go per package; a command's
// comment is in main.go).
func TestPackageDocs(t *testing.T) {
	for dir, files := range pkgFiles(t) {
		documented := false
		for _, file := range files {
			f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
				documented = true
			}
		}
		if !documented {
			t.Errorf("package %s has no package doc comment (put one in %s/doc.go)", pkgName(dir), dir)
		}
	}
}

// TestImportRuleCheck shows that the table catches a forbidden edge.
func TestImportRuleCheck(t *testing.T) {
	for _, tc := range []struct {
		dir, path string
		ok        bool
	}{
		{".", "fmt", true},
		{".", "github.com/shopspring/decimal", true},
		{".", module + "/crdt", false},
		{"crdt", module, false},
		{"ledger", module + "/crdt", true},
		{"ledger", module + "/posbridge", false},
		{"posbridge", module + "/ledger", false},
		{"posbridge", "github.com/dgraph-io/badger/v4", false},
		{"node", module + "/central", false},
		{"node", module + "/posbridge", true},
	} {
		msg := rules[tc.dir].check(tc.path)
		if (msg == "") != tc.ok {
			t.Errorf("%s -> %s: check = %q, want allowed %v", tc.dir, tc.path, msg, tc.ok)
		}
	}
}
