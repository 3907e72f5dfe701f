// Package node wires a store node: the durable ledger, the tills' HTTP API
// (posbridge) on the shop LAN, and an admin listener (loopback by default)
// with /metrics, /healthz and the token-protected admin API (master-data
// import, terminal tokens, sellers, online backup, conservation check).
//
// The package owns the node's one configuration struct, Config, with
// DefaultConfig, Validate (naming every bad field) and String (secrets
// redacted). It reads no flags and no environment: cmd/storeline does that.
// Metrics are registered on a registry the caller passes in, never the
// global one, and taken off it again when the node stops.
//
// Lifecycle: New opens nothing; Start opens the ledger, provisions the
// configured terminals and binds both listeners; Run serves until its
// context ends, then drains HTTP (Shutdown, bounded by ShutdownTimeout) and
// closes the ledger last, so no request is answered by a closed ledger.
//
// The node may import every package of the module except central
// (DESIGN.md, "Packages and what they may import"); a root test enforces it.
package node
