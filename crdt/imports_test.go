package crdt_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports enforces DESIGN.md's import table for crdt: the standard
// library, decimal and msgpack, and nothing of ours. Everything else in the
// module may import crdt, so one edge the other way would be a cycle, and
// any I/O dependency would break the package's purity.
func TestImports(t *testing.T) {
	allowed := map[string]bool{
		"github.com/shopspring/decimal":     true,
		"github.com/vmihailenco/msgpack/v5": true,
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	hasDoc := false
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		if name == "doc.go" && f.Doc != nil {
			hasDoc = true
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			stdlib := !strings.Contains(strings.Split(path, "/")[0], ".")
			if !stdlib && !allowed[path] {
				t.Errorf("%s imports %q: crdt may import only the standard library, decimal and msgpack (DESIGN.md, \"Packages and what they may import\")", name, path)
			}
			for _, io := range []string{"os", "net", "net/http", "io/fs", "os/exec", "syscall"} {
				if path == io {
					t.Errorf("%s imports %q: crdt is pure and does no I/O", name, path)
				}
			}
		}
	}
	if !hasDoc {
		t.Errorf("doc.go has no package comment")
	}
	if _, err := os.Stat("doc.go"); err != nil {
		t.Errorf("crdt has no doc.go: %v", err)
	}
}
