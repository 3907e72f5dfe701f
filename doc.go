// Package storeline holds the vocabulary of a retail chain's back office:
// money and quantities, identifiers, events and their double-entry
// postings, receipts, returns, cash operations, shifts, document drafts,
// baskets, master data (stores, goods, prices, customers, cards, staff,
// messages), barcodes, and the one error type every package returns.
//
// The package is pure: it depends on shopspring/decimal and google/uuid
// alone, does no I/O and reads no clock. Everything that stores, ships or
// serves these types lives in a package of its own (ledger, replication,
// posbridge, central), which imports this one and never the reverse.
//
// Invariants kept here, checked by the code that builds the values:
//   - Money is normalised to its currency's scale and quantities to
//     QtyScale before they are stored or hashed, so 12.3 and 12.30 are the
//     same value and encode to the same bytes.
//   - The postings of one event sum to zero for every asset
//     (CheckPostings); postings are derived once, by the event's author.
//   - Receipt arithmetic is the same everywhere: line total =
//     round(qty × price) − discount, VAT = round(total × rate / (100 +
//     rate)), rounding half away from zero.
package storeline
