package deploy_test

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// seriesLabels parses the text exposition format's sample lines into the
// label names each family's series carry, folding a histogram's or
// summary's _bucket, _sum and _count into their family and dropping le and
// quantile. Label values may hold braces and commas ("POST /v1/items/{sku}"),
// so they are read as quoted strings, not split on punctuation.
func seriesLabels(text string) map[string]map[string]bool {
	fams := families(text)
	out := map[string]map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, found := strings.Cut(line, "{")
		if !found {
			name, _, _ = strings.Cut(line, " ")
		}
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suf); ok {
				if typ := fams[base]; typ == "histogram" || typ == "summary" {
					name = base
				}
			}
		}
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		for found && rest != "" && rest[0] != '}' {
			label, after, ok := strings.Cut(rest, `="`)
			if !ok {
				break
			}
			i := 0
			for i < len(after) && after[i] != '"' {
				if after[i] == '\\' {
					i++
				}
				i++
			}
			if label != "le" && label != "quantile" {
				out[name][label] = true
			}
			rest = strings.TrimPrefix(after[min(i+1, len(after)):], ",")
		}
	}
	return out
}

// review19Labels returns the label names every node type exports per
// storeline_ family: a standalone node, a replicating node and central.
func review19Labels(t *testing.T) map[string]map[string]bool {
	t.Helper()
	centralText, nodeText := scrapeChain(t)
	labels := map[string]map[string]bool{}
	for _, text := range []string{centralText, nodeText, scrapeNode(t)} {
		for name, ls := range seriesLabels(text) {
			if labels[name] == nil {
				labels[name] = map[string]bool{}
			}
			for l := range ls {
				labels[name][l] = true
			}
		}
	}
	return labels
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// readmeLabels returns, for every storeline_ metric README.md names in
// full, the labels it gives in braces (empty when it never gives any).
// Central's constant label node is said once in prose ("labelled node"),
// not per metric, so it is not expected in braces.
func readmeLabels(text string) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, m := range regexp.MustCompile("`(storeline_[a-z0-9_]+)(\\{([a-z_,]*)\\})?`").FindAllStringSubmatch(text, -1) {
		if out[m[1]] == nil {
			out[m[1]] = map[string]bool{}
		}
		for _, l := range strings.Split(m[3], ",") {
			if l != "" {
				out[m[1]][l] = true
			}
		}
	}
	return out
}

// TestReview19ReadmeMetricLabels: every storeline_ metric README names in
// full carries exactly the labels README gives it (besides central's
// node), as exported by running nodes; a metric README names without
// braces carries none.
func TestReview19ReadmeMetricLabels(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	exported := review19Labels(t)
	checked := 0
	for name, want := range readmeLabels(string(readme)) {
		got, ok := exported[name]
		if !ok {
			continue // no series to compare (TestReadmeListsEveryMetric checks the name)
		}
		checked++
		delete(got, "node")
		if g, w := sortedKeys(got), sortedKeys(want); fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("README gives %s the labels %v; the nodes export it with %v", name, w, g)
		}
	}
	if checked < 30 {
		t.Fatalf("only %d README metrics compared", checked)
	}
}

// selector matches a metric name followed by a label matcher list.
var selector = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\{`)

// matcherLabels returns, for each metric name with a matcher list in
// expr, the label names it matches on; label_values(metric, label) counts
// its label too.
func matcherLabels(expr string) map[string][]string {
	out := map[string][]string{}
	for _, m := range regexp.MustCompile(`label_values\(\s*([a-zA-Z_][a-zA-Z0-9_]*)[^,]*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)`).FindAllStringSubmatch(expr, -1) {
		out[m[1]] = append(out[m[1]], m[2])
	}
	for _, loc := range selector.FindAllStringSubmatchIndex(expr, -1) {
		name := expr[loc[2]:loc[3]]
		rest := expr[loc[1]:]
		for {
			rest = strings.TrimLeft(rest, " \t\n,")
			if rest == "" || rest[0] == '}' {
				break
			}
			i := strings.IndexAny(rest, "=!")
			if i < 0 {
				break
			}
			out[name] = append(out[name], strings.TrimSpace(rest[:i]))
			q := strings.IndexByte(rest, '"')
			if q < 0 {
				break
			}
			j := q + 1
			for j < len(rest) && rest[j] != '"' {
				if rest[j] == '\\' {
					j++
				}
				j++
			}
			rest = rest[min(j+1, len(rest)):]
		}
	}
	return out
}

// TestReview19DeployLabelsExist: every label the rules and dashboards
// match on (name{label="..."}, label_values(name, label)) is a label the
// metric is exported with, or one Prometheus adds to every target (job,
// instance), so a renamed label cannot leave an alert silently empty.
func TestReview19DeployLabelsExist(t *testing.T) {
	var exprs []string
	for _, f := range []string{rulesFile, centralRulesFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		e, _ := ruleExprs(t, string(b))
		exprs = append(exprs, e...)
	}
	for _, f := range []string{dashboardFile, centralDashboardFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		exprs = append(exprs, dashboardExprs(t, f, b)...)
	}
	exported := review19Labels(t)
	dead := func(exprs []string) []string {
		var out []string
		for _, e := range exprs {
			for name, labels := range matcherLabels(e) {
				base := name
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(name, suf); ok && exported[b] != nil {
						base = b
					}
				}
				have, ok := exported[base]
				if !ok {
					continue // up, recorded series: not the nodes' (TestMetricNamesExist)
				}
				for _, l := range labels {
					if l != "job" && l != "instance" && l != "__name__" && !(l == "le" && base != name) && !have[l] {
						out = append(out, name+"{"+l+"}")
					}
				}
			}
		}
		sort.Strings(out)
		return out
	}
	if d := dead(exprs); len(d) > 0 {
		t.Errorf("the rules or dashboards match on labels no node exports: %v", d)
	}
	planted := []string{`rate(storeline_loyalty_reservations_total{outcom="ok"}[5m])`, `label_values(storeline_node_info, shop)`, `storeline_http_request_duration_seconds_bucket{route="POST /v1/items/{sku}", le="0.1"}`}
	if d := dead(planted); fmt.Sprint(d) != "[storeline_loyalty_reservations_total{outcom} storeline_node_info{shop}]" {
		t.Errorf("planted dead labels: found %v", d)
	}
}

// TestReview19SeriesLabelsParse: label values holding braces and commas
// do not cut the label list short.
func TestReview19SeriesLabelsParse(t *testing.T) {
	text := "# TYPE h histogram\nh_bucket{route=\"GET /v1/items/{sku}\",code=\"2,0\\\"0\",le=\"0.1\"} 1\nh_count{route=\"x\",code=\"200\"} 1\n# TYPE g gauge\ng 1\n"
	got := seriesLabels(text)
	if fmt.Sprint(sortedKeys(got["h"])) != "[code route]" || len(got["g"]) != 0 || got["h_bucket"] != nil {
		t.Errorf("parsed %v", got)
	}
}
