package sample

import (
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// Size is how big a generated chain is.
type Size struct {
	Stores    int // shops, named shop-1, shop-2, ...
	Items     int // goods, spread over the leaf groups
	Customers int // each with one loyalty card
}

// FullSize is the demo's chain: 2 shops, 5,000 items, 10,000 customers.
var FullSize = Size{Stores: 2, Items: 5000, Customers: 10000}

// Generated is a whole chain's master data, deterministic for a Size:
// departments, groups nested two levels deep (a parent per catalogue
// section, leaf groups under it), items with EAN-13 barcodes (every 40th
// item of the fruit section weighed, with an in-store weighed code; every
// 25th drink also sold in a pack of 6), two price lists ("base" for every
// item, "city" for a tenth of them, dearer), customers in two groups with
// a loyalty card each, sellers, a VIP price policy, promotions, a loyalty
// programme and a message to every shop.
type Generated struct {
	Stores         []*storeline.Store
	Groups         []*storeline.Group // parents before their children
	Items          []*storeline.Item
	Lists          []*storeline.PriceList
	Prices         []*storeline.Price
	CustomerGroups []*storeline.CustomerGroup
	Customers      []*storeline.Customer
	Cards          []*storeline.CardRecord
	Sellers        []SellerPIN
	Policies       []*storeline.PricePolicy
	Promotions     []*storeline.Promotion
	Programme      *storeline.LoyaltyProgramme
	Messages       []*storeline.Message
}

// The generated chain's price lists: every shop prices from "base"; shops
// with an even number look in "city" first.
const (
	BaseList storeline.PriceListID = "base"
	CityList storeline.PriceListID = "city"
)

// leafGroupsPerSection is how many leaf groups each catalogue section
// (the parents, the groups of New) gets.
const leafGroupsPerSection = 5

// StoreName returns the ID of the i-th generated shop (from 0).
func StoreName(i int) storeline.StoreID { return storeline.StoreID(fmt.Sprintf("shop-%d", i+1)) }

// Generate builds the chain for size. Sizes below one are raised to one.
func Generate(size Size) *Generated {
	size.Stores, size.Items, size.Customers = max(size.Stores, 1), max(size.Items, 1), max(size.Customers, 1)
	from, _ := time.Parse(time.RFC3339, PriceFrom)
	g := &Generated{
		Lists: []*storeline.PriceList{
			{ID: BaseList, Name: "Base prices", Currency: "EUR"},
			{ID: CityList, Name: "City shops", Currency: "EUR"},
		},
		Sellers: []SellerPIN{
			{ID: "cashier-1", Name: "Anna Cashier", Role: storeline.Cashier, PIN: "1234"},
			{ID: "cashier-2", Name: "Carl Cashier", Role: storeline.Cashier, PIN: "2345"},
			{ID: "manager-1", Name: "Boris Manager", Role: storeline.Manager, PIN: "9876"},
		},
		CustomerGroups: []*storeline.CustomerGroup{
			{ID: "regular", Name: "Regular customers"},
			{ID: VIPGroup, Name: "VIP customers", Parent: "regular"},
		},
		Policies: []*storeline.PricePolicy{
			{ID: "vip-5", Name: "VIP: 5% off everything", CustomerGroup: VIPGroup, Percent: decimal.NewFromInt(5)},
		},
		Programme: &storeline.LoyaltyProgramme{
			ID: "club", Name: "Chain club", Currency: "EUR",
			DefaultRate:     decimal.NewFromInt(1),
			Rates:           []storeline.AccrualRate{{Group: "fruit", Rate: decimal.NewFromInt(2)}},
			ExcludeGroups:   []storeline.GroupID{"spirits"},
			PointValue:      decimal.RequireFromString("0.01"),
			MaxShare:        decimal.NewFromInt(50),
			DailyOfflineCap: 2000,
		},
		Messages: []*storeline.Message{
			{ID: "welcome", Text: "Welcome to the Storeline demo chain: dairy week is on, 10% off all dairy.", From: from},
		},
	}
	depts := []storeline.Department{
		{ID: "grocery", Name: "Grocery"}, {ID: "drinks", Name: "Drinks"},
		{ID: "produce", Name: "Produce"}, {ID: "nonfood", Name: "Non-food"},
	}
	for i := 0; i < size.Stores; i++ {
		id := StoreName(i)
		lists := []storeline.PriceListID{BaseList}
		if (i+1)%2 == 0 {
			lists = []storeline.PriceListID{CityList, BaseList}
		}
		g.Stores = append(g.Stores, &storeline.Store{
			ID: id, Name: "Demo shop " + string(id), TimeZone: "Europe/Berlin", Currency: "EUR",
			Departments: depts, PriceLists: lists,
		})
	}
	var leaves []int // index into groups per leaf group
	var leafIDs []storeline.GroupID
	for si, s := range groups {
		g.Groups = append(g.Groups, &storeline.Group{ID: storeline.GroupID(s.id), Name: s.name})
		for j := 1; j <= leafGroupsPerSection; j++ {
			id := storeline.GroupID(fmt.Sprintf("%s-%d", s.id, j))
			g.Groups = append(g.Groups, &storeline.Group{ID: id, Name: fmt.Sprintf("%s, shelf %d", s.name, j), Parent: storeline.GroupID(s.id)})
			leaves, leafIDs = append(leaves, si), append(leafIDs, id)
		}
	}
	weighed := 0
	for n := 0; n < size.Items; n++ {
		leaf := n % len(leaves)
		s := groups[leaves[leaf]]
		it := &storeline.Item{
			ID:      storeline.ItemID(fmt.Sprintf("item-%05d", n+1)),
			SKU:     fmt.Sprintf("SKU%06d", n+1),
			Name:    fmt.Sprintf("%s #%d", s.name, n/len(leaves)+1),
			Group:   leafIDs[leaf],
			Dept:    storeline.DeptID(s.dept),
			Unit:    storeline.Piece,
			VATRate: decimal.RequireFromString(s.vat),
			Barcodes: []storeline.ItemBarcode{
				{Code: EAN13(fmt.Sprintf("40%010d", n+1)), Factor: decimal.NewFromInt(1)},
			},
		}
		price := decimal.New(s.cents+int64((n/len(leaves))%40*10), -2)
		switch {
		case s.id == "fruit" && (n/len(leaves))%40 == 0 && weighed < 99999:
			weighed++
			it.Unit, it.Weighed, it.Name = storeline.Kg, true, fmt.Sprintf("Loose fruit #%d (per kg)", weighed)
			it.Barcodes = []storeline.ItemBarcode{{Code: EAN13(fmt.Sprintf("22%05d00000", weighed)), Factor: decimal.NewFromInt(1)}}
		case s.id == "drinks" && (n/len(leaves))%25 == 0:
			it.Barcodes = append(it.Barcodes, storeline.ItemBarcode{Code: EAN13(fmt.Sprintf("41%010d", n+1)), Factor: decimal.NewFromInt(6)})
		}
		g.Items = append(g.Items, it)
		g.Prices = append(g.Prices, &storeline.Price{List: BaseList, Item: it.ID, From: from, Price: price})
		if n%10 == 5 {
			city := price.Mul(decimal.RequireFromString("1.1")).Round(2)
			g.Prices = append(g.Prices, &storeline.Price{List: CityList, Item: it.ID, From: from, Price: city})
		}
	}
	g.Promotions = []*storeline.Promotion{
		{ID: DairyPromo, Name: "Dairy week: 10% off", Kind: storeline.PromoPercent, From: from,
			Groups: []storeline.GroupID{"dairy"}, Percent: decimal.NewFromInt(10)},
		{ID: "over-50", Name: "2.50 off a basket of 50", Kind: storeline.PromoThreshold, From: from,
			Threshold: decimal.NewFromInt(50), Amount: decimal.RequireFromString("2.50")},
	}
	for i := 0; i < size.Customers; i++ {
		id := storeline.CustomerID(fmt.Sprintf("cust-%06d", i+1))
		group := storeline.CustGroupID("regular")
		if i%20 == 0 {
			group = VIPGroup
		}
		g.Customers = append(g.Customers, &storeline.Customer{ID: id, Name: fmt.Sprintf("Customer %d", i+1), Group: group})
		g.Cards = append(g.Cards, &storeline.CardRecord{
			ID: storeline.CardID(fmt.Sprintf("card-%06d", i+1)), Code: CardCode(i), Kind: storeline.LoyaltyCard, Customer: id,
		})
	}
	return g
}

// CardCode returns the code of the i-th generated loyalty card (from 0).
func CardCode(i int) string { return fmt.Sprintf("C%08d", i+1) }

// CardCodes returns the codes of the first n loyalty cards (all if n is
// larger).
func (g *Generated) CardCodes(n int) []string {
	n = min(n, len(g.Cards))
	out := make([]string, n)
	for i := range out {
		out[i] = g.Cards[i].Code
	}
	return out
}

// Records returns every record in import order (referenced before
// referencing), sellers excluded: they carry a PIN and are set one by one.
func (g *Generated) Records() []storeline.Record {
	var recs []storeline.Record
	add := func(rs ...storeline.Record) { recs = append(recs, rs...) }
	for _, r := range g.Lists {
		add(r) // before the stores that name them
	}
	for _, r := range g.Stores {
		add(r)
	}
	for _, r := range g.Groups {
		add(r)
	}
	for _, r := range g.Items {
		add(r)
	}
	for _, r := range g.Prices {
		add(r)
	}
	for _, r := range g.CustomerGroups {
		add(r)
	}
	for _, r := range g.Customers {
		add(r)
	}
	for _, r := range g.Cards {
		add(r)
	}
	for _, r := range g.Policies {
		add(r)
	}
	for _, r := range g.Promotions {
		add(r)
	}
	add(g.Programme)
	for _, r := range g.Messages {
		add(r)
	}
	return recs
}

// Item returns the generated item with the given ID, or nil.
func (g *Generated) Item(id storeline.ItemID) *storeline.Item {
	for _, it := range g.Items {
		if it.ID == id {
			return it
		}
	}
	return nil
}
