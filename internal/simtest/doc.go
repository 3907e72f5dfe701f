// Package simtest is the seeded whole-chain simulation: one seed fixes a
// schedule of till traffic, head-office changes and faults against a real
// 3-node central (Raft over loopback TCP, Badger on disk) and real shop
// nodes, each shop's clock skewed by minutes (node.Config.Clock, read by
// its HLC and its till).
//
// The till traffic goes through each shop's tills' HTTP API (posbridge on
// loopback), as a till would send it: seller sessions, shifts opened and
// closed (the Z report checked against what the till rang), receipts paid
// cash or by card, some with a loyalty card (earning points), some paid
// partly with points (up to what the card shows spendable, sometimes
// beyond, which the node must refuse), a marked item sold with its serial,
// returns on the manager's session, cash in and out, document drafts,
// customers registered, and now and then the same request sent again
// (answered 200 with the stored fact). The one exception is the sale of an
// item head office never knew, appended to the shop's ledger directly (no
// till can ring it up through the API), which central must reject. Head
// office changes prices, items and customers, and pre-grants its loyalty
// rights to shops, during the run. Faults: shops cut off from central,
// slow, severed and duplicated links (internal/faultproxy); requests held
// back and delivered after later ones (reorder.go: a push, a pull or a
// loyalty call arriving at central after what the shop sent next); a
// serial sold at two shops, one of them cut off; acknowledged batches
// pushed to central again; shop nodes stopped and reopened (their clock
// sometimes reset by minutes); central leaders and followers stopped and
// reopened on the same directories and addresses. And the journal's
// retention (retention.go): a shop prunes its journal at a cutoff drawn
// among its events' HLC times (node.PruneJournalBefore: the run lasts
// seconds, the retention days), once every run just after selling cut
// off, so what central has not acknowledged must stay; its till retries
// earlier receipts, a pruned one refused (409 naming id) as already
// recorded, and the shop's balances must not move with a prune.
//
// Every run then heals everything, waits for convergence, pushes every
// shop's acknowledged journal once more (it must reach central's apply
// path and apply nothing) and checks the same promises: every acknowledged
// event exactly once at its shop and at every central node, with the
// shop's HLC time, rising along the shop's journal; conservation per asset
// at every replica; the shops' balances (stock, cash, sales) equal at
// every central node; every head-office price, item name and customer
// shown by every shop's tills' API; loyalty never spent beyond rights (no
// holder's rights below zero at any replica, each customer's balance what
// the tills were told was earned less what they paid with points and
// returns took back, every replica and every shop's tills' API agreeing on
// it); every serial sold more often than taken back listed by every
// central node as a double sale, with each shop's counts, and no other;
// and every event a shop pruned still its stub there (the harness's copy
// stands in for it in the checks above) and once at every central node.
//
// Raft, Badger and the replication loops run their own goroutines and
// timers, so a seed fixes the schedule, not the interleaving: a failing
// seed is rerun with `make sim SEED=...`.
//
// It is a test harness (internal/): production code never imports it.
package simtest
