package central

// Internal barcodes: head office gives an item without a manufacturer's
// barcode an EAN-13 of its own, in a GS1 restricted-circulation prefix
// the chain keeps for piece codes (Config.InternalBarcodes.Prefix, 29 by
// default; the weighed layout the tills read must leave it free, or a
// till would read a piece code as a weight).
//
// POST /v1/items/{id}/internal_barcode submits OpInternalBarcode, one
// entry that reads the prefix's counter, skips the serials an item
// already holds (a code typed in by hand), attaches the code to the item
// through applyPut (so every check and index of a master-data write
// applies, and the change reaches the shops by the feed as any barcode
// does) and advances the counter. The counter is FSM state (meta key
// internalBarcodeNextPrefix+prefix), so two allocations through two nodes
// never get the same code. An item that already holds a code of the
// prefix is answered that code, and nothing is written: allocating is
// idempotent per item, whatever the Idempotency-Key.
//
// A new op rather than master.put with a counter record: the counter
// must be read and raised in the entry that uses it, and master.put
// applies records computed before submitting (two requests would compute
// the same code, and the item's other fields would be written as the
// request read them, undoing an edit made in between).

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// InternalBarcodeConfig is the chain's internal piece codes.
type InternalBarcodeConfig struct {
	// Prefix is the two-digit GS1 in-store prefix (20-29) of the codes
	// head office allocates.
	Prefix string
	// WeighedLayout is the weighed-barcode layout the chain's tills read
	// (node.Config.WeighedLayout); Prefix must be one it leaves free.
	WeighedLayout storeline.WeighedLayout
}

// DefaultInternalBarcodeConfig is prefix 29 beside the default weighed
// layout (20-28).
func DefaultInternalBarcodeConfig() InternalBarcodeConfig {
	return InternalBarcodeConfig{Prefix: storeline.DefaultInternalPrefix, WeighedLayout: storeline.DefaultWeighedLayout()}
}

func (c InternalBarcodeConfig) validate(bad func(field, format string, args ...any)) {
	if err := c.WeighedLayout.Validate(); err != nil {
		bad("InternalBarcodes.WeighedLayout", "%v", err)
		return
	}
	if err := c.WeighedLayout.CheckInternalPrefix(c.Prefix); err != nil {
		bad("InternalBarcodes.Prefix", "%v", err)
	}
}

// OpInternalBarcode allocates an item its internal EAN-13 (FSM level 6).
const OpInternalBarcode = "item.internal_barcode"

// internalBarcodeNextPrefix + prefix → the next serial to try (u64; absent: 1).
const internalBarcodeNextPrefix = "internal_barcode/next/"

// maxSerialSkips bounds the serials one entry passes over because an item
// holds them already (codes typed in by hand): past it the request is
// refused rather than the entry made long.
const maxSerialSkips = 1000

type internalBarcodePayload struct {
	Item   storeline.ItemID `msgpack:"i"`
	Prefix string           `msgpack:"p"`
}

// internalBarcodeAnswer is the op's result and the API's answer.
type internalBarcodeAnswer struct {
	Item      storeline.ItemID `msgpack:"i" json:"item"`
	Barcode   string           `msgpack:"b" json:"barcode"` // EAN-13
	Allocated bool             `msgpack:"a" json:"allocated"`
}

// internalCode returns the item's EAN-13 of the prefix, if it holds one.
func internalCode(it *storeline.Item, prefix string) (string, bool) {
	for _, b := range it.Barcodes {
		if len(b.Code) == 14 && b.Code[0] == '0' && strings.HasPrefix(b.Code[1:], prefix) {
			return b.Code[1:], true
		}
	}
	return "", false
}

func applyInternalBarcode(tx *Tx, payload []byte) ([]byte, error) {
	var p internalBarcodePayload
	if err := msgpack.Unmarshal(payload, &p); err != nil {
		return nil, storeline.Invalidf("", "undecodable payload: %v", err)
	}
	var it storeline.Item
	found, err := tx.GetMaster(storeline.KindItem, string(p.Item), &it)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, &storeline.Error{Kind: storeline.NotFound, Field: "id", Err: fmt.Errorf("no item %q", p.Item)}
	}
	if code, ok := internalCode(&it, p.Prefix); ok {
		return msgpack.Marshal(&internalBarcodeAnswer{Item: it.ID, Barcode: code})
	}
	if it.Weighed {
		return nil, storeline.Invalidf("id", "item %q is weighed: its labels come from the scale, with the weight in the code", it.ID)
	}
	key := internalBarcodeNextPrefix + p.Prefix
	v, err := tx.Meta(key)
	if err != nil {
		return nil, err
	}
	serial := uint64(1)
	if v != nil {
		serial = ledger.U64(v)
	}
	var code string
	for skips := 0; ; skips++ {
		if serial > storeline.MaxInternalSerial {
			return nil, storeline.Errorf(storeline.Conflict, "central.internal_barcode", "every internal barcode of prefix %s is allocated", p.Prefix)
		}
		if skips == maxSerialSkips {
			// The counter moves past the run although the entry is
			// refused, or every retry would meet the same run again.
			if err := tx.SetMeta(key, ledger.PutU64(serial)); err != nil {
				return nil, err
			}
			return nil, storeline.Errorf(storeline.Conflict, "central.internal_barcode",
				"%d internal barcodes of prefix %s in a row are held already (typed in by hand?); retry to go on past them", skips, p.Prefix)
		}
		if code, err = storeline.InternalEAN13(p.Prefix, serial); err != nil {
			return nil, err
		}
		held, err := tx.LookupMasterKey(storeline.KindItem, storeline.BarcodeKey("0"+code), nil)
		if err != nil {
			return nil, err
		}
		serial++
		if !held {
			break
		}
	}
	it.Barcodes = append(it.Barcodes, storeline.ItemBarcode{Code: "0" + code, Factor: decimal.NewFromInt(1)})
	wr, err := encodeRecord(&it, "")
	if err != nil {
		return nil, storeline.E("central.internal_barcode", storeline.Internal, err)
	}
	put, err := msgpack.Marshal(&putPayload{Records: []wireRecord{wr}})
	if err != nil {
		return nil, storeline.E("central.internal_barcode", storeline.Internal, err)
	}
	if _, err := applyPut(tx, put); err != nil {
		return nil, err
	}
	if err := tx.SetMeta(key, ledger.PutU64(serial)); err != nil {
		return nil, err
	}
	return msgpack.Marshal(&internalBarcodeAnswer{Item: it.ID, Barcode: code, Allocated: true})
}

// postInternalBarcode is POST /v1/items/{id}/internal_barcode.
func (n *Node) postInternalBarcode(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := storeline.CheckID("id", id); err != nil {
		return err
	}
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	body, err := msgpack.Marshal(&internalBarcodePayload{Item: storeline.ItemID(id), Prefix: n.cfg.InternalBarcodes.Prefix})
	if err != nil {
		return storeline.E("central.internal_barcode", storeline.Internal, err)
	}
	res, err := n.Submit(r.Context(), OpInternalBarcode, key, body)
	if err != nil {
		return err
	}
	if err := res.Err(); err != nil {
		return err
	}
	var a internalBarcodeAnswer
	if err := msgpack.Unmarshal(res.Body, &a); err != nil {
		return storeline.E("central.internal_barcode", storeline.Internal, err)
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}
