package posbridge_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// routePattern is a method-qualified net/http pattern ("GET /v1/items/{sku}").
var routePattern = regexp.MustCompile(`^(GET|HEAD|POST|PUT|PATCH|DELETE) (/\S*)$`)

// patternLiterals returns every string literal of the package's own
// (non-test) Go files that reads as a method-qualified route pattern:
// the candidates for what the server registers. A candidate counts as a
// route only if the server's mux routes a request to it (servedPattern).
func patternLiterals(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	seen := map[string]bool{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && routePattern.MatchString(s) {
					seen[s] = true
				}
			}
			return true
		})
	}
	return slices.Sorted(func(yield func(string) bool) {
		for s := range seen {
			if !yield(s) {
				return
			}
		}
	})
}

var pathParam = regexp.MustCompile(`\{[^}]*\}`)

// servedPattern sends method and a concrete path made of template (each
// {param} filled in) to h, with header set as given, and returns the
// pattern the mux matched (set on the request by http.ServeMux; "" when
// none) and the answer's status.
func servedPattern(h http.Handler, method, template string, header http.Header) (string, int) {
	r := httptest.NewRequest(method, pathParam.ReplaceAllString(template, "x1"), nil)
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return r.Pattern, w.Code
}

// TestOpenAPIRoutesMatchServer checks that every route the server
// registers is in openapi.yaml with the same method and path (path
// parameters named alike), and every operation of openapi.yaml is a route
// the server registers; and that the spec states each route's
// credentials: none for the public routes, the X-Session header required
// exactly where the server wants a seller's session.
func TestOpenAPIRoutesMatchServer(t *testing.T) {
	e := newEnv(t)
	specRouter(t) // loads and validates specDoc
	h := e.srv.Handler()

	code := map[string]bool{}
	for _, p := range patternLiterals(t) {
		m := routePattern.FindStringSubmatch(p)
		if got, _ := servedPattern(h, m[1], m[2], nil); got == p {
			code[p] = true
		}
	}
	if len(code) < 10 {
		t.Fatalf("found only %d registered routes (%v): the search for them is broken", len(code), code)
	}

	spec := map[string]*openapi3.Operation{}
	for path, item := range specDoc.Paths.Map() {
		for method, op := range item.Operations() {
			spec[method+" "+path] = op
		}
	}
	for p := range code {
		if spec[p] == nil {
			t.Errorf("the server registers %q, openapi.yaml has no such operation", p)
		}
	}
	for p := range spec {
		m := routePattern.FindStringSubmatch(p)
		if got, _ := servedPattern(h, m[1], m[2], nil); got != p {
			t.Errorf("openapi.yaml has %q, the server routes it to %q", p, got)
		}
	}

	// Credentials: with the terminal's token but no session, a route that
	// needs a seller answers 401 before looking at the request; the spec
	// must require X-Session there and nowhere else.
	tok := http.Header{"Authorization": {"Bearer " + tokenT1}}
	for p, op := range spec {
		if !code[p] {
			continue
		}
		m := routePattern.FindStringSubmatch(p)
		public := op.Security != nil && len(*op.Security) == 0
		if _, st := servedPattern(h, m[1], m[2], nil); (st != http.StatusUnauthorized) != public {
			t.Errorf("%s: without a token the server answers %d; openapi.yaml says public=%v", p, st, public)
		}
		if public {
			continue
		}
		sessionRequired := false
		for _, pr := range op.Parameters {
			if pr.Value != nil && pr.Value.In == "header" && pr.Value.Name == "X-Session" && pr.Value.Required {
				sessionRequired = true
			}
		}
		_, st := servedPattern(h, m[1], m[2], tok)
		if needsSession := st == http.StatusUnauthorized; needsSession != sessionRequired {
			t.Errorf("%s: with a terminal token and no session the server answers %d; openapi.yaml requires X-Session: %v", p, st, sessionRequired)
		}
	}
}
