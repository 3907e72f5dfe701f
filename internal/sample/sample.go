// Package sample builds a small, deterministic sample chain's master data
// for the demo and for tests: one store with departments, groups of goods
// with EAN-13 barcodes (a pack and a weighed item among them), a price
// list, sellers, a customer group with a price policy, promotions and a
// loyalty programme. It is a test harness: nothing in production imports it.
package sample

import (
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// Chain is the sample master data of one store.
type Chain struct {
	Store   *storeline.Store
	Groups  []*storeline.Group
	Items   []*storeline.Item
	List    *storeline.PriceList
	Prices  []*storeline.Price
	Sellers []SellerPIN

	// Pricing and loyalty: a VIP customer group with its price policy,
	// promotions (10% off dairy, water 3 for 2, a threshold discount) and
	// a loyalty programme.
	CustomerGroups []*storeline.CustomerGroup
	Policies       []*storeline.PricePolicy
	Promotions     []*storeline.Promotion
	Programme      *storeline.LoyaltyProgramme
}

// SellerPIN is a sample seller with the PIN its hash was made from.
type SellerPIN struct {
	ID   storeline.SellerID
	Name string
	Role storeline.Role
	PIN  string
}

// Well-known sample items, for examples and tests.
const (
	MilkItem   storeline.ItemID = "milk-1l"
	WaterItem  storeline.ItemID = "water-05"  // sold singly and in a pack of 6
	ApplesItem storeline.ItemID = "apples-kg" // weighed
	PriceFrom                   = "2020-01-01T00:00:00Z"

	VIPGroup   storeline.CustGroupID = "vip"
	DairyPromo storeline.PromotionID = "dairy-10" // 10% off the dairy group, milk among it
)

// groups of the sample catalogue: ID, name, department, VAT rate, base
// price in cents.
var groups = []struct {
	id, name, dept, vat string
	cents               int64
}{
	{"dairy", "Dairy", "grocery", "7", 119},
	{"bakery", "Bakery", "grocery", "7", 249},
	{"canned", "Canned goods", "grocery", "7", 189},
	{"snacks", "Snacks", "grocery", "19", 159},
	{"drinks", "Soft drinks", "drinks", "19", 99},
	{"spirits", "Spirits", "drinks", "19", 1299},
	{"fruit", "Fruit", "produce", "7", 199},
	{"household", "Household", "nonfood", "19", 349},
}

// ItemsPerGroup is how many items each group gets (8 groups × 25 = 200).
const ItemsPerGroup = 25

// New returns the sample chain for store id.
func New(id storeline.StoreID) *Chain {
	c := &Chain{
		Store: &storeline.Store{
			ID: id, Name: "Sample shop " + string(id), TimeZone: "Europe/Berlin", Currency: "EUR",
			Departments: []storeline.Department{
				{ID: "grocery", Name: "Grocery"}, {ID: "drinks", Name: "Drinks"},
				{ID: "produce", Name: "Produce"}, {ID: "nonfood", Name: "Non-food"},
			},
			PriceLists: []storeline.PriceListID{"base"},
		},
		List: &storeline.PriceList{ID: "base", Name: "Base prices", Currency: "EUR"},
		Sellers: []SellerPIN{
			{ID: "cashier-1", Name: "Anna Cashier", Role: storeline.Cashier, PIN: "1234"},
			{ID: "manager-1", Name: "Boris Manager", Role: storeline.Manager, PIN: "9876"},
		},
	}
	from, _ := time.Parse(time.RFC3339, PriceFrom)
	c.CustomerGroups = []*storeline.CustomerGroup{{ID: VIPGroup, Name: "VIP customers"}}
	c.Policies = []*storeline.PricePolicy{
		{ID: "vip-5", Name: "VIP: 5% off everything", CustomerGroup: VIPGroup, Percent: decimal.NewFromInt(5)},
	}
	c.Promotions = []*storeline.Promotion{
		{ID: DairyPromo, Name: "Dairy week: 10% off", Kind: storeline.PromoPercent, From: from,
			Groups: []storeline.GroupID{"dairy"}, Percent: decimal.NewFromInt(10)},
		{ID: "water-3for2", Name: "Still water: 3 for 2", Kind: storeline.PromoNForM, From: from,
			Items: []storeline.ItemID{WaterItem}, N: 3, M: 2},
		{ID: "over-50", Name: "2.50 off a basket of 50", Kind: storeline.PromoThreshold, From: from,
			Threshold: decimal.NewFromInt(50), Amount: decimal.RequireFromString("2.50")},
	}
	c.Programme = &storeline.LoyaltyProgramme{
		ID: "club", Name: "Sample club", Currency: "EUR",
		DefaultRate:     decimal.NewFromInt(1), // a point per euro
		Rates:           []storeline.AccrualRate{{Group: "fruit", Rate: decimal.NewFromInt(2)}},
		ExcludeGroups:   []storeline.GroupID{"spirits"},
		PointValue:      decimal.RequireFromString("0.01"),
		MaxShare:        decimal.NewFromInt(50),
		DailyOfflineCap: 2000,
	}
	n := 0
	for gi, g := range groups {
		c.Groups = append(c.Groups, &storeline.Group{ID: storeline.GroupID(g.id), Name: g.name})
		for i := 0; i < ItemsPerGroup; i++ {
			n++
			it := &storeline.Item{
				ID:      storeline.ItemID(fmt.Sprintf("%s-%02d", g.id, i+1)),
				SKU:     fmt.Sprintf("SKU%05d", n),
				Name:    fmt.Sprintf("%s #%d", g.name, i+1),
				Group:   storeline.GroupID(g.id),
				Dept:    storeline.DeptID(g.dept),
				Unit:    storeline.Piece,
				VATRate: decimal.RequireFromString(g.vat),
				Barcodes: []storeline.ItemBarcode{
					{Code: EAN13(fmt.Sprintf("400%02d%07d", gi, i+1)), Factor: decimal.NewFromInt(1)},
				},
			}
			price := decimal.New(g.cents+int64(i*10), -2)
			switch {
			case g.id == "dairy" && i == 0:
				it.ID, it.Name = MilkItem, "Milk 1 l"
			case g.id == "drinks" && i == 0:
				it.ID, it.Name = WaterItem, "Still water 0.5 l"
				it.Barcodes = append(it.Barcodes, storeline.ItemBarcode{Code: EAN13("400990000001"), Factor: decimal.NewFromInt(6)})
			case g.id == "fruit" && i == 0:
				it.ID, it.Name, it.Unit, it.Weighed = ApplesItem, "Apples, loose", storeline.Kg, true
				it.Barcodes = []storeline.ItemBarcode{{Code: EAN13("210000100000"), Factor: decimal.NewFromInt(1)}}
				price = decimal.RequireFromString("2.49")
			}
			c.Items = append(c.Items, it)
			c.Prices = append(c.Prices, &storeline.Price{List: "base", Item: it.ID, From: from, Price: price})
		}
	}
	return c
}

// Records returns the chain's master data in import order (referenced
// before referencing), sellers included with their PINs hashed by hash.
func (c *Chain) Records(hash func(SellerPIN) *storeline.Seller) []storeline.Record {
	recs := []storeline.Record{c.Store}
	for _, g := range c.Groups {
		recs = append(recs, g)
	}
	for _, it := range c.Items {
		recs = append(recs, it)
	}
	recs = append(recs, c.List)
	for _, p := range c.Prices {
		recs = append(recs, p)
	}
	for _, g := range c.CustomerGroups {
		recs = append(recs, g)
	}
	for _, p := range c.Policies {
		recs = append(recs, p)
	}
	for _, p := range c.Promotions {
		recs = append(recs, p)
	}
	recs = append(recs, c.Programme)
	if hash != nil {
		for _, s := range c.Sellers {
			recs = append(recs, hash(s))
		}
	}
	return recs
}

// Item returns the sample item with the given ID.
func (c *Chain) Item(id storeline.ItemID) *storeline.Item {
	for _, it := range c.Items {
		if it.ID == id {
			return it
		}
	}
	return nil
}

// EAN13 appends the GS1 check digit to 12 digits.
func EAN13(digits12 string) string {
	if len(digits12) != 12 {
		panic("sample: EAN13 wants 12 digits, got " + digits12)
	}
	sum := 0
	for i := 0; i < 12; i++ {
		d := int(digits12[i] - '0')
		if i%2 == 1 {
			d *= 3
		}
		sum += d
	}
	return digits12 + string(rune('0'+(10-sum%10)%10))
}

// WeighedCode returns the in-store barcode of the sample weighed item for
// a weight in grams (default layout: PP IIIII WWWWW C).
func WeighedCode(grams int) string {
	return EAN13(fmt.Sprintf("2100001%05d", grams))
}
