package storeline

import "strings"

// The registries the mission names beside suppliers (master.go): buyers
// (companies the chain sells to wholesale), manufacturers and their
// representatives, and banks. They are chain-wide reference data, authored
// at head office.

// Identifiers of registry records.
type (
	BuyerID          string
	ManufacturerID   string
	RepresentativeID string
	BankID           string
)

// Buyer is a company the chain sells to on account.
type Buyer struct {
	ID    BuyerID
	Name  string
	TaxID string `msgpack:",omitempty"`
}

func (*Buyer) MasterKind() MasterKind { return KindBuyer }
func (b *Buyer) MasterID() string     { return string(b.ID) }
func (b *Buyer) UniqueKeys() []string { return nil }
func (b *Buyer) Validate() error {
	if err := CheckID("id", string(b.ID)); err != nil {
		return err
	}
	return checkName("name", b.Name)
}

// Manufacturer is a maker of goods.
type Manufacturer struct {
	ID      ManufacturerID
	Name    string
	Country string `msgpack:",omitempty"` // ISO 3166-1 alpha-2
}

func (*Manufacturer) MasterKind() MasterKind { return KindManufacturer }
func (m *Manufacturer) MasterID() string     { return string(m.ID) }
func (m *Manufacturer) UniqueKeys() []string { return nil }
func (m *Manufacturer) Validate() error {
	if err := CheckID("id", string(m.ID)); err != nil {
		return err
	}
	if err := checkName("name", m.Name); err != nil {
		return err
	}
	if m.Country != "" && (len(m.Country) != 2 || strings.ToUpper(m.Country) != m.Country) {
		return Invalidf("country", "%q is not an ISO 3166-1 alpha-2 code", m.Country)
	}
	return nil
}

// Representative is a manufacturer's representative the chain deals with.
type Representative struct {
	ID           RepresentativeID
	Manufacturer ManufacturerID
	Name         string
	Phone        string `msgpack:",omitempty"`
	Email        string `msgpack:",omitempty"`
}

func (*Representative) MasterKind() MasterKind { return KindRepresentative }
func (r *Representative) MasterID() string     { return string(r.ID) }
func (r *Representative) UniqueKeys() []string { return nil }
func (r *Representative) Validate() error {
	if err := CheckID("id", string(r.ID)); err != nil {
		return err
	}
	if err := CheckID("manufacturer", string(r.Manufacturer)); err != nil {
		return err
	}
	return checkName("name", r.Name)
}

// Bank is a bank the chain holds accounts with or settles cards through.
type Bank struct {
	ID   BankID
	Name string
	BIC  string `msgpack:",omitempty"`
}

func (*Bank) MasterKind() MasterKind { return KindBank }
func (b *Bank) MasterID() string     { return string(b.ID) }
func (b *Bank) UniqueKeys() []string { return nil }
func (b *Bank) Validate() error {
	if err := CheckID("id", string(b.ID)); err != nil {
		return err
	}
	if err := checkName("name", b.Name); err != nil {
		return err
	}
	if b.BIC != "" && len(b.BIC) != 8 && len(b.BIC) != 11 {
		return Invalidf("bic", "a BIC has 8 or 11 characters, not %d", len(b.BIC))
	}
	return nil
}

func checkName(field, name string) error {
	if strings.TrimSpace(name) == "" || len(name) > 200 {
		return Invalidf(field, "a name of 1-200 bytes is required")
	}
	return nil
}
