package posbridge

// DecodeReceipt runs the receipt body decoder alone, for the fuzz target.
func DecodeReceipt(b []byte) (lines, payments int, err error) {
	var in receiptIn
	if err := decodeJSON(b, 16, &in); err != nil {
		return 0, 0, err
	}
	return len(in.Lines), len(in.Payments), nil
}
