// Package chain runs a whole Storeline chain in one process, for the demo
// (`storeline demo`) and for the tests that need a running chain: a
// central cluster of N nodes and M store nodes on loopback ports in one
// directory, with timers scaled for a single machine; a generated sample
// chain (internal/sample) loaded through the public APIs (central's
// head-office API for master data, which the shops then pull, and for
// each shop's opening stock on incoming invoices, stock.go); a wholesale
// sale from the first shop's stock to a buyer on account, part of it
// returned and part paid (wholesale.go); the till
// simulator (internal/tillsim) selling at every shop; scripted moments (the
// central leader stopped and restarted, a shop cut off from central and
// healed, a price changed at head office reaching the tills); a live
// status; and a closing check that receipts and returns (each exactly
// once), stock (what the invoices brought less the wholesale and what the
// tills sold), sales (less the wholesale's) and points redeemed agree between what the tills were told and the
// shops' ledgers, that each shop's ledger conserves every asset, and that
// every central node holds each shop's receipts and returns (each once),
// stock (units and value at cost), cost of sales, money and loyalty
// balances (its customers' rights and debts there) as the shop does, and
// that head office's reports of each shop (stock, margin with its
// wholesale, turnover, loyalty) and the buyer's statement agree with the
// shop's ledger and the wholesale booked (report_check.go).
//
// Each shop reaches each central node through its own fault proxy
// (internal/faultproxy), so one shop can be cut off without touching the
// others. link.go holds everything that depends on central serving the
// replication protocol; with its linked constant false, the shops are
// provisioned through their own admin API instead and the output says
// they are not linked.
//
// Lock order: Chain.mu guards the central slots' nodes and the shops' cut
// flags only; nothing is called with it held but a central node's cheap
// accessors.
//
// It is a test harness (internal/): production code never imports it. It
// may import everything in the module.
package chain
