// Package docscheck_test keeps README.md's endpoint tables and alert lists
// true to the code: the HTTP endpoints it names against the OpenAPI specs
// and the routers, and the alerts it names against deploy/'s rules. The
// metrics README lists are checked in deploy (readme_test.go and
// review19_docs_test.go), against running nodes.
package docscheck_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

const root = "../.."

func readFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// pathParams makes routes comparable whatever their parameters are named:
// README, the specs and the routers may call one {id} and another {sku}.
var pathParams = regexp.MustCompile(`\{[^}/]*\}`)

func normalize(method, path string) string {
	return method + " " + pathParams.ReplaceAllString(path, "{}")
}

// specOps returns the operations of an OpenAPI file, normalized.
func specOps(t *testing.T, rel string) map[string]bool {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	ops := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			ops[normalize(method, path)] = true
		}
	}
	if len(ops) < 10 {
		t.Fatalf("%s: only %d operations", rel, len(ops))
	}
	return ops
}

var routeLiteral = regexp.MustCompile(`^(GET|HEAD|POST|PUT|PATCH|DELETE) (/\S*)$`)

// sourceRoutes returns the method-qualified route patterns written as
// string literals in the non-test Go files of dir, and "POST " + each
// string constant named Path* (central's loyalty calls are registered as
// "POST "+path).
func sourceRoutes(t *testing.T, dir string) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if s, err := strconv.Unquote(n.Value); err == nil && n.Kind == token.STRING {
					// "GET /v1/" + res.Path is a prefix, not a route.
					if m := routeLiteral.FindStringSubmatch(s); m != nil && !strings.HasSuffix(m[2], "/") {
						out[normalize(m[1], m[2])] = true
					}
				}
			case *ast.ValueSpec:
				for i, id := range n.Names {
					if strings.HasPrefix(id.Name, "Path") && i < len(n.Values) {
						if lit, ok := n.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							if s, err := strconv.Unquote(lit.Value); err == nil && strings.HasPrefix(s, "/") {
								out[normalize("POST", s)] = true
							}
						}
					}
				}
			}
			return true
		})
	}
	return out
}

// readmeEndpoint matches a backticked endpoint: one or more methods
// joined by "/" ("PUT/GET /v1/recipes/{item}"), then a path, which may
// wrap onto the next line.
var readmeEndpoint = regexp.MustCompile("`((?:GET|HEAD|POST|PUT|PATCH|DELETE)(?:/(?:GET|HEAD|POST|PUT|PATCH|DELETE))*)\\s+(/[^`\\s]*)`")

// readmeEndpoints returns every endpoint README.md names with a method,
// normalized, mapped to the line it is on. A query string is dropped,
// an optional tail ("/v1/documents[/{id}]") stands for both paths, and
// templates README does not spell out ("{collection}", "...") are left
// to the collection check.
func readmeEndpoints(text string) map[string]int {
	out := map[string]int{}
	for _, m := range readmeEndpoint.FindAllStringSubmatchIndex(text, -1) {
		methods, path := text[m[2]:m[3]], text[m[4]:m[5]]
		line := strings.Count(text[:m[0]], "\n") + 1
		path, _, _ = strings.Cut(path, "?")
		if strings.Contains(path, "{collection}") || strings.Contains(path, "...") || strings.Contains(path, "…") {
			continue
		}
		paths := []string{path}
		if base, opt, ok := strings.Cut(path, "["); ok {
			paths = []string{base, base + strings.TrimSuffix(opt, "]")}
		}
		for _, method := range strings.Split(methods, "/") {
			for _, p := range paths {
				out[normalize(method, p)] = line
			}
		}
	}
	return out
}

// known returns every endpoint the code serves: both OpenAPI specs (kept
// equal to their routers by posbridge's and central's route tests) and the
// routes no spec covers (the node's admin API, central's admin listener,
// replication and its loyalty calls).
func known(t *testing.T) (spec, other map[string]bool) {
	spec = specOps(t, "posbridge/openapi.yaml")
	for op := range specOps(t, "central/openapi.yaml") {
		spec[op] = true
	}
	other = map[string]bool{}
	for _, dir := range []string{"node", "replication", "central"} {
		for op := range sourceRoutes(t, dir) {
			if !spec[op] {
				other[op] = true
			}
		}
	}
	return spec, other
}

// TestReview19ReadmeEndpointsExist: every endpoint README names, with the
// method it names, is served: in an OpenAPI spec or a router.
func TestReview19ReadmeEndpointsExist(t *testing.T) {
	readme := readFile(t, "README.md")
	spec, other := known(t)
	eps := readmeEndpoints(readme)
	if len(eps) < 50 {
		t.Fatalf("only %d endpoints found in README.md: is the parser broken?", len(eps))
	}
	var bad []string
	for op, line := range eps {
		if !spec[op] && !other[op] {
			bad = append(bad, "README.md:"+strconv.Itoa(line)+": "+op)
		}
	}
	sort.Strings(bad)
	for _, b := range bad {
		t.Errorf("%s is served by no route or spec", b)
	}
}

// TestReview19RoutesWithoutSpecInReadme: every route no OpenAPI spec
// documents (admin, metrics, health, replication) is named in README,
// the only place that documents it. /internal/v1/ (node-to-node
// forwarding) is left out on purpose and README says so.
func TestReview19RoutesWithoutSpecInReadme(t *testing.T) {
	readme := readFile(t, "README.md")
	_, other := known(t)
	if len(other) < 8 {
		t.Fatalf("only %d routes outside the specs found: %v", len(other), other)
	}
	eps := readmeEndpoints(readme)
	var missing []string
	for op := range other {
		if _, ok := eps[op]; !ok {
			missing = append(missing, op)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("routes documented neither in an OpenAPI spec nor in README.md: %v", missing)
	}
}

// TestReview19ReadmeCollections: the head-office table's collection list
// is exactly the collections central's spec serves with PUT, GET and
// DELETE by ID.
func TestReview19ReadmeCollections(t *testing.T) {
	readme := readFile(t, "README.md")
	row := regexp.MustCompile("(?m)^\\| `PUT/GET/DELETE /v1/\\{collection\\}/\\{id\\}`[^|]*\\| ([a-z_, ]+) \\(").FindStringSubmatch(readme)
	if row == nil {
		t.Fatal("README.md has no head-office row for PUT/GET/DELETE /v1/{collection}/{id}")
	}
	documented := map[string]bool{}
	for _, c := range strings.Split(row[1], ",") {
		documented[strings.TrimSpace(c)] = true
	}
	ops := specOps(t, "central/openapi.yaml")
	served := map[string]bool{}
	for op := range ops {
		method, path, _ := strings.Cut(op, " ")
		c, ok := strings.CutSuffix(strings.TrimPrefix(path, "/v1/"), "/{}")
		if method != "DELETE" || !ok || strings.Contains(c, "/") {
			continue
		}
		if ops["PUT /v1/"+c+"/{}"] && ops["GET /v1/"+c+"/{}"] && ops["GET /v1/"+c] {
			served[c] = true
		}
	}
	for c := range documented {
		if !served[c] {
			t.Errorf("README lists collection %q, which central's spec does not serve with PUT/GET/DELETE by ID and a list", c)
		}
	}
	for c := range served {
		if !documented[c] {
			t.Errorf("central serves collection %q, which README's head-office table does not list", c)
		}
	}
}

// TestReview19ReadmeNamesEveryAlert: the alerts README names are the
// alerts deploy/'s rules define, both ways.
func TestReview19ReadmeNamesEveryAlert(t *testing.T) {
	readme := readFile(t, "README.md")
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`(Storeline[A-Z][A-Za-z]+)`").FindAllStringSubmatch(readme, -1) {
		documented[m[1]] = true
	}
	defined := map[string]bool{}
	alert := regexp.MustCompile(`(?m)^\s*- alert:\s*(\S+)\s*$`)
	for _, f := range []string{"deploy/prometheus/storeline-node.rules.yml", "deploy/prometheus/storeline-central.rules.yml"} {
		for _, m := range alert.FindAllStringSubmatch(readFile(t, f), -1) {
			defined[m[1]] = true
		}
	}
	if len(defined) < 20 {
		t.Fatalf("only %d alerts found in the rules files", len(defined))
	}
	for a := range documented {
		if !defined[a] {
			t.Errorf("README names alert %s, which no rules file defines", a)
		}
	}
	for a := range defined {
		if !documented[a] {
			t.Errorf("the rules define alert %s, which README does not name", a)
		}
	}
}

// TestReview19ReadmeEndpointParse: the parser finds what the tables hold,
// so the checks above are not vacuous.
func TestReview19ReadmeEndpointParse(t *testing.T) {
	got := readmeEndpoints("| `PUT/GET /v1/recipes/{item}` | x |\n`GET /v1/documents[/{id}]`, `GET /v1/stock?store=&item=`, `GET\n/v1/loyalty/points/...`, `PUT/GET/DELETE /v1/{collection}/{id}`")
	want := []string{"GET /v1/documents", "GET /v1/documents/{}", "GET /v1/recipes/{}", "GET /v1/stock", "PUT /v1/recipes/{}"}
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if strings.Join(keys, "|") != strings.Join(want, "|") {
		t.Errorf("parsed %v, want %v", keys, want)
	}
}
