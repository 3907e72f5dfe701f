package central

import (
	"net/http"
	"strings"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// pageOf reads a page of at most limit rows from scan, which visits the
// candidates in ID order from past the caller's cursor until visit stops
// it: each is answered as row makes it. next is the page's last ID only
// when a candidate follows the page, so a client pages until next is
// empty and a full last page does not send it to an empty one. pageKeys
// is the same over meta keys, with a filter and a bound on the keys a
// filtered page examines.
func pageOf[T any](limit int, scan func(visit func(id string, v T) (bool, error)) error, row func(id string, v T) any) (out []any, next string, err error) {
	out = []any{}
	last := ""
	err = scan(func(id string, v T) (bool, error) {
		if len(out) == limit {
			next = last
			return false, nil
		}
		out = append(out, row(id, v))
		last = id
		return true, nil
	})
	return out, next, err
}

// mastersUnder is a scan for pageOf of the live records of kind whose IDs
// begin with prefix ("" for all), in ID order past after (from the prefix
// when after is empty: no ID is the prefix itself, they go on past its
// "/"), ending at the first ID beyond the prefix.
func (n *Node) mastersUnder(kind storeline.MasterKind, prefix, after string) func(visit func(id string, rec storeline.Record) (bool, error)) error {
	start := after
	if start == "" {
		start = prefix
	}
	return func(visit func(id string, rec storeline.Record) (bool, error)) error {
		return n.rep.ScanMasterAfter(kind, start, func(rec storeline.Record) (bool, error) {
			id := rec.MasterID()
			if !strings.HasPrefix(id, prefix) {
				return false, nil
			}
			return visit(id, rec)
		})
	}
}

// servePage answers a page of the records under prefix (pageRecords in
// one view of the replica) as {field: rows, "next": next}.
func servePage[T any](n *Node, w http.ResponseWriter, field, prefix, what, after string, limit int, show func(id string, rec *T) (any, bool)) error {
	var out []any
	var next string
	err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		var err error
		out, next, err = pageRecords(rt, prefix, what, after, limit, show)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{field: out, "next": next})
	return nil
}
