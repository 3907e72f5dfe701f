package central

// Customers registered at tills: a shop may sign a customer up offline, so
// two shops can register or edit the same customer concurrently. Central
// merges the writes as a last-writer-wins map keyed by customer ID, ordered
// by (HLC, origin) (crdt.LWWRegister per key: the map's entries live one per
// Badger key, since a chain holds millions of customers), and writes the
// winner as master data, which flows to every shop through the pull feed
// like any other record. The register is FSM state, so every replica picks
// the same winner, whatever the order the shops' pushes arrive in.
//
// Invariants:
//
//  1. A customer's record at central is the value of its register's
//     winning write; a write that loses changes nothing (no version, so no
//     feed entry).
//  2. Head office's edits are writes too, stamped with the leader's time
//     as an HLC that has observed the register: max(entry time, winning
//     stamp + 1), so an edit made after a registration was applied wins
//     over it, whatever the shop's clock said.
//  3. A till's HLC more than maxCustomerSkew ahead of the entry's time is
//     clamped to it (and counted), never adopted: a shop with a clock far
//     in the future cannot win every later edit.
//  4. The card a registration issues is a loyalty card with an ID derived
//     from its code, written when the registration wins; a code head
//     office already issued under another card ID stays head office's.
//     Head office's own writes of such a card (given to another customer,
//     recoded, deleted) are stamped as in invariant 2 (custCardHO): a
//     registration stamped before head office's last write of the card
//     changes nothing of it, whatever the order of arrival. A registration
//     that loses to head office's delete of its customer issues no card.
//     A code a registration issued to one customer is not another
//     customer's registration to take, whatever its stamp: the card's
//     holder may have earned points with it, which no card would reach
//     any more. So of two customers registered offline with one code,
//     the registration central applies first (Raft order, the same on
//     every replica) keeps it.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
	"github.com/storeline/storeline/ledger"
)

// maxCustomerSkew bounds how far ahead of the entry's time a till's HLC
// is believed. A constant: every replica must clamp alike.
const maxCustomerSkew = 5 * time.Minute

// Keys of the customer registers.
const (
	custReg     = "cust/reg/"  // customer ID → msgpack crdt.LWWRegister (value: msgpack Customer)
	custCard    = "cust/card/" // card code → msgpack crdt.LWWRegister (value: customer ID)
	custClamped = "cust/clamped"
	custCardHO  = "cust/cardho/" // registration card ID → msgpack crdt.LWWRegister of head office's writes of it
)

// regCardPrefix begins the ID of every card a registration issues.
const regCardPrefix = "reg-"

// registrationCardID is the ID of the card a till issued with code.
func registrationCardID(code string) storeline.CardID {
	h := sha256.Sum256([]byte(code))
	return storeline.CardID(regCardPrefix + hex.EncodeToString(h[:10]))
}

func customerRegister(tx *Tx, id storeline.CustomerID) (crdt.LWWRegister, error) {
	return readRegister(tx, custReg+string(id))
}

func readRegister(tx *Tx, key string) (crdt.LWWRegister, error) {
	var r crdt.LWWRegister
	v, err := tx.Meta(key)
	if err != nil || v == nil {
		return r, err
	}
	if err := msgpack.Unmarshal(v, &r); err != nil {
		return r, fmt.Errorf("central: register %q: %w", key, err)
	}
	return r, nil
}

func putRegister(tx *Tx, key string, r crdt.LWWRegister) error {
	enc, err := msgpack.Marshal(r)
	if err != nil {
		return err
	}
	return tx.SetMeta(key, enc)
}

// mergeCard merges a registration's card into the register of its code
// (value: the customer ID) and returns the card to write if it wins and
// changes something. A code head office issued under another card ID is
// not a registration's to take, nor is a code a registration issued to
// another customer (invariant 4), nor the card ID when head office
// recoded that card.
func mergeCard(tx *Tx, code string, customer storeline.CustomerID, s crdt.Stamp) (*storeline.CardRecord, error) {
	card := &storeline.CardRecord{ID: registrationCardID(code), Code: code, Kind: storeline.LoyaltyCard, Customer: customer}
	if card.Validate() != nil {
		return nil, nil
	}
	var held storeline.CardRecord
	if _, err := tx.LookupMasterKey(storeline.KindCard, storeline.CardCodeKey(code), &held); err != nil {
		return nil, err
	}
	if held.ID != "" && held.ID != card.ID {
		return nil, nil
	}
	if held.ID == "" {
		// Head office recoded the card this code's registrations write
		// (its ID derives from the code): that record is its customer's
		// card under the new code, not the registration's to take.
		var byID storeline.CardRecord
		ok, err := tx.GetMaster(storeline.KindCard, string(card.ID), &byID)
		if err != nil {
			return nil, err
		}
		if ok && byID.Code != code {
			return nil, nil
		}
	}
	var r crdt.LWWRegister
	v, err := tx.Meta(custCard + code)
	if err != nil {
		return nil, err
	}
	if v != nil {
		if err := msgpack.Unmarshal(v, &r); err != nil {
			return nil, fmt.Errorf("central: card register %s: %w", code, err)
		}
	}
	ho, err := readRegister(tx, custCardHO+string(card.ID))
	if err != nil {
		return nil, err
	}
	if held.ID == card.ID && held.Customer != customer && r.Stamp().Compare(ho.Stamp()) > 0 {
		// Another registration issued the code to another customer, who
		// may have earned points with it since: taking it, whatever the
		// stamps, would leave those points where no card reaches them.
		return nil, nil
	}
	if !r.Set([]byte(customer), s) {
		return nil, nil
	}
	// Head office wrote this card after the registration was made.
	if s.Compare(ho.Stamp()) <= 0 {
		return nil, nil
	}
	if err := putRegister(tx, custCard+code, r); err != nil {
		return nil, err
	}
	if held.ID == card.ID {
		if held.Customer == customer {
			return nil, nil
		}
		card.Blocked = held.Blocked // a registration does not unblock a card
	}
	return card, nil
}

// mergeRegistration merges a till's registration into the customer's
// register and, if it wins, writes the customer (and its card) as master
// data at the entry's next versions. It runs for each accepted
// customer_registered event of a push.
//
// The body may be undecoded (the push path decodes only what it needs):
// then it is decoded from wire, the event's stored wire bytes.
func mergeRegistration(tx *Tx, ev *storeline.Event, wire []byte) error {
	if ev.Body == nil {
		full, err := decodeEvent(wire)
		if err != nil {
			return err
		}
		ev = &full
	}
	reg, ok := ev.Body.(*storeline.CustomerRegistered)
	if !ok {
		return fmt.Errorf("central: %s event %s with a %T body", ev.Kind, ev.ID, ev.Body)
	}
	at := crdt.Timestamp(ev.HLC)
	if ceiling := crdt.MakeTimestamp(tx.At.Add(maxCustomerSkew).UnixMilli(), 0); at > ceiling {
		at = ceiling
		v, err := tx.Meta(custClamped)
		if err != nil {
			return err
		}
		if err := tx.SetMeta(custClamped, ledger.PutU64(ledger.U64(v)+1)); err != nil {
			return err
		}
	}
	c := reg.Customer
	if c.Group != "" {
		// A group the till knew but head office no longer has: the
		// customer is kept, without it.
		ok, err := tx.GetMaster(storeline.KindCustomerGroup, string(c.Group), nil)
		if err != nil {
			return err
		}
		if !ok {
			c.Group = ""
		}
	}
	if err := c.Validate(); err != nil {
		return nil // CheckPush validated the body; nothing valid to merge
	}
	val, err := msgpack.Marshal(&c)
	if err != nil {
		return err
	}
	stamp := crdt.Stamp{Time: at, Origin: string(ev.Origin)}
	var ws []ledger.MasterWrite
	r, err := customerRegister(tx, c.ID)
	if err != nil {
		return err
	}
	if r.Set(val, stamp) {
		if err := putRegister(tx, custReg+string(c.ID), r); err != nil {
			return err
		}
		v, err := tx.NextVersion()
		if err != nil {
			return err
		}
		ws = append(ws, ledger.MasterWrite{Version: v.Pack(), Record: &c})
	}
	if len(ws) == 0 {
		// The registration lost: the customer may be gone (head office
		// deleted it after the registration was made). A card for a
		// customer central does not have is issued to no one.
		ok, err := tx.GetMaster(storeline.KindCustomer, string(c.ID), nil)
		if err != nil || !ok {
			return err
		}
	}
	card, err := mergeCard(tx, reg.CardCode, c.ID, stamp)
	if err != nil {
		return err
	}
	if card != nil {
		v, err := tx.NextVersion()
		if err != nil {
			return err
		}
		ws = append(ws, ledger.MasterWrite{Version: v.Pack(), Record: card})
	}
	if len(ws) == 0 {
		return nil // writes with greater stamps are already in
	}
	if err := tx.PutMasters(ws); err != nil {
		// Everything PutMasters could refuse was checked above, and the
		// entry's other writes are made: a refusal here is a bug, not a
		// business outcome (FSM invariant 3).
		return fmt.Errorf("central: merge registration %s: %v", ev.ID, err)
	}
	return nil
}

// stampCustomers records head office's writes of customers (records, or
// tombstones: Record nil with Kind KindCustomer) in their registers,
// stamped per invariant 2, and its writes of registration cards
// (invariant 4). applyPut and applyDelete call it with the writes they
// made.
func stampCustomers(tx *Tx, ws []ledger.MasterWrite) error {
	now := crdt.MakeTimestamp(tx.At.UnixMilli(), 0)
	for i, w := range ws {
		var key string
		var val []byte
		switch c := w.Record.(type) {
		case *storeline.Customer:
			key = custReg + string(c.ID)
			enc, err := msgpack.Marshal(c)
			if err != nil {
				return err
			}
			val = enc
		case *storeline.CardRecord:
			if !strings.HasPrefix(string(c.ID), regCardPrefix) {
				continue // not a card a registration can write
			}
			key, val = custCardHO+string(c.ID), []byte(c.ID)
		case nil:
			switch {
			case w.Kind == storeline.KindCustomer:
				key = custReg + w.ID
			case w.Kind == storeline.KindCard && strings.HasPrefix(w.ID, regCardPrefix):
				key = custCardHO + w.ID
			default:
				continue
			}
		default:
			continue
		}
		r, err := readRegister(tx, key)
		if err != nil {
			return err
		}
		s := crdt.Stamp{Time: max(now+crdt.Timestamp(i), r.Stamp().Time+1), Origin: string(storeline.Central)}
		if val != nil {
			r.Set(val, s)
		} else {
			r.Delete(s)
		}
		if err := putRegister(tx, key, r); err != nil {
			return err
		}
	}
	return nil
}

// CustomerStamp returns the stamp of the write that won customer id's
// register, from this node's state (zero if no write is recorded).
func (n *Node) CustomerStamp(id storeline.CustomerID) (crdt.Stamp, error) {
	var s crdt.Stamp
	err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		v, err := rt.Meta(custReg + string(id))
		if err != nil || v == nil {
			return err
		}
		var r crdt.LWWRegister
		if err := msgpack.Unmarshal(v, &r); err != nil {
			return err
		}
		s = r.Stamp()
		return nil
	})
	return s, err
}

// Customer returns the customer record id from this node's state
// (NotFound if there is none).
func (n *Node) Customer(id storeline.CustomerID) (storeline.Customer, error) {
	var c storeline.Customer
	err := n.rep.GetMaster(storeline.KindCustomer, string(id), &c)
	return c, err
}
