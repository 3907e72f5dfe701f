package central

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/storeline/storeline"
)

// statusOf is the one table from error kinds to HTTP statuses (the
// pattern of posbridge/problem.go; central may not import posbridge).
// Invalid is 422; a malformed body (syntax, unknown fields, wrong types)
// is 400 (see errMalformed).
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

type malformed struct{ err error }

func (m malformed) Error() string { return m.err.Error() }
func (m malformed) Unwrap() error { return m.err }

// errMalformed builds a 400 Invalid error naming field.
func errMalformed(field, format string, args ...any) error {
	return &storeline.Error{Kind: storeline.Invalid, Field: field, Err: malformed{fmt.Errorf(format, args...)}}
}

// problem is an RFC 9457 answer; Kind is the error kind's wire name, so a
// node forwarding a request can return the leader's error as it was.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Kind   string `json:"kind"`
	Detail string `json:"detail,omitempty"`
	Field  string `json:"field,omitempty"`
}

// writeProblem answers err as application/problem+json: an Internal error
// without detail, the error of a failed file operation with a generic
// detail (Node.problem logs both), anything else with its innermost
// message.
func writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	kind := storeline.KindOf(err)
	status, ok := statusOf[kind]
	if !ok {
		kind, status = storeline.Internal, http.StatusInternalServerError
	}
	var mf malformed
	if kind == storeline.Invalid && errors.As(err, &mf) {
		status = http.StatusBadRequest
	}
	if errors.Is(err, errNotAcceptable) {
		status = http.StatusNotAcceptable // an Accept taking no type the answer has
	}
	p := problem{
		Type:   "https://storeline.dev/problems/" + kind.String(),
		Title:  http.StatusText(status),
		Status: status,
		Kind:   kind.String(),
		Field:  storeline.FieldOf(err),
		Detail: errMessage(err),
	}
	switch {
	case kind == storeline.Internal:
		p.Detail, p.Field = "", ""
	case storeline.IsIOError(err):
		// A failed file operation (a failed sync, a full disk) names the
		// data directory's files and the system's error: the log keeps
		// them (Node.problem), the answer says where to look.
		p.Detail = storeline.IOErrorDetail(kind, "head office")
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// problem logs what writeProblem keeps out of the answer (an Internal
// error, a failed file operation) and answers err.
func (n *Node) problem(w http.ResponseWriter, r *http.Request, err error) {
	if storeline.KindOf(err) == storeline.Internal || storeline.IsIOError(err) {
		n.log.Error("central: request failed", "method", r.Method, "path", r.URL.Path, "kind", storeline.KindOf(err).String(), "err", err)
	}
	writeProblem(w, r, err)
}
