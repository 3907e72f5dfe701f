package tillsim

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// Config configures a simulation run. Build it with DefaultConfig, then set
// Shops and the stop condition (Duration, Receipts, or the context).
type Config struct {
	// Shops are the store nodes to drive, each with its own tills.
	Shops []Shop
	// TillsPerShop is how many tills run at each shop: the number of
	// terminals provisioned through a shop's admin API, or at most that
	// many of its listed terminals (0: all listed terminals).
	TillsPerShop int

	// Duration stops ringing up new receipts after this long (0: no
	// limit); Receipts stops after this many receipts have been started,
	// over all shops (0: no limit). With neither, the run lasts until its
	// context ends. Either way, receipts in flight finish and open shifts
	// are closed within CloseTimeout.
	Duration time.Duration
	Receipts int
	// Rate bounds the receipts started per second over all tills; 0 means
	// as fast as the tills and the nodes go.
	Rate float64
	// Seed drives every random choice but event IDs.
	Seed int64

	// ReceiptsPerShift closes a till's shift (Z report) after this many
	// receipts and opens the next one.
	ReceiptsPerShift int
	// ReturnRate is the chance, after a receipt, that a customer returns
	// an item of a recent receipt (needs a manager among the sellers).
	// CashOpRate is the chance of a cash in or cash out after a receipt.
	// CardRate is the chance a receipt is paid by card; LoyaltyRate the
	// chance a customer shows a loyalty card (from Shop.Cards);
	// PointsRate the chance such a customer pays part of the receipt with
	// points when the card's lookup (GET /v1/cards) says some may be
	// spent now (the rest is paid in cash or by card).
	ReturnRate  float64
	CashOpRate  float64
	CardRate    float64
	LoyaltyRate float64
	PointsRate  float64
	// ReservationRate is the chance, after a receipt, that a customer asks
	// the till to hold a few popular items (POST /v1/reservations); the
	// till later collects (a receipt of them) or releases some of them,
	// and leaves the rest to lapse.
	ReservationRate float64
	// MaxBasketLines bounds a basket's lines; sizes are skewed small.
	MaxBasketLines int
	// ZipfS is the skew of item popularity (> 1; higher is more skewed).
	ZipfS float64
	// Float is the cash a shift opens with.
	Float decimal.Decimal
	// NodePricing prices each basket with POST /v1/baskets/price (price
	// lists, the customer group's policy, promotions) before payment, as a
	// till with server-side pricing does; false prices from the catalogue
	// alone (list prices, no promotions). A node without the endpoint is
	// priced from the catalogue either way.
	NodePricing bool

	// RequestTimeout bounds one HTTP attempt. MaxAttempts bounds the
	// attempts of one request (retries with the same body and ID);
	// RetryBackoff is the first pause between attempts, doubled up to
	// MaxRetryBackoff.
	RequestTimeout  time.Duration
	MaxAttempts     int
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
	// CatalogRefresh is how often a shop's catalogue is polled for changes
	// (prices reach the tills within this).
	CatalogRefresh time.Duration
	// CatalogPage is the page size of GET /v1/catalog/changes.
	CatalogPage int
	// CloseTimeout bounds the wind-down after the run stops: receipts in
	// flight finishing, and the shifts' closes.
	CloseTimeout time.Duration
	// MaxRecent bounds the receipts a till remembers for returns.
	MaxRecent int

	// TerminalPrefix names terminals provisioned through an admin API
	// (prefix + "-1", "-2", ...).
	TerminalPrefix string
	// WeighedLayout is the chain's in-store weighed barcode layout, used to
	// print weighed barcodes.
	WeighedLayout storeline.WeighedLayout

	// Transport carries every request (nil: a pooled default). Tests put a
	// faulty one here.
	Transport http.RoundTripper
	// Now is the clock for occurred_at; nil means time.Now.
	Now func() time.Time

	// Progress, if set, is called every ProgressEvery with the run so far.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// Observe, if set, is called for every fact a node acknowledged, from
	// the till's goroutine (it must be safe for concurrent use).
	Observe func(Fact)
}

// Shop is one store node to drive.
type Shop struct {
	// URL is the base URL of the node's tills' API ("http://host:8080").
	URL string
	// Terminals are the node's terminals and their tokens. Alternatively,
	// AdminURL and AdminToken let the simulator provision TillsPerShop
	// terminals itself through the node's admin API.
	Terminals  []Terminal
	AdminURL   string
	AdminToken string
	// Sellers log in at the tills: cashiers ring up, a manager (the role
	// comes from the login answer) authorises returns and cash out. Till i
	// uses the i-th cashier, round robin. Nil means the sample chain's.
	Sellers []Seller
	// Cards are loyalty card codes customers show (LoyaltyRate).
	Cards []string
}

// Terminal is a till's terminal ID and bearer token.
type Terminal struct {
	ID    string
	Token string
}

// Seller is a seller ID and PIN.
type Seller struct {
	ID  string
	PIN string
}

// SampleSellers are the sellers of internal/sample's chain.
func SampleSellers() []Seller {
	return []Seller{{ID: "cashier-1", PIN: "1234"}, {ID: "manager-1", PIN: "9876"}}
}

// Bounds checked by Validate.
const (
	MaxTillsPerShop = 1000
	MaxShops        = 1000
	maxBasketLines  = 1000 // posbridge's maxLines
)

// DefaultConfig returns a realistic mix: small skewed baskets, two in five
// paid by card, a loyalty card on three in ten (of whose holders three in
// ten pay part with points when they have some), a return or a cash
// operation now and then, a reservation of goods rarely, shifts of 200
// receipts.
func DefaultConfig() Config {
	return Config{
		TillsPerShop:     4,
		Seed:             1,
		ReceiptsPerShift: 200,
		ReturnRate:       0.02,
		CashOpRate:       0.01,
		CardRate:         0.4,
		LoyaltyRate:      0.3,
		PointsRate:       0.3,
		ReservationRate:  0.005,
		MaxBasketLines:   12,
		ZipfS:            1.2,
		Float:            decimal.NewFromInt(100),
		NodePricing:      true,
		RequestTimeout:   5 * time.Second,
		MaxAttempts:      6,
		RetryBackoff:     20 * time.Millisecond,
		MaxRetryBackoff:  time.Second,
		CatalogRefresh:   5 * time.Second,
		CatalogPage:      1000,
		CloseTimeout:     30 * time.Second,
		MaxRecent:        64,
		TerminalPrefix:   "sim-till",
		WeighedLayout:    storeline.DefaultWeighedLayout(),
		ProgressEvery:    time.Second,
	}
}

// Validate names every bad field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if len(c.Shops) == 0 || len(c.Shops) > MaxShops {
		bad("Shops", "%d shops, want 1-%d", len(c.Shops), MaxShops)
	}
	if c.TillsPerShop < 0 || c.TillsPerShop > MaxTillsPerShop {
		bad("TillsPerShop", "%d out of [0, %d]", c.TillsPerShop, MaxTillsPerShop)
	}
	for i, s := range c.Shops {
		f := fmt.Sprintf("Shops[%d]", i)
		if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(f+".URL", "%q is not an http(s) URL", s.URL)
		}
		switch {
		case len(s.Terminals) > 0 && s.AdminURL != "":
			bad(f, "give terminals or an admin URL, not both")
		case len(s.Terminals) == 0 && s.AdminURL == "":
			bad(f, "give terminals (id=token) or an admin URL and token")
		case s.AdminURL != "":
			if u, err := url.Parse(s.AdminURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(f+".AdminURL", "%q is not an http(s) URL", s.AdminURL)
			}
			if s.AdminToken == "" {
				bad(f+".AdminToken", "required with an admin URL")
			}
			if c.TillsPerShop < 1 {
				bad("TillsPerShop", "at least 1 till to provision at %s", s.AdminURL)
			}
		}
		seen := map[string]bool{}
		for j, t := range s.Terminals {
			if !storeline.ValidID(t.ID) || t.Token == "" || seen[t.ID] {
				bad(fmt.Sprintf("%s.Terminals[%d]", f, j), "want a unique valid terminal ID and a token, got %q", t.ID)
			}
			seen[t.ID] = true
		}
		for j, sel := range s.Sellers {
			if !storeline.ValidID(sel.ID) || sel.PIN == "" {
				bad(fmt.Sprintf("%s.Sellers[%d]", f, j), "want a valid seller ID and a PIN, got %q", sel.ID)
			}
		}
		for j, code := range s.Cards {
			if err := storeline.CheckCardCode("code", code); err != nil {
				bad(fmt.Sprintf("%s.Cards[%d]", f, j), "%v", err)
			}
		}
	}
	if c.Duration < 0 {
		bad("Duration", "%v is negative", c.Duration)
	}
	if c.Receipts < 0 {
		bad("Receipts", "%d is negative", c.Receipts)
	}
	// Written so NaN, which fails every comparison, is refused too.
	if !(c.Rate >= 0 && c.Rate <= 1e6) {
		bad("Rate", "%v out of [0, 1e6]", c.Rate)
	}
	if c.ReceiptsPerShift < 1 || c.ReceiptsPerShift > 1_000_000 {
		bad("ReceiptsPerShift", "%d out of [1, 1000000]", c.ReceiptsPerShift)
	}
	for _, p := range []struct {
		field string
		v     float64
	}{{"ReturnRate", c.ReturnRate}, {"CashOpRate", c.CashOpRate}, {"CardRate", c.CardRate}, {"LoyaltyRate", c.LoyaltyRate}, {"PointsRate", c.PointsRate},
		{"ReservationRate", c.ReservationRate},
	} {
		if !(p.v >= 0 && p.v <= 1) {
			bad(p.field, "%v out of [0, 1]", p.v)
		}
	}
	if c.MaxBasketLines < 1 || c.MaxBasketLines > maxBasketLines {
		bad("MaxBasketLines", "%d out of [1, %d]", c.MaxBasketLines, maxBasketLines)
	}
	if !(c.ZipfS > 1 && c.ZipfS <= 10) {
		bad("ZipfS", "%v out of (1, 10]", c.ZipfS)
	}
	if c.Float.IsNegative() {
		bad("Float", "%s is negative", c.Float)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"RequestTimeout", c.RequestTimeout}, {"RetryBackoff", c.RetryBackoff}, {"MaxRetryBackoff", c.MaxRetryBackoff},
		{"CatalogRefresh", c.CatalogRefresh}, {"CloseTimeout", c.CloseTimeout},
	} {
		if d.v <= 0 || d.v > time.Hour {
			bad(d.field, "%v out of (0, 1h]", d.v)
		}
	}
	if c.Progress != nil && (c.ProgressEvery <= 0 || c.ProgressEvery > time.Hour) {
		bad("ProgressEvery", "%v out of (0, 1h]", c.ProgressEvery)
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > 100 {
		bad("MaxAttempts", "%d out of [1, 100]", c.MaxAttempts)
	}
	if c.CatalogPage < 1 || c.CatalogPage > 100000 {
		bad("CatalogPage", "%d out of [1, 100000]", c.CatalogPage)
	}
	if c.MaxRecent < 1 || c.MaxRecent > 100000 {
		bad("MaxRecent", "%d out of [1, 100000]", c.MaxRecent)
	}
	if !storeline.ValidID(c.TerminalPrefix + "-1000") {
		bad("TerminalPrefix", "%q does not make valid terminal IDs", c.TerminalPrefix)
	}
	if err := c.WeighedLayout.Validate(); err != nil {
		bad("WeighedLayout", "%v", err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("tillsim: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// String renders the config on one line, tokens and PINs redacted.
func (c Config) String() string {
	var shops []string
	for _, s := range c.Shops {
		// Tills provisioned through the admin API number TillsPerShop; a
		// shop given its terminals runs one till each, at most
		// TillsPerShop of them (sim.go).
		if s.AdminURL != "" {
			shops = append(shops, fmt.Sprintf("%s (admin %s, %d tills)", s.URL, s.AdminURL, c.TillsPerShop))
		} else {
			n := len(s.Terminals)
			if c.TillsPerShop > 0 {
				n = min(n, c.TillsPerShop)
			}
			shops = append(shops, fmt.Sprintf("%s (%d tills)", s.URL, n))
		}
	}
	return fmt.Sprintf("shops=[%s] duration=%v receipts=%d rate=%v seed=%d",
		strings.Join(shops, ", "), c.Duration, c.Receipts, c.Rate, c.Seed)
}
