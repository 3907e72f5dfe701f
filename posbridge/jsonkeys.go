package posbridge

import (
	"errors"
	"reflect"

	"github.com/storeline/storeline"
)

// checkShape is storeline.CheckJSONShape as a 400 naming the key.
func checkShape(body []byte, max int, t reflect.Type) error {
	var se *storeline.JSONShapeError
	if err := storeline.CheckJSONShape(body, max, t); errors.As(err, &se) {
		return errMalformed(se.Field, "%s", se.Reason)
	} else if err != nil {
		return err
	}
	return nil
}
