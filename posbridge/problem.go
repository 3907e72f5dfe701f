package posbridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/storeline/storeline"
)

// statusOf is the one table from error kinds to HTTP statuses. Malformed
// JSON is Invalid too, but is answered 400 (see errMalformed).
var statusOf = map[storeline.Kind]int{
	storeline.Invalid:             http.StatusUnprocessableEntity,
	storeline.NotFound:            http.StatusNotFound,
	storeline.Conflict:            http.StatusConflict,
	storeline.Unauthorized:        http.StatusUnauthorized,
	storeline.Forbidden:           http.StatusForbidden,
	storeline.TooLarge:            http.StatusRequestEntityTooLarge,
	storeline.RateLimited:         http.StatusTooManyRequests,
	storeline.InsufficientStorage: http.StatusInsufficientStorage,
	storeline.Unavailable:         http.StatusServiceUnavailable,
	storeline.Internal:            http.StatusInternalServerError,
}

// malformed marks an Invalid error about the body's syntax rather than its
// meaning, answered 400.
type malformed struct{ err error }

func (m malformed) Error() string { return m.err.Error() }
func (m malformed) Unwrap() error { return m.err }

// errMalformed builds a 400 Invalid error naming field.
func errMalformed(field, format string, args ...any) error {
	return &storeline.Error{Kind: storeline.Invalid, Field: field, Err: malformed{fmt.Errorf(format, args...)}}
}

// retryAfter carries a Retry-After for a RateLimited answer.
type retryAfter struct {
	err   error
	after time.Duration
}

func (r retryAfter) Error() string { return r.err.Error() }
func (r retryAfter) Unwrap() error { return r.err }

// problemJSON is an RFC 9457 problem answer.
type problemJSON struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Field  string `json:"field,omitempty"`
}

// problem answers err as application/problem+json. Internal errors are
// logged in full and answered without detail; the error of a failed file
// operation is logged in full and answered with a generic detail.
func (s *Server) problem(w http.ResponseWriter, r *http.Request, err error) {
	kind := storeline.KindOf(err)
	status, ok := statusOf[kind]
	if !ok {
		kind, status = storeline.Internal, http.StatusInternalServerError
	}
	var mf malformed
	if kind == storeline.Invalid && errors.As(err, &mf) {
		status = http.StatusBadRequest
	}
	p := problemJSON{
		Type:   "https://storeline.dev/problems/" + kind.String(),
		Title:  http.StatusText(status),
		Status: status,
		Field:  storeline.FieldOf(err),
	}
	switch {
	case kind == storeline.Internal:
		s.log.Error("posbridge: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		p.Field = ""
	case storeline.IsIOError(err):
		// A failed file operation (a poisoned ledger, a full disk) names
		// the data directory's files and the system's error: the log
		// keeps them, the answer says where to look.
		s.log.Error("posbridge: file operation failed", "method", r.Method, "path", r.URL.Path, "kind", kind.String(), "err", err)
		p.Detail = storeline.IOErrorDetail(kind, "the node")
	default:
		p.Detail = detailOf(err)
	}
	var ra retryAfter
	if errors.As(err, &ra) {
		secs := int((ra.after + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

// detailOf is the innermost cause's message: what a till's operator can
// act on, without the internal op chain.
func detailOf(err error) string {
	var e *storeline.Error
	for errors.As(err, &e) {
		if e.Err == nil {
			return e.Kind.String()
		}
		err = e.Err
	}
	return err.Error()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads one JSON object from r's body into v, strictly: the body is
// at most MaxBodyBytes (413), nests at most MaxJSONDepth deep, has no
// unknown fields, no field twice in an object, no field named in another
// case than the spec's (checkShape) and nothing after the object (400).
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return errMalformed("", "Content-Type %q: want application/json", ct)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return storeline.Errorf(storeline.TooLarge, "", "request body over %d bytes", mbe.Limit)
		}
		return errMalformed("", "reading the body: %v", err)
	}
	return decodeJSON(body, s.cfg.MaxJSONDepth, v)
}

// decodeJSON is decode's pure part, also the fuzz target's.
func decodeJSON(body []byte, maxDepth int, v any) error {
	if err := checkShape(body, maxDepth, reflect.TypeOf(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, body, reflect.TypeOf(v))
	}
	if _, err := dec.Token(); err != io.EOF {
		return errMalformed("", "unexpected data after the JSON object")
	}
	return nil
}

// jsonError turns an encoding/json error from decoding body into a value
// of type t into a 400 naming the field by its JSON path (pathOf).
func jsonError(err error, body []byte, t reflect.Type) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var fe *storeline.Error
	switch {
	case errors.As(err, &se):
		return errMalformed("", "malformed JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		f := te.Field
		if p := pathOf(body, t, jsonMiss{typ: te}); p != "" {
			f = p
		}
		return errMalformed(f, "%s: want %s, got JSON %s", f, te.Type, te.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errMalformed("", "the body is empty or cut short")
	}
	msg := err.Error()
	if q, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		key, uerr := strconv.Unquote(q)
		if uerr != nil {
			key = strings.Trim(q, `"`)
		}
		f := key
		if p := pathOf(body, t, jsonMiss{unknown: key}); p != "" {
			f = p
		}
		return errMalformed(f, "unknown field %q", key)
	}
	// Anything else is an UnmarshalJSON or UnmarshalText method refusing
	// a value (ours name no field: they do not know where they are).
	f := pathOf(body, t, jsonMiss{method: err})
	if errors.As(err, &fe) {
		if fe.Field != "" || f == "" {
			return fe
		}
		c := *fe
		c.Field = f
		return &c
	}
	if f != "" {
		return errMalformed(f, "%s: %s", f, strings.TrimPrefix(msg, "json: "))
	}
	return errMalformed("", "malformed JSON: %s", strings.TrimPrefix(msg, "json: "))
}
