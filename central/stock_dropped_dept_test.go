package central_test

import (
	"testing"
)

// TestStockOfItemInDroppedDepartment: an item's stock report reads the
// department a store record no longer lists (its stock stays there until
// moved), as the whole store's report does; it read only the record's
// departments, so the two disagreed.
func TestStockOfItemInDroppedDepartment(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	store := func(depts ...string) {
		t.Helper()
		var ds []any
		for _, d := range depts {
			ds = append(ds, map[string]any{"id": d, "name": d})
		}
		mustOK(t, apiDo(t, "PUT", a, "/v1/stores/s1", adminKey, map[string]any{
			"name": "Shop 1", "time_zone": "Europe/Riga", "currency": "EUR", "departments": ds, "price_lists": []string{"retail"},
		}, nil))
	}
	store("main", "bakery", "main-2")
	for i, dept := range []string{"main", "bakery", "main-2"} {
		createAndPost(t, a, "in"+dept, map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
			"lines": lines(map[string]any{"item": "milk", "qty": []string{"1", "2", "4"}[i], "purchase_price": "1.00", "dept": dept})})
	}
	wantStock(t, a, "s1", "milk", "7", "6.37")
	store("main")
	wantStock(t, a, "s1", "milk", "7", "6.37")
}
