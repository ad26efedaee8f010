package monitoring

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/google/go-cmp/cmp"
)

// The names of PromQL's functions, aggregations and keywords (Prometheus
// 2.42's, which Debian ships), and Grafana's query helpers: an
// identifier that is none of these is a metric name.
var (
	promqlFunctions = words(`abs absent absent_over_time avg_over_time ceil changes clamp clamp_max clamp_min
		count_over_time days_in_month day_of_month day_of_week day_of_year delta deriv exp floor
		histogram_count histogram_sum histogram_fraction histogram_quantile holt_winters hour idelta
		increase irate label_join label_replace last_over_time ln log10 log2 mad_over_time
		max_over_time min_over_time minute month predict_linear present_over_time quantile_over_time
		rate resets round scalar sgn sort sort_desc sqrt stddev_over_time stdvar_over_time
		sum_over_time time timestamp vector year acos acosh asin asinh atan atanh cos cosh deg pi rad
		sin sinh tan tanh`)
	promqlAggregations = words(`sum min max avg group stddev stdvar count count_values bottomk topk quantile`)
	promqlKeywords     = words(`and or unless bool offset atan2 inf nan start end`)
	promqlModifiers    = words(`by without on ignoring group_left group_right`)
	grafanaFunctions   = words(`label_values query_result`)
)

func words(s string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(s) {
		m[w] = true
	}
	return m
}

// selector is one use of a metric in a query: its name and the label
// names its matchers use.
type selector struct {
	Metric string
	Labels []string
}

// queryNames is what a PromQL expression names: the metrics with their
// matchers' labels, and the labels of by, without, on, ignoring and
// group_left/right clauses (which belong to no one metric).
type queryNames struct {
	Selectors []selector
	Grouping  []string
}

// parseQuery lexes a PromQL expression (with Grafana's $variables) far
// enough to find every metric and label name it uses. It is not a
// parser: it does not check the expression (promtool does, and Grafana
// would), and reports only what it cannot lex.
func parseQuery(q string) (queryNames, error) {
	var out queryNames
	rs := []rune(q)
	i := 0
	skipSpace := func() {
		for i < len(rs) && unicode.IsSpace(rs[i]) {
			i++
		}
	}
	ident := func() string {
		start := i
		for i < len(rs) && (rs[i] == '_' || rs[i] == ':' || unicode.IsLetter(rs[i]) || (i > start && unicode.IsDigit(rs[i]))) {
			i++
		}
		return string(rs[start:i])
	}
	skipString := func() error {
		quote := rs[i]
		for i++; i < len(rs); i++ {
			if rs[i] == '\\' && quote != '`' {
				i++
				continue
			}
			if rs[i] == quote {
				i++
				return nil
			}
		}
		return fmt.Errorf("unterminated string in %q", q)
	}
	// matchers reads {label op "value", ...} and returns the labels.
	matchers := func() ([]string, error) {
		var labels []string
		i++ // {
		for {
			skipSpace()
			if i >= len(rs) {
				return nil, fmt.Errorf("unterminated {...} in %q", q)
			}
			switch {
			case rs[i] == '}':
				i++
				return labels, nil
			case rs[i] == ',':
				i++
			case rs[i] == '"' || rs[i] == '\'' || rs[i] == '`':
				if err := skipString(); err != nil {
					return nil, err
				}
			case strings.ContainsRune("=!~", rs[i]):
				i++
			case rs[i] == '$': // a Grafana variable as a label name or value
				i++
				ident()
			default:
				name := ident()
				if name == "" {
					return nil, fmt.Errorf("unexpected %q in matchers of %q", rs[i], q)
				}
				labels = append(labels, name)
			}
		}
	}
	// labelList reads (label, ...) after a grouping modifier.
	labelList := func() error {
		skipSpace()
		if i >= len(rs) || rs[i] != '(' {
			return nil // group_left without labels
		}
		for i++; i < len(rs); {
			skipSpace()
			switch {
			case i >= len(rs):
			case rs[i] == ')':
				i++
				return nil
			case rs[i] == ',':
				i++
			default:
				name := ident()
				if name == "" {
					return fmt.Errorf("unexpected %q in a label list of %q", rs[i], q)
				}
				out.Grouping = append(out.Grouping, name)
			}
		}
		return fmt.Errorf("unterminated label list in %q", q)
	}
	for i < len(rs) {
		c := rs[i]
		switch {
		case unicode.IsSpace(c), strings.ContainsRune("()+-*/%^<>=!,@", c):
			i++
		case c == '#':
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			if err := skipString(); err != nil {
				return out, err
			}
		case c == '[': // a range or subquery: durations and Grafana variables
			for i < len(rs) && rs[i] != ']' {
				i++
			}
			if i == len(rs) {
				return out, fmt.Errorf("unterminated [...] in %q", q)
			}
			i++
		case c == '{': // matchers without a metric name
			labels, err := matchers()
			if err != nil {
				return out, err
			}
			out.Selectors = append(out.Selectors, selector{Labels: labels})
		case c == '$':
			i++
			if i < len(rs) && rs[i] == '{' {
				for i < len(rs) && rs[i] != '}' {
					i++
				}
				i++
			} else {
				ident()
			}
		case unicode.IsDigit(c) || c == '.':
			for i < len(rs) && (unicode.IsDigit(rs[i]) || unicode.IsLetter(rs[i]) || rs[i] == '.') {
				i++ // numbers, 1e3, 0x1f, and durations such as 5m
			}
		case c == '_' || c == ':' || unicode.IsLetter(c):
			name := ident()
			lower := strings.ToLower(name)
			j := i
			for j < len(rs) && unicode.IsSpace(rs[j]) {
				j++
			}
			call := j < len(rs) && rs[j] == '('
			// sum by (a) (x): an aggregation with its grouping first.
			if promqlAggregations[lower] && !call {
				k := j
				for k < len(rs) && unicode.IsLetter(rs[k]) {
					k++
				}
				next := strings.ToLower(string(rs[j:k]))
				call = next == "by" || next == "without"
			}
			switch {
			case promqlModifiers[lower]:
				if err := labelList(); err != nil {
					return out, err
				}
			case promqlKeywords[lower]:
			case call && (promqlFunctions[name] || promqlAggregations[lower] || grafanaFunctions[name]):
			case call:
				return out, fmt.Errorf("%s( is no PromQL function in %q", name, q)
			default:
				sel := selector{Metric: name}
				skipSpace()
				if i < len(rs) && rs[i] == '{' {
					labels, err := matchers()
					if err != nil {
						return out, err
					}
					sel.Labels = labels
				}
				out.Selectors = append(out.Selectors, sel)
			}
		default:
			return out, fmt.Errorf("unexpected %q in %q", c, q)
		}
	}
	return out, nil
}

func TestParseQuery(t *testing.T) {
	tests := []struct {
		q    string
		want queryNames
	}{
		{`up{job="dnslb"} == 0`, queryNames{Selectors: []selector{{"up", []string{"job"}}}}},
		{`sum by (vip) (vipwatch_vip_held) > 1`, queryNames{Selectors: []selector{{"vipwatch_vip_held", nil}}, Grouping: []string{"vip"}}},
		{`dnslb_secondary_serial < on (instance, zone) group_left dnslb_zone_serial`,
			queryNames{Selectors: []selector{{"dnslb_secondary_serial", nil}, {"dnslb_zone_serial", nil}}, Grouping: []string{"instance", "zone"}}},
		{`histogram_quantile(0.99, sum by (le, service) (rate(dnslb_health_check_duration_seconds_bucket{instance=~"$instance",service=~"$service"}[$__rate_interval])))`,
			queryNames{Selectors: []selector{{"dnslb_health_check_duration_seconds_bucket", []string{"instance", "service"}}}, Grouping: []string{"le", "service"}}},
		{`time() - vipwatch_partner_last_heartbeat_timestamp_seconds > 10`,
			queryNames{Selectors: []selector{{"vipwatch_partner_last_heartbeat_timestamp_seconds", nil}}}},
		{"count(dnslb_target_state{state=\"down\"} == 1) or vector(0) # comment with_words",
			queryNames{Selectors: []selector{{"dnslb_target_state", []string{"state"}}}}},
		{`sum(rate(x_total{a!~'b\'c'}[5m] offset 1h)) / ignoring(a) group_right() y_total{b="}"} unless on() z`,
			queryNames{Selectors: []selector{{"x_total", []string{"a"}}, {"y_total", []string{"b"}}, {"z", nil}}, Grouping: []string{"a"}}},
		{`1e3 * 0x1f + .5 > bool 2`, queryNames{}},
		{`label_values(dnslb_build_info, instance)`, queryNames{Selectors: []selector{{"dnslb_build_info", nil}, {"instance", nil}}}},
	}
	for _, tt := range tests {
		got, err := parseQuery(tt.q)
		if err != nil {
			t.Errorf("parseQuery(%q): %v", tt.q, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("parseQuery(%q) (-want +got):\n%s", tt.q, diff)
		}
	}
	for _, bad := range []string{`ratee(x[5m])`, `x{a="b"`, `x[5m`, `x{a="b}`, `sum by (a`} {
		if _, err := parseQuery(bad); err == nil {
			t.Errorf("parseQuery(%q) found nothing wrong", bad)
		}
	}
}

// sortedKeys is for messages.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
