// Package tillsim is the till simulator and load generator behind
// `storeline till` (and, later, the chain demo). It owns nothing but its
// own traffic: it speaks only the public tills' API of posbridge
// (posbridge/openapi.yaml) over HTTP, as real tills would, plus the node's
// admin API when asked to provision its own terminals.
//
// Each simulated till is a goroutine: a cashier logs in with a PIN (and a
// manager, for returns and cash out), opens a shift with a float, rings up
// baskets whose items follow a Zipf-skewed popularity over the catalogue it
// read from GET /v1/catalog/changes (weighed goods through in-store weighed
// barcodes, packs through their pack barcodes, loyalty cards when given),
// takes cash with change or card (a loyalty customer now and then paying
// part with points, within what the card's lookup says may be spent), now
// and then makes a return or a cash operation or reserves a few popular
// items for a customer (collected later by a receipt of them, released, or
// left to lapse), and closes its shift with a Z report that it checks
// against its own drawer count.
//
// Invariants the simulator keeps, and that its tests check against a real
// node:
//
//  1. Every fact it posts carries an ID chosen before the first attempt; a
//     retry (after a timeout, a transport error, a 5xx or a 429) resends
//     the same bytes, so the node counts it once. A 201 is a creation, a
//     200 a replay of a fact the node already had.
//  2. A fact is counted in the Summary only once the node acknowledged it
//     (2xx), and every fact counted is reported to Config.Observe, even
//     when the 2xx's body does not decode (the fact is stored under the
//     ID the till chose; the summary counts the answer as a "bad answer"
//     error). A fact whose every attempt failed without an answer is
//     counted as Unknown: the node may or may not hold it. A receipt
//     whose points payment the node refuses (409 naming its points) was
//     not stored: the till pays it otherwise under a new ID, and the
//     refusal is counted as PointsRefused, not Failed. Likewise a
//     reservation refused for too few available (422 naming its line's
//     qty) is counted as ReservationsRefused, and an end of a reservation
//     another till or the node ended first (409) as
//     ReservationsEndedElsewhere: the shop's answers, not errors.
//  3. Lines carry the price the node's pricing gave for the basket at the
//     moment of the sale (POST /v1/baskets/price: price lists, the card's
//     customer-group policy, promotions as line discounts), or, where the
//     node has no such endpoint, the catalogue's list price; either way a
//     node with the same data records no discrepancy.
//  4. The till's own drawer count (float + cash taken - change - cash
//     refunds + cash in - cash out) is what it declares as counted cash
//     at shift close; a Z report whose expected cash differs is counted
//     as a mismatch.
//
// Everything random comes from Config.Seed (baskets, tenders, returns),
// except event IDs (UUIDv7) and the run tag that makes shift IDs unique.
// It is a test harness (internal/): production code never imports it.
package tillsim
