package api

import (
	"errors"
	"fmt"
)

// Sentinel error kinds. Services wrap them (see Errorf); the server maps them
// to HTTP status codes in one place and the client maps them back, so callers
// test errors with errors.Is and never see status codes.
var (
	ErrNotFound       = errors.New("not found")
	ErrExists         = errors.New("already exists")
	ErrInvalid        = errors.New("invalid argument")
	ErrConflict       = errors.New("conflict")
	ErrPermission     = errors.New("permission denied")
	ErrNotImplemented = errors.New("not implemented")
	ErrUnavailable    = errors.New("unavailable")
)

// Error codes on the wire, one per sentinel.
var codes = []struct {
	code string
	err  error
}{
	{"not_found", ErrNotFound},
	{"already_exists", ErrExists},
	{"invalid_argument", ErrInvalid},
	{"conflict", ErrConflict},
	{"permission_denied", ErrPermission},
	{"not_implemented", ErrNotImplemented},
	{"unavailable", ErrUnavailable},
}

// CodeOf returns the wire code for err ("internal" when it wraps no sentinel).
func CodeOf(err error) string {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "internal"
}

// KindOf returns the sentinel for a wire code, or nil.
func KindOf(code string) error {
	for _, c := range codes {
		if c.code == code {
			return c.err
		}
	}
	return nil
}

// kindError carries a user-facing message and the sentinel kind.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// Errorf builds an error of the given kind with a formatted message (which may
// itself wrap another error with %w). The message is what users see.
func Errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}

// ErrorBody is the one JSON error body every route returns on failure.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}
