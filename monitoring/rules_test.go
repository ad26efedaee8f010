package monitoring

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// promtool is Debian's (package prometheus), which .ci/deps installs.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (.ci/deps installs Debian's prometheus package): ", err)
	}
	return p
}

// ruleFile is the part of a Prometheus rule file the tests read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func ruleFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("rules/*.rules.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files in rules/: %v", err)
	}
	return files
}

func readRules(t *testing.T, path string) []rule {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// TestRulesCheck: promtool accepts every rule file (syntax, PromQL,
// templates), and the example Prometheus config with them.
func TestRulesCheck(t *testing.T) {
	pt := promtool(t)
	out, err := exec.Command(pt, append([]string{"check", "rules"}, ruleFiles(t)...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if out, err := exec.Command(pt, "check", "config", "prometheus.yml").CombinedOutput(); err != nil {
		t.Fatalf("promtool check config prometheus.yml: %v\n%s", err, out)
	}
}

// TestRunbooks: every alert has a severity, a summary, a description
// and a runbook, and names are unique.
func TestRunbooks(t *testing.T) {
	seen := map[string]string{}
	for _, f := range ruleFiles(t) {
		for _, r := range readRules(t, f) {
			if r.Alert == "" {
				continue
			}
			if other, dup := seen[r.Alert]; dup {
				t.Errorf("%s: alert %s is also in %s", f, r.Alert, other)
			}
			seen[r.Alert] = f
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: %s: severity %q, want critical or warning", f, r.Alert, s)
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: %s has no %s annotation", f, r.Alert, a)
				}
			}
		}
	}
}

// unitTest is the part of a promtool unit test file the tests read.
type unitTest struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		AlertRuleTest []struct {
			EvalTime  string `yaml:"eval_time"`
			AlertName string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func testFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("tests/*.test.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no promtool tests in tests/: %v", err)
	}
	return files
}

// TestEveryAlertTested: each alert has a promtool case in which it fires
// and one in which it does not.
func TestEveryAlertTested(t *testing.T) {
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, f := range testFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var ut unitTest
		if err := yaml.Unmarshal(b, &ut); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, tc := range ut.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					fires[a.AlertName] = true
				} else {
					quiet[a.AlertName] = true
				}
			}
		}
	}
	for _, f := range ruleFiles(t) {
		for _, r := range readRules(t, f) {
			if r.Alert == "" {
				continue
			}
			if !fires[r.Alert] {
				t.Errorf("%s: no promtool test in which %s fires", f, r.Alert)
			}
			if !quiet[r.Alert] {
				t.Errorf("%s: no promtool test in which %s stays quiet", f, r.Alert)
			}
		}
	}
}

// TestRulesUnit runs promtool's unit tests (tests/*.test.yml): each
// alert against recorded series, with the labels and the rendered
// summary and description it must fire with. The runbook annotations
// are long static texts (TestRunbooks checks they are there; promtool
// check rules, their templates): the tests run against a copy of the
// rules without them, so the expected alerts need not repeat them.
func TestRulesUnit(t *testing.T) {
	pt := promtool(t)
	dir := t.TempDir()
	for _, f := range ruleFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		stripped, err := withoutAnnotation(b, "runbook")
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), stripped, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range testFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var doc yaml.Node
			if err := yaml.Unmarshal(b, &doc); err != nil {
				t.Fatal(err)
			}
			// rule_files: ../rules/X.rules.yml becomes the stripped copy.
			files := mapValue(doc.Content[0], "rule_files")
			if files == nil || len(files.Content) == 0 {
				t.Fatal("no rule_files")
			}
			for _, n := range files.Content {
				if _, err := os.Stat(filepath.Join("tests", n.Value)); err != nil {
					t.Fatalf("rule_files: %v", err)
				}
				n.Value = filepath.Join(dir, filepath.Base(n.Value))
			}
			out, err := yaml.Marshal(&doc)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, filepath.Base(f))
			if err := os.WriteFile(p, out, 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := exec.Command(pt, "test", "rules", p).CombinedOutput()
			if err != nil {
				t.Fatalf("promtool test rules %s: %v\n%s", f, err, res)
			}
		})
	}
}

// withoutAnnotation returns the rule file b without the named annotation
// on any rule.
func withoutAnnotation(b []byte, name string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	groups := mapValue(doc.Content[0], "groups")
	if groups == nil {
		return nil, fmt.Errorf("no groups")
	}
	for _, g := range groups.Content {
		rules := mapValue(g, "rules")
		if rules == nil {
			continue
		}
		for _, r := range rules.Content {
			ann := mapValue(r, "annotations")
			if ann == nil {
				continue
			}
			for i := 0; i+1 < len(ann.Content); i += 2 {
				if ann.Content[i].Value == name {
					ann.Content = slices.Delete(ann.Content, i, i+2)
					break
				}
			}
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}

// mapValue is the value of key in the YAML mapping m, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
