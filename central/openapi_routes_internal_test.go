package central

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/storeline/storeline"
)

// routePattern is a method-qualified net/http pattern ("GET /v1/items/{id}").
var routePattern = regexp.MustCompile(`^(GET|HEAD|POST|PUT|PATCH|DELETE) (/\S*)$`)

// apiRoute is a route pattern found in the package's source, with the
// role its registration asks for: "admin" or "viewer" through apiHandler's
// h helper (its write argument), "" when registered on the mux directly.
type apiRoute struct{ pattern, role string }

// routeCandidates returns what the package's own (non-test) Go files
// might register on the head-office API: every string expression that
// reads as a method-qualified pattern, a concatenation with a
// resource's Path expanded over resources. A candidate counts only if
// apiHandler's mux routes a request to it (servedPattern), so strings
// that are not routes drop out.
func routeCandidates(t *testing.T) []apiRoute {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	// strs evaluates a string expression: a literal, or a sum of literals
	// and X.Path, which takes every resource's path.
	var strs func(e ast.Expr) []string
	strs = func(e ast.Expr) []string {
		switch e := e.(type) {
		case *ast.BasicLit:
			if s, err := strconv.Unquote(e.Value); err == nil && e.Kind == token.STRING {
				return []string{s}
			}
		case *ast.SelectorExpr:
			if e.Sel.Name == "Path" {
				var out []string
				for _, r := range resources {
					out = append(out, r.Path)
				}
				return out
			}
		case *ast.BinaryExpr:
			if e.Op == token.ADD {
				var out []string
				for _, x := range strs(e.X) {
					for _, y := range strs(e.Y) {
						out = append(out, x+y)
					}
				}
				return out
			}
		case *ast.ParenExpr:
			return strs(e.X)
		}
		return nil
	}
	seen := map[string]string{}
	add := func(e ast.Expr, role string) {
		for _, s := range strs(e) {
			if !routePattern.MatchString(s) {
				continue
			}
			if _, ok := seen[s]; role != "" || !ok {
				seen[s] = role // an h call's role wins over a bare mention
			}
		}
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				// h(pattern, write, fn): the route helper of apiHandler.
				if id, ok := n.Fun.(*ast.Ident); ok && id.Name == "h" && len(n.Args) == 3 {
					if w, ok := n.Args[1].(*ast.Ident); ok && (w.Name == "true" || w.Name == "false") {
						role := "viewer"
						if w.Name == "true" {
							role = "admin"
						}
						add(n.Args[0], role)
					}
				}
			case *ast.BinaryExpr, *ast.BasicLit:
				add(n.(ast.Expr), "")
			}
			return true
		})
	}
	var out []apiRoute
	for p, role := range seen {
		out = append(out, apiRoute{p, role})
	}
	return out
}

var pathParam = regexp.MustCompile(`\{[^}]*\}`)

// servedPattern sends method and a concrete path made of template (each
// {param} filled in) to h with header, and returns the pattern the mux
// matched (set on the request by http.ServeMux; "" when none) and the
// answer's status.
func servedPattern(h http.Handler, method, template string, header http.Header) (string, int) {
	r := httptest.NewRequest(method, pathParam.ReplaceAllString(template, "x1"), nil)
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return r.Pattern, w.Code
}

// TestOpenAPIRoutesMatchAPI checks that every route the head-office API
// registers is in openapi.yaml with the same method and path (path
// parameters named alike), that every operation of openapi.yaml is a
// route it registers, and that the spec states each route's role: none
// for security: [], else admin for every method but GET, viewer for GET,
// unless the operation says otherwise with x-role. Requests carry no API
// key or a viewer's, so they stop at authorization and touch no state
// (the node is a zero Node).
func TestOpenAPIRoutesMatchAPI(t *testing.T) {
	const viewerKey = "viewer-key-for-route-test"
	n := &Node{keys: map[string]APIKey{storeline.TokenHash(viewerKey): {Name: "v", Role: RoleViewer}}}
	h := n.apiHandler()

	code := map[string]string{} // pattern → role
	for _, c := range routeCandidates(t) {
		m := routePattern.FindStringSubmatch(c.pattern)
		if got, _ := servedPattern(h, m[1], m[2], nil); got == c.pattern {
			code[c.pattern] = c.role
		}
	}
	if len(code) < 50 {
		t.Fatalf("found only %d registered routes (%v): the search for them is broken", len(code), code)
	}

	l := openapi3.NewLoader()
	doc, err := l.LoadFromData(openapiYAML)
	if err == nil {
		err = doc.Validate(l.Context)
	}
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	spec := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			spec[method+" "+path] = op
		}
	}
	for p := range code {
		if spec[p] == nil {
			t.Errorf("the head-office API registers %q, openapi.yaml has no such operation", p)
		}
	}
	for p := range spec {
		m := routePattern.FindStringSubmatch(p)
		if got, _ := servedPattern(h, m[1], m[2], nil); got != p {
			t.Errorf("openapi.yaml has %q, the API routes it to %q", p, got)
		}
	}

	viewer := http.Header{"Authorization": {"Bearer " + viewerKey}}
	for p, op := range spec {
		role, ok := code[p]
		if !ok {
			continue
		}
		m := routePattern.FindStringSubmatch(p)
		want := "viewer"
		switch {
		case op.Security != nil && len(*op.Security) == 0:
			want = ""
		case op.Extensions["x-role"] != nil:
			want, _ = op.Extensions["x-role"].(string)
		case m[1] != http.MethodGet:
			want = "admin"
		}
		if role != want {
			t.Errorf("%s: the API registers it for role %q, openapi.yaml says %q", p, role, want)
		}
		// What the server does, beyond how the source reads: no key is a
		// 401 on every route but the public ones; a viewer writing, 403.
		if _, st := servedPattern(h, m[1], m[2], nil); (st == http.StatusUnauthorized) != (role != "") {
			t.Errorf("%s: without a key the API answers %d (role %q)", p, st, role)
		}
		if role == "admin" {
			if _, st := servedPattern(h, m[1], m[2], viewer); st != http.StatusForbidden {
				t.Errorf("%s: a viewer's key gets %d, want 403", p, st)
			}
		}
	}
}
