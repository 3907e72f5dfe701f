// Package deploy holds what runs Storeline in production, beside the
// binary: example configs (node.example.json for a store node,
// central.example.env for a central node, which takes only flags and
// environment), systemd units (storeline-node.service,
// storeline-central.service), a Prometheus scrape config (prometheus.yml),
// recording and alerting rules for store nodes and for the central cluster
// and the chain's replication, with their promtool unit tests
// (prometheus/), and Grafana dashboards (grafana/).
//
// Its Go code is only the checks of those files (deploy_test.go,
// groups_test.go): promtool accepts the rules and config and passes the
// rule unit tests, and every metric the rules and the dashboards name is
// one a running store node or central node exports, so a renamed metric
// cannot leave an alert silently dead; the central rules read only series
// recorded earlier in their own group; promtool parses every dashboard
// query, and no panel turns a still-0 (never happened) _timestamp_seconds
// gauge into an age. It exports nothing; its tests start a real store node, and a real
// single-node central cluster with a store node replicating to it.
package deploy
