package storeline

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// EventID names an event. Its author chooses it (a till generates a UUIDv7
// per receipt), so a retry carries the same ID and is harmless.
type EventID uuid.UUID

// NewEventID returns a fresh UUIDv7. Tills choose their own IDs; this is
// for events a node or head office authors itself.
func NewEventID() EventID { return EventID(uuid.Must(uuid.NewV7())) }

// DerivedEventID is the ID of an event authored because of something else
// (a document's post, a payment, a rights move, a hand-back after a
// receipt): a UUID of version 8 (application-defined) made of seed's
// SHA-256, so every replica, every replay and every retry names it alike.
// Seeds of different purposes start with different prefixes.
func DerivedEventID(seed string) EventID {
	h := sha256.Sum256([]byte(seed))
	var id EventID
	copy(id[:], h[:16])
	id[6] = id[6]&0x0f | 0x80 // version 8
	id[8] = id[8]&0x3f | 0x80 // RFC 9562 variant
	return id
}

// ParseEventID parses the canonical text form of a UUID.
func ParseEventID(s string) (EventID, error) {
	u, err := uuid.Parse(s)
	if err != nil {
		return EventID{}, fmt.Errorf("event id %q: %w", s, err)
	}
	if len(s) != 36 {
		return EventID{}, fmt.Errorf("event id %q: want the 36-character form", s)
	}
	return EventID(u), nil
}

func (id EventID) String() string { return uuid.UUID(id).String() }

// IsZero reports whether id is the zero (nil) UUID.
func (id EventID) IsZero() bool { return id == EventID{} }

// MarshalText encodes id in its canonical text form (JSON).
func (id EventID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes the canonical text form.
func (id *EventID) UnmarshalText(b []byte) error {
	v, err := ParseEventID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// MarshalBinary encodes id as its 16 bytes (msgpack).
func (id EventID) MarshalBinary() ([]byte, error) { return id[:], nil }

// UnmarshalBinary decodes 16 bytes.
func (id *EventID) UnmarshalBinary(b []byte) error {
	if len(b) != 16 {
		return fmt.Errorf("event id: %d bytes, want 16", len(b))
	}
	copy(id[:], b)
	return nil
}

// Identifiers of master data. They are chosen by head office (or by a till
// for a customer registered offline) and never change; the attributes that
// can change (SKU, barcodes, card codes) are unique attributes, not IDs.
type (
	StoreID     string
	ItemID      string
	GroupID     string
	DeptID      string
	PriceListID string
	CustomerID  string
	CustGroupID string
	SellerID    string
	TerminalID  string
	ShiftID     string
	SupplierID  string
	MessageID   string
	CardID      string
	ProgrammeID string
	PromotionID string
)

// Central is the origin of events authored by head office.
const Central StoreID = "central"

// ValidID reports whether s is usable as an identifier: 1 to 64 characters
// of letters, digits and . _ : -, not starting with punctuation. Account
// names embed IDs between slashes, so a slash is never allowed.
func ValidID(s string) bool {
	// By hand, not by regexp: every event checks several IDs. It is
	// ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$ (TestValidIDMatchesPattern); the
	// allowed characters are ASCII, so bytes are characters.
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == ':' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// CheckID returns an Invalid error naming field unless s is a valid ID.
func CheckID(field, s string) error {
	if !ValidID(s) {
		return Invalidf(field, "%q is not a valid identifier (1-64 of A-Z a-z 0-9 . _ : -)", s)
	}
	return nil
}

// Date is a business date, "2006-01-02", in the shop's time zone. Dates
// compare correctly as strings.
type Date string

// DateOf returns the date of t in loc.
func DateOf(t time.Time, loc *time.Location) Date {
	return Date(t.In(loc).Format(time.DateOnly))
}

// ParseDate checks the form of a date.
func ParseDate(field, s string) (Date, error) {
	if _, err := time.Parse(time.DateOnly, s); err != nil {
		return "", Invalidf(field, "date %q: want YYYY-MM-DD", s)
	}
	return Date(s), nil
}
