// Package monitoring holds what ringfront ships for Prometheus and
// Grafana, beside this file: alert rules with runbooks (rules/), their
// promtool unit tests on recorded series (tests/), a Grafana dashboard
// per daemon and one for the whole service (dashboards/), and an example
// scrape config (prometheus.yml). Its Go tests run promtool on the rules
// and check that every metric the rules and dashboards use is exported
// by the daemons as they run.
package monitoring
