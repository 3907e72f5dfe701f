package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// rule is one rule of a rules file: an alert or a recording rule.
type rule struct {
	kind, name, expr string // kind is "alert" or "record"
}

// ruleGroup is one group of a rules file, its rules in file order.
type ruleGroup struct {
	name  string
	rules []rule
}

// ruleGroups parses the groups of a rules file as the files here write
// them: "- name:" opens a group, "- record:" or "- alert:" a rule, and
// the rule's "expr:" follows (inline or a block scalar).
func ruleGroups(t *testing.T, text string) []ruleGroup {
	t.Helper()
	var groups []ruleGroup
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		trim := strings.TrimSpace(lines[i])
		if strings.HasPrefix(trim, "#") {
			continue
		}
		if v, ok := strings.CutPrefix(trim, "- name:"); ok {
			groups = append(groups, ruleGroup{name: strings.TrimSpace(v)})
			continue
		}
		item := strings.TrimPrefix(trim, "- ")
		for _, kind := range []string{"record", "alert"} {
			if v, ok := strings.CutPrefix(item, kind+":"); ok && item != trim {
				if len(groups) == 0 {
					t.Fatalf("%s %s outside any group", kind, strings.TrimSpace(v))
				}
				g := &groups[len(groups)-1]
				g.rules = append(g.rules, rule{kind: kind, name: strings.TrimSpace(v)})
			}
		}
		v, ok := strings.CutPrefix(item, "expr:")
		if !ok {
			continue
		}
		if len(groups) == 0 || len(groups[len(groups)-1].rules) == 0 {
			t.Fatalf("expr: outside any rule: %s", lines[i])
		}
		g := &groups[len(groups)-1]
		r := &g.rules[len(g.rules)-1]
		v = strings.TrimSpace(v)
		if v != "|" && v != ">" {
			r.expr = v
			continue
		}
		indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
		var b strings.Builder
		for i+1 < len(lines) {
			next := lines[i+1]
			if strings.TrimSpace(next) != "" && len(next)-len(strings.TrimLeft(next, " ")) <= indent {
				break
			}
			b.WriteString(next + "\n")
			i++
		}
		r.expr = b.String()
	}
	if len(groups) == 0 {
		t.Fatalf("no groups in the rules file")
	}
	return groups
}

// foreignReads returns, for every rule that reads a series recorded in
// another group or later in its own group, what it reads and where that
// is recorded. A group's rules run in order, so a rule sees the series
// its group recorded earlier in the same evaluation; groups run
// concurrently, so a series of another group is this evaluation's or the
// previous one's at random (and one recorded later in the group is always
// the previous one's).
func foreignReads(groups []ruleGroup) []string {
	recordedIn := map[string]string{}
	for _, g := range groups {
		for _, r := range g.rules {
			if r.kind == "record" {
				recordedIn[r.name] = g.name
			}
		}
	}
	var out []string
	for _, g := range groups {
		before := map[string]bool{}
		for _, r := range g.rules {
			_, recorded := namesIn(r.expr)
			seen := map[string]bool{}
			for _, name := range recorded {
				where, ok := recordedIn[name]
				if !ok || before[name] || seen[name] {
					continue // not a rule of this file (TestCentralMetricNamesExist catches those), or fine
				}
				seen[name] = true
				if where == g.name {
					out = append(out, fmt.Sprintf("%s %s (group %s) reads %s, recorded after it in the same group", r.kind, r.name, g.name, name))
				} else {
					out = append(out, fmt.Sprintf("%s %s (group %s) reads %s, recorded in group %s", r.kind, r.name, g.name, name, where))
				}
			}
			if r.kind == "record" {
				before[r.name] = true
			}
		}
	}
	return out
}

// TestRulesReadOwnGroup: every rule of both rules files (their alerts
// above all) reads only series recorded earlier in its own group, as the
// files' comments on their groups require: an alert's $value and its for:
// then follow this evaluation's recorded series, not the previous one's.
func TestRulesReadOwnGroup(t *testing.T) {
	for _, file := range []string{centralRulesFile, rulesFile} {
		rulesReadOwnGroup(t, file)
	}
	plantedForeignReads(t)
}

func rulesReadOwnGroup(t *testing.T, file string) {
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	groups := ruleGroups(t, string(text))
	n := 0
	for _, g := range groups {
		n += len(g.rules)
		for _, r := range g.rules {
			if r.expr == "" {
				t.Errorf("%s %s (group %s): no expr parsed", r.kind, r.name, g.name)
			}
		}
	}
	if n != strings.Count(string(text), "- record:")+strings.Count(string(text), "- alert:") {
		t.Errorf("parsed %d rules in %d groups; the file has more", n, len(groups))
	}
	for _, f := range foreignReads(groups) {
		t.Errorf("%s: %s", file, f)
	}
}

func plantedForeignReads(t *testing.T) {
	// A planted alert reading another group's series, and a rule reading
	// its group's series before the group records it, are caught.
	planted := ruleGroups(t, `groups:
  - name: a
    rules:
      - record: job:x:sum
        expr: sum by (job) (x)
      - alert: EarlyRead
        expr: |
          job:y:sum > 0
          and job:x:sum > 0
      - record: job:y:sum
        expr: sum by (job) (y)
  - name: b
    rules:
      - alert: OtherGroup
        expr: job:x:sum > 0
`)
	want := []string{
		"alert EarlyRead (group a) reads job:y:sum, recorded after it in the same group",
		"alert OtherGroup (group b) reads job:x:sum, recorded in group a",
	}
	if got := foreignReads(planted); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("planted reads: found\n%q\nwant\n%q", got, want)
	}
}

// templateVar matches a Grafana template variable in a query.
var templateVar = regexp.MustCompile(`\$(\{[a-zA-Z_]+\}|[a-zA-Z_]+)`)

// promQL returns a dashboard query as PromQL: $__rate_interval becomes
// 5m, other variables (label matchers' values) .*.
func promQL(q string) string {
	return templateVar.ReplaceAllStringFunc(q, func(v string) string {
		if strings.Trim(v, "${}") == "__rate_interval" {
			return "5m"
		}
		return ".*"
	})
}

// panelQueries returns both dashboards' PromQL queries (template
// variables' label_values() definitions left out), as written.
func panelQueries(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, name := range []string{dashboardFile, centralDashboardFile} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range dashboardExprs(t, name, b) {
			if !strings.HasPrefix(strings.TrimSpace(q), "label_values(") {
				out[name] = append(out[name], q)
			}
		}
	}
	return out
}

// TestDashboardQueriesParse: promtool accepts every panel query of both
// dashboards (template variables substituted) as a rule expression.
func TestDashboardQueriesParse(t *testing.T) {
	bin := promtool(t)
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboards\n    rules:\n")
	n := 0
	for _, name := range []string{dashboardFile, centralDashboardFile} {
		for _, q := range panelQueries(t)[name] {
			n++
			e, _ := json.Marshal(promQL(q)) // a JSON string is a YAML double-quoted scalar
			fmt.Fprintf(&b, "      # %s\n      - record: dashboard_query_%d\n        expr: %s\n", name, n, e)
		}
	}
	path := filepath.Join(t.TempDir(), "dashboards.rules.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules on the dashboards' queries: %v\n%s\n%s", err, out, b.String())
	}
}

// timeMinus matches "time() -", the start of an age computed from a
// Unix-time gauge.
var timeMinus = regexp.MustCompile(`time\(\)\s*-\s*`)

// guardedOperand is a parenthesized operand that drops 0 first.
var guardedOperand = regexp.MustCompile(`^\(.*>\s*0\s*\)$`)

// operand returns the operand at the start of s: a parenthesized
// expression, or a name with what belongs to it (a call's or an
// aggregation's parentheses and by/without clause, label matchers, a
// range).
func operand(s string) string {
	i := 0
	if m := nameToken.FindStringIndex(s); m != nil && m[0] == 0 {
		i = m[1]
	}
	for {
		j := i
		for j < len(s) && s[j] == ' ' {
			j++
		}
		if w := nameToken.FindString(s[j:]); (w == "by" || w == "without") && i > 0 {
			i = j + len(w)
			continue
		}
		if j == len(s) || strings.IndexByte("({[", s[j]) < 0 {
			return s[:i]
		}
		depth, quoted := 0, false
		for i = j; i < len(s); i++ {
			c := s[i]
			switch {
			case quoted && c == '\\':
				i++
			case c == '"':
				quoted = !quoted
			case quoted:
			case strings.IndexByte("({[", c) >= 0:
				depth++
			case strings.IndexByte(")}]", c) >= 0:
				depth--
			}
			if depth == 0 {
				i++
				break
			}
		}
	}
}

// unguardedAges returns the operands of "time() - x" in expr that read a
// *_timestamp_seconds series without dropping 0 first. Such gauges are 0
// until the event first happens (a store node's
// storeline_replication_last_pull_timestamp_seconds until its first long
// poll returns, up to 25 s after every start), and time() - 0 is some
// 1.8e9 s: a panel must show nothing for them instead, as
// "time() - (x > 0)" does. (Alerts may differ: StorelineShopNotPulling
// computes the age only of a non-zero gauge but also fires, with its own
// wording, on the 0, so that a node that never pulls fires.)
func unguardedAges(expr string) []string {
	var out []string
	for _, loc := range timeMinus.FindAllStringIndex(expr, -1) {
		op := operand(expr[loc[1]:])
		if strings.Contains(op, "_timestamp_seconds") && !guardedOperand.MatchString(op) {
			out = append(out, op)
		}
	}
	return out
}

// TestDashboardAgesIgnoreZero: no panel subtracts a *_timestamp_seconds
// gauge that is still 0 (never happened) from time(); and promtool
// evaluates each such panel query, with one shop's gauge 0 and another's
// a minute old, to that one shop's minute.
func TestDashboardAgesIgnoreZero(t *testing.T) {
	queries := panelQueries(t)
	var ages []string
	for _, name := range []string{dashboardFile, centralDashboardFile} {
		for _, q := range queries[name] {
			if !timeMinus.MatchString(q) {
				continue
			}
			for _, op := range unguardedAges(q) {
				t.Errorf("%s: the query %s subtracts %s from time() without dropping 0 (never happened): write time() - (%s > 0)", name, q, op, op)
			}
			if strings.Contains(q, "_timestamp_seconds") {
				ages = append(ages, q)
			}
		}
	}
	if len(ages) == 0 {
		t.Fatalf("no panel computes an age from a _timestamp_seconds gauge: the check is vacuous")
	}
	// Planted: the check catches an unguarded age, a comparison of the
	// age rather than of the gauge, and an unguarded aggregation (a
	// parenthesis in a label value does not end it); a guarded one passes.
	for _, q := range []string{
		`time() - store:storeline_replication_last_pull_timestamp_seconds:max{store=~"$store"}`,
		`time() - store:storeline_replication_last_pull_timestamp_seconds:max{store=~"$store"} > 0`,
		`time() - max by (store) (storeline_replication_last_pull_timestamp_seconds{store=~"a(b)"})`,
	} {
		if len(unguardedAges(q)) != 1 {
			t.Errorf("planted %s: not caught", q)
		}
	}
	if got := unguardedAges(`time() - (max by (store) (storeline_replication_last_pull_timestamp_seconds{store=~"a)"}) > 0)`); len(got) != 0 {
		t.Errorf("planted guarded query caught: %q", got)
	}

	bin := promtool(t)
	for _, q := range ages {
		ms, rs := namesIn(q)
		names := append(ms, rs...)
		if len(names) != 1 {
			continue // a join: the inputs below would not describe it
		}
		e, _ := json.Marshal(promQL(q))
		test := fmt.Sprintf(`evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # never happened since the exporter started
      - series: '%[1]s{store="shop-1"}'
        values: '0x5'
      - series: '%[1]s{store="shop-2"}'
        values: '60x5'
    promql_expr_test:
      - expr: %[2]s
        eval_time: 2m
        exp_samples:
          - labels: '{store="shop-2"}'
            value: 60
`, names[0], e)
		path := filepath.Join(t.TempDir(), "age.test.yml")
		if err := os.WriteFile(path, []byte(test), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, "test", "rules", path).CombinedOutput(); err != nil {
			t.Errorf("promtool test rules of the panel query %s: %v\n%s", q, err, out)
		}
	}
}
