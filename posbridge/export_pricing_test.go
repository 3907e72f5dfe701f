package posbridge

// DecodeBasketPrice runs the POST /v1/baskets/price body decoder alone,
// for the fuzz target.
func DecodeBasketPrice(b []byte) (lines int, err error) {
	var in priceIn
	if err := decodeJSON(b, 16, &in); err != nil {
		return 0, err
	}
	return len(in.Lines), nil
}
