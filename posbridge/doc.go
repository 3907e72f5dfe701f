// Package posbridge serves the tills' HTTP/JSON API under /v1 on the shop
// LAN: health, seller sessions, the catalogue (items, barcodes, changes),
// cards, stock, and the facts a till posts (receipts, returns, cash
// operations, shift openings and closes with their Z report, document
// drafts, customers registered at a till, baskets, reservations of goods
// and their ends), plus sellers, messages, sales statistics and the shop's
// expected deliveries (head office's purchase orders, asked of it through
// Config.Orders at each call). The API is described by openapi.yaml, embedded and
// served at GET /v1/openapi.yaml; the tests validate real requests and
// answers against it.
//
// # Boundaries
//
// posbridge imports the module root and prometheus, and declares what it
// needs of the ledger itself (DESIGN.md: it may not import ledger). The
// Ledger interface uses root types only, so *ledger.Ledger satisfies it
// unchanged. The two ledger calls that return ledger-owned types come in
// through Config as functions: Balances and MasterChanges, returning
// posbridge.Balance and posbridge.MasterChange, which have exactly the
// fields of ledger.Balance and ledger.MasterChange, so node adapts them
// with a loop and a struct conversion.
//
// # Rules kept here
//
//   - Every request but /v1/health and /v1/openapi.yaml carries a terminal
//     token (Authorization: Bearer) whose terminal belongs to this store.
//     Seller sessions (X-Session) are opened with a PIN, live in memory
//     for SessionTTL and are bound to the terminal that opened them.
//     Failed PINs are limited per terminal and seller (at most
//     PINAttempts PINs checked per PINWindow, then 429 with Retry-After);
//     while the attempt records, bounded by MaxSessions, are full of live
//     ones, a seller without one is refused 429 as well.
//   - A receipt needs only the terminal token: it records a sale that has
//     already happened, and its retry must land even after the seller's
//     session has ended (an unknown, expired or ended X-Session on it is
//     ignored). Returns and cash taken out need a manager's session;
//     other facts a seller's session. Manager rights are read from the
//     seller's current record whenever they are used, not from login.
//     They are checked for a new fact only: a retry (a fact stored under
//     its ID) is answered from the stored fact whatever has happened to
//     the session since the first try (ended, or its manager demoted),
//     else a till whose answer was lost could never learn its fact was
//     stored (authenticate, mayPost). An ended session cannot be told
//     from one never issued, so a retry is answered to the terminal
//     token alone (with any X-Session): the calling terminal's own fact,
//     for a till that sends its ID and body again, is accepted as the
//     terminal's to read. Another terminal's fact under the ID is a 409
//     that tells nothing of that fact's content (at most that the ID is
//     another terminal's, or which kind of fact holds it).
//   - A fact is appended under the till's ID: the same ID and body again
//     answers 200 with the stored event, another body 409 naming id. A
//     retry of a receipt, return, cash operation, shift opening, basket or
//     document is looked up by ID before the catalogue is read and
//     compared by what the till sent, so
//     master data changed since (a card's customer, an item's VAT rate, an
//     item deleted, a barcode moved) does not make it a conflict or a 422;
//     the catalogue may show a difference (a SKU naming another item now)
//     but never demands one. A receipt's price or line discount that differs
//     from the node's (package pricing over the ledger's master data, at
//     occurred_at, for the card's customer group: the same engine as
//     POST /v1/baskets/price, which prices a basket and records nothing)
//     is recorded as a discrepancy, never refused; a retry answers the
//     receipt as stored, with the discrepancies of the first attempt.
//   - Loyalty (loyalty.go): a receipt with a known customer's card earns
//     points and may pay points; a points payment is checked against the
//     shop's rights (its account in the customer's points) under a
//     per-customer lock held until the append is durable, so the shop
//     never spends beyond its rights; beyond them is a 409 naming the
//     payment's points. A retry keeps the points of the first attempt.
//     Online (Config.Points), a shortfall is first reserved at central by
//     receipt ID and points earned above PointsFloat are handed back;
//     offline, spends are also held to the programme's daily offline cap.
//     A return takes back what its receipt earned; points already spent
//     become the customer's debt, never a refusal. A return naming a
//     receipt paid partly with points gives that part back as points
//     (pricing.Restore), a refund of method points the node adds; the
//     till refunds only the rest in money, else a 422 naming refunds. A
//     return without its receipt is refunded in money as before.
//   - Bad input changes nothing and is answered application/problem+json
//     naming the field; error kinds map to statuses in one table
//     (problem.go). Internal errors are logged and sent without detail.
//   - Bodies are bounded (MaxBodyBytes, MaxJSONDepth), decoded strictly
//     (unknown fields, a field named twice in one object or in another
//     case than the spec's, and trailing data refused: jsonkeys.go), and
//     decimals travel as
//     strings with at most 32 characters and no exponent.
package posbridge
