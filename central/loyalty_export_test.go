package central

import (
	"context"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// SweepSeen submits one loyalty sweep entry for store as if the events
// after its cursor showed what kind names ("visit", "handback" or "debt")
// of the customer on date, under a policy of shops usual shops within 90
// days and share percent pre-granted.
func (n *Node) SweepSeen(ctx context.Context, store storeline.StoreID, prog storeline.ProgrammeID, cust storeline.CustomerID, date storeline.Date, kind string, shops, share int) (SweepAnswer, error) {
	cur, err := n.rep.Meta(rpLoyCursor + string(store))
	if err != nil {
		return SweepAnswer{}, err
	}
	k := map[string]uint8{"visit": seenVisit, "handback": seenHandback, "debt": seenDebt}[kind]
	p := sweepPayload{Store: store, From: string(cur), To: string(cur) + "+",
		Seen:   []sighting{{Programme: prog, Customer: cust, Date: date, Kind: k}},
		Policy: grantPolicy{Shops: shops, WindowDays: 90, Share: share}}
	body, err := msgpack.Marshal(&p)
	if err != nil {
		return SweepAnswer{}, err
	}
	res, err := n.Submit(ctx, OpLoyaltySweep, "", body)
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		return SweepAnswer{}, err
	}
	var ans SweepAnswer
	if err := msgpack.Unmarshal(res.Body, &ans); err != nil {
		return ans, err
	}
	return ans, n.waitApplied(ctx, res.Index, "test")
}

// RightsAnswerKeys counts the stored reservation answers and their age
// index entries.
func (n *Node) RightsAnswerKeys() (answers, index int, err error) {
	err = n.rep.View(func(rt *ledger.ReplicaTxn) error {
		if err := rt.ScanMeta(rpRights, func(string, []byte) (bool, error) { answers++; return true, nil }); err != nil {
			return err
		}
		return rt.ScanMeta(rpRightsAge, func(string, []byte) (bool, error) { index++; return true, nil })
	})
	return answers, index, err
}
