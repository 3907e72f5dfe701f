package deploy_test

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// readmeMetrics returns the metric names README.md documents: every
// backticked storeline_ name (labels in braces dropped), and for every
// backticked abbreviation (`_suffix`, after a full name in the same
// paragraph) the names it may stand for: each prefix of that full name,
// cut at an underscore, followed by the suffix.
func readmeMetrics(text string) (full map[string]bool, abbrev map[string][]string) {
	full, abbrev = map[string]bool{}, map[string][]string{}
	tick := regexp.MustCompile("`([^`\n]+)`")
	for _, para := range strings.Split(text, "\n\n") {
		last := ""
		for _, m := range tick.FindAllStringSubmatch(para, -1) {
			tok, _, _ := strings.Cut(strings.TrimSpace(m[1]), "{")
			switch {
			case strings.Contains(tok, ":") || strings.ContainsAny(tok, " ()"):
				// recording rules, PromQL, prose
			case strings.HasPrefix(tok, "storeline_"):
				full[tok], last = true, tok
			case strings.HasPrefix(tok, "_") && last != "":
				for i := len("storeline"); i < len(last); i++ {
					if last[i] == '_' {
						abbrev[tok] = append(abbrev[tok], last[:i]+tok)
					}
				}
			}
		}
	}
	return full, abbrev
}

// TestReadmeListsEveryMetric: README.md names every storeline_ metric a
// store node (standalone or replicating) and a central node export, and
// names none that neither exports.
func TestReadmeListsEveryMetric(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	centralText, nodeText := scrapeChain(t)
	fams := families(centralText)
	for _, text := range []string{nodeText, scrapeNode(t)} {
		for name, typ := range families(text) {
			fams[name] = typ
		}
	}
	full, abbrev := readmeMetrics(string(readme))
	documented := map[string]bool{}
	for name := range full {
		documented[name] = true
		if !exported(fams, name) {
			t.Errorf("README names %s, which no node exports", name)
		}
	}
	for tok, names := range abbrev {
		found := false
		for _, name := range names {
			documented[name] = true
			found = found || exported(fams, name)
		}
		if !found {
			t.Errorf("README abbreviates %s, which stands for no exported metric (%v)", tok, names)
		}
	}
	var missing []string
	for name := range fams {
		if strings.HasPrefix(name, "storeline_") && !documented[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("README's metrics lists lack metrics the nodes export: %v", missing)
	}
}

// TestReadmeMetricsParse: the README parser expands abbreviations and
// skips recording rules, so the check above is not vacuous.
func TestReadmeMetricsParse(t *testing.T) {
	full, abbrev := readmeMetrics("Metrics: `storeline_central_raft_state{state}`, `_raft_term`, `instance:storeline_x:rate5m`.\n\n`_orphan`")
	if !full["storeline_central_raft_state"] || len(full) != 1 {
		t.Errorf("full = %v", full)
	}
	if got := abbrev["_raft_term"]; !strings.Contains(strings.Join(got, " "), "storeline_central_raft_term") {
		t.Errorf("_raft_term expands to %v", got)
	}
	if _, ok := abbrev["_orphan"]; ok {
		t.Errorf("an abbreviation without a full name before it in its paragraph expanded: %v", abbrev)
	}
}
