package storeline

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
)

// Kind classifies an error for callers and for the wire. Kinds travel by
// name between nodes, so new kinds are added only at the end and a name is
// never reused.
type Kind uint8

// The error kinds. The zero value is Internal: an error nobody classified is
// a bug, and is reported as one.
const (
	Internal            Kind = iota // a bug or an unexpected failure; details are logged, never sent
	Invalid                         // the input is malformed or breaks a rule; Field names what
	NotFound                        // the thing asked for does not exist
	Conflict                        // the ID exists with another body, or a unique attribute is taken
	Unauthorized                    // no credentials, or wrong ones
	Forbidden                       // credentials fine, role not allowed
	TooLarge                        // a body, a batch or a page over its limit
	RateLimited                     // too many attempts; retry later
	InsufficientStorage             // the disk is full
	Unavailable                     // a dependency is down or the node is stopping; retry is safe
)

var kindNames = [...]string{
	Internal:            "internal",
	Invalid:             "invalid",
	NotFound:            "not_found",
	Conflict:            "conflict",
	Unauthorized:        "unauthorized",
	Forbidden:           "forbidden",
	TooLarge:            "too_large",
	RateLimited:         "rate_limited",
	InsufficientStorage: "insufficient_storage",
	Unavailable:         "unavailable",
}

// String returns the kind's wire name.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Error lets a Kind be the target of errors.Is: errors.Is(err,
// storeline.Conflict) is true when err carries that kind.
func (k Kind) Error() string { return k.String() }

// ParseKind returns the kind with the given wire name, or Internal.
func ParseKind(name string) Kind {
	for k, n := range kindNames {
		if n == name {
			return Kind(k)
		}
	}
	return Internal
}

// Error is the one error type of Storeline. Op says where it happened
// ("ledger.Append"), Kind what class it is, Field which input field is at
// fault (for Invalid, in the API's spelling: "lines[2].qty"), Err the cause.
type Error struct {
	Op    string
	Kind  Kind
	Field string
	Err   error
}

func (e *Error) Error() string {
	parts := make([]string, 0, 4)
	if e.Op != "" {
		parts = append(parts, e.Op)
	}
	// The kind once: a cause that is an error of the same kind says it
	// ("central.Config.Validate: invalid: MaxVoters: ...", not "invalid:
	// invalid: MaxVoters").
	var cause *Error
	if e.Field != "" || !errors.As(e.Err, &cause) || cause.Kind != e.Kind {
		parts = append(parts, e.Kind.String())
	}
	if e.Field != "" {
		parts = append(parts, e.Field)
	}
	if e.Err != nil {
		parts = append(parts, e.Err.Error())
	}
	return strings.Join(parts, ": ")
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is this error's Kind.
func (e *Error) Is(target error) bool {
	k, ok := target.(Kind)
	return ok && e.Kind == k
}

// E builds an *Error.
func E(op string, kind Kind, err error) error {
	return &Error{Op: op, Kind: kind, Err: err}
}

// Errorf builds an *Error of the given kind with a formatted cause.
func Errorf(kind Kind, op, format string, args ...any) error {
	return &Error{Op: op, Kind: kind, Err: fmt.Errorf(format, args...)}
}

// Invalidf builds an Invalid error naming the offending field.
func Invalidf(field, format string, args ...any) error {
	return &Error{Kind: Invalid, Field: field, Err: fmt.Errorf(format, args...)}
}

// KindOf returns the kind of the first *Error in err's chain, or Internal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// FieldOf returns the field named by the first *Error in err's chain that
// names one, or "".
func FieldOf(err error) string {
	for err != nil {
		var e *Error
		if !errors.As(err, &e) {
			return ""
		}
		if e.Field != "" {
			return e.Field
		}
		err = e.Err
	}
	return ""
}

// IsIOError reports whether err wraps the error of a failed file
// operation (*fs.PathError, *os.LinkError, *os.SyscallError: a poisoned
// ledger, a full disk). Its text names files of a data directory and the
// system's error: an API logs it in full and answers its kind and field
// with a generic detail, never the text. A network error (*net.OpError,
// which wraps an *os.SyscallError too: "connect: connection refused") is
// not one: its text names an address, and what it says ("outcome
// unknown, retry") is for the caller.
func IsIOError(err error) bool {
	var pe *fs.PathError
	var le *os.LinkError
	if errors.As(err, &pe) || errors.As(err, &le) {
		return true
	}
	var se *os.SyscallError
	var ne *net.OpError
	return errors.As(err, &se) && !errors.As(err, &ne)
}

// IOErrorDetail is the detail an API answers for a failed file operation
// (IsIOError) of kind k at who ("the node", "head office"): no path and
// no system text, but what an operator must act on: a full disk says so.
func IOErrorDetail(k Kind, who string) string {
	if k == InsufficientStorage {
		return fmt.Sprintf("%s: no space left on the disk of %s; its log has the cause", k, who)
	}
	return fmt.Sprintf("%s: a file operation of %s failed; its log has the cause", k, who)
}

// prefixField returns err with its field prefixed by p ("lines[2]" + "qty"
// gives "lines[2].qty"), so nested validators can name the full path.
func prefixField(p string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if !errors.As(err, &e) {
		return &Error{Kind: Invalid, Field: p, Err: err}
	}
	c := *e
	switch {
	case c.Field == "":
		c.Field = p
	case strings.HasPrefix(c.Field, "["):
		c.Field = p + c.Field
	default:
		c.Field = p + "." + c.Field
	}
	return &c
}

// ErrPruned is the cause of an error about an event that a shop's journal
// retention removed (ledger.PruneJournal): its ID stays known, so it is
// never counted twice, but its body is gone. It lives here rather than in
// ledger so that the tills' API and the replication client, which may not
// import ledger, can tell it apart.
var ErrPruned = errors.New("event pruned from the journal by retention")
