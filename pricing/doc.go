// Package pricing prices baskets and computes loyalty accrual: pure
// functions of a basket, a time and the master data, so a store node and
// head office given the same data price the same basket identically, bit
// for bit.
//
// # What it owns
//
//   - The engine (Engine.Price): the shop's price per line from its ordered
//     price lists (the first list with a price effective at the shop's
//     wall-clock time wins) or the till's manual price; the customer
//     group's price policy; promotions (percent or fixed off items and
//     groups with their subgroups, N for the price of M, bundles, a
//     receipt threshold discount); rounding to the currency's scale. Every
//     line says which rule gave its price and which promotions applied.
//   - Loyalty accrual (Accrue, Reverse, Spendable): points earned per line
//     by group rates and exclusions, their reversal on a return, and the
//     points a receipt may take now.
//   - The Catalog interface the engine reads master data through, with two
//     implementations: MemCatalog (records in memory) and MasterCatalog
//     (over any store with GetMaster/ScanMaster/MasterVersion, such as
//     *ledger.Ledger, caching the items, the items by SKU or barcode,
//     the price records and the compiled rules per master version).
//   - The priced basket's JSON answer (Answer, NewAnswer), which a store
//     node's and head office's basket-pricing endpoints both give, so the
//     two cannot drift apart field by field.
//
// # The rules, in order (see Engine.Price)
//
//  1. Base price: a manual price if the line has one (such a line takes no
//     policy and no promotion, and does not count towards a threshold);
//     else the first of the store's price lists with a price whose From is
//     at or before the shop's wall-clock time (the latest such From within
//     that list). For prices that time does not go back with the clocks:
//     in the hour a fall-back repeats it stays at the last reading before
//     it, so a price due from the first 02:30 stays due. A line with
//     neither is unpriced: price zero, Priced false, no promotions;
//     callers decide (the tills' API refuses it).
//  2. Price policy: of the policies for this store whose customer group is
//     the basket's or an ancestor of it, and whose goods groups (if any)
//     include the item's group or an ancestor, the largest percent wins
//     (ties: the smaller policy ID). The unit price becomes
//     round(base × (100 − percent) / 100); without a policy round(base).
//     Gross = round(qty × price). A basket bought with a staff card
//     (Basket.Staff) takes instead the staff discount of the currency's
//     loyalty programme (ProgrammeFor; LoyaltyProgramme.StaffDiscount),
//     the same way: round(base × (100 − percent) / 100), the line's rule
//     ending " staff:<programme>"; no customer group's policy applies.
//  3. Line promotions, by priority level from high to low. Within a level,
//     multi-line promotions (n_for_m, bundle) go first in promotion-ID
//     order, each taking the still unclaimed lines it applies to; then
//     each still unclaimed line takes the single-line promotion (percent,
//     fixed) of that level giving it the largest discount (ties: the
//     smaller promotion ID). A line takes at most one line promotion.
//     Fixed takes round(qty × min(amount, unit price)): the amount off
//     each base unit, rounded once on the line.
//  4. Threshold: of the active threshold promotions whose threshold the
//     sum of eligible lines (after step 3) reaches (a threshold finer than
//     the currency is reached from the next amount up), the one giving the
//     largest discount (ties: higher priority, then smaller ID) applies;
//     its discount is spread over the eligible lines in proportion to
//     their totals.
//
// Spreading an amount over lines (bundles, thresholds) uses the largest
// remainder method in minor units, ties broken by (item ID, unit price,
// quantity, line position), so no line gets more than its share rounded
// up and the shares sum exactly to the amount. N-for-M frees the cheapest
// qualifying units, ties broken the same way. Because every tie is broken
// by the lines' content before their position, reordering a basket's
// lines permutes the result's lines and changes nothing else, except
// between lines that are identical.
//
// # Arithmetic
//
// Inside the engine money is held in the currency's minor units and
// quantities in thousandths, as int64, with 128-bit products where a
// product may exceed 64 bits; rounding is half away from zero, as in the
// root's Currency.Round. The results are decimals normalised to the
// currency's scale. To keep this exact, a line holds at most 100,000 base
// units and a unit price at most 10^10 minor units; a basket beyond that
// is refused as Invalid. List prices carry at most 4 places (Price
// validates so).
//
// # Speed
//
// A basket allocates a few dozen objects whatever its size: the engine's
// working memory is pooled (promoteLines' scratch), quantities and list
// prices are read as integers without decimal arithmetic where they are
// exact (fast.go), small result amounts come from a shared table of
// immutable decimals, and rule names are cached. Each shortcut gives the
// very value the general path gives.
//
// # Boundaries
//
// pricing imports the module root (and decimal) only: no clock, no I/O of
// its own. The time is the basket's; MasterCatalog calls whatever store it
// is given.
package pricing
