// Package deploy holds what runs Storeline in production, beside the
// binary: example configs (node.example.json), systemd units
// (storeline-node.service), a Prometheus scrape config (prometheus.yml),
// recording and alerting rules with their promtool unit tests
// (prometheus/), and a Grafana dashboard (grafana/).
//
// Its Go code is only the checks of those files (deploy_test.go): promtool
// accepts the rules and config and passes the rule unit tests, and every
// metric the rules and the dashboard name is one a running store node
// exports, so a renamed metric cannot leave an alert silently dead. It
// imports nothing; its tests start a real node.
package deploy
