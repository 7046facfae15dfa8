// Package rpcerr holds the errors that handlers return and their rich gRPC statuses: the Go
// twin of acme_common.errors. A status stays under 4 KiB whatever a client sent (bounded
// message, violations and echoes), so long input is answered with its own status, never
// RESOURCE_EXHAUSTED "metadata size exceeds limit".
package rpcerr

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The bounds of acme_common.errors.
const (
	MaxMessageBytes     = 512 // the status message
	MaxDescriptionBytes = 256 // one field violation's description (and its field path, its reason)
	MaxViolations       = 8   // field violations sent; more are counted in the message
	MaxEchoCharacters   = 32  // of client text repeated in a message: see Echo
)

// FieldViolation is one bad field of a request: its path (e.g. `languages[3]`), what is
// wrong with it and, optionally, the id of the rule it breaks (e.g. `string.max_len`, the
// protovalidate rule id: google.rpc.BadRequest.FieldViolation.reason).
type FieldViolation struct {
	Field       string
	Description string
	Reason      string
}

// Error is an expected failure with a gRPC code and a message safe to show to the caller;
// grpc-go sends it as its status (GRPCStatus).
type Error struct {
	Code       codes.Code
	Message    string
	Violations []FieldViolation // INVALID_ARGUMENT only: sent as a google.rpc.BadRequest
}

func (e *Error) Error() string { return e.Message }

// GRPCStatus is the status the call ends with, BadRequest details included.
func (e *Error) GRPCStatus() *status.Status {
	st := status.New(e.Code, e.Message)
	if len(e.Violations) == 0 {
		return st
	}
	bad := &errdetails.BadRequest{}
	for _, v := range e.Violations {
		bad.FieldViolations = append(bad.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field: v.Field, Description: v.Description, Reason: v.Reason,
		})
	}
	detailed, err := st.WithDetails(bad)
	if err != nil { // a BadRequest always marshals; keep the plain status if it ever did not
		return st
	}
	return detailed
}

// New is an error with code and message (cut to MaxMessageBytes).
func New(code codes.Code, message string) *Error {
	return &Error{Code: code, Message: Truncate(message, MaxMessageBytes)}
}

// ResourceExhausted is a request over a size or count limit of the service.
func ResourceExhausted(message string) *Error {
	return New(codes.ResourceExhausted, message)
}

// InvalidArgument is a malformed request: its message lists the violations (at most
// MaxViolations of them, each bounded; the rest are counted), and so does its BadRequest.
func InvalidArgument(violations ...FieldViolation) *Error {
	kept := make([]FieldViolation, 0, min(len(violations), MaxViolations))
	for _, v := range violations[:min(len(violations), MaxViolations)] {
		kept = append(kept, FieldViolation{
			Field:       Truncate(v.Field, MaxDescriptionBytes),
			Description: Truncate(v.Description, MaxDescriptionBytes),
			Reason:      Truncate(v.Reason, MaxDescriptionBytes),
		})
	}
	more := ""
	if len(violations) > len(kept) {
		more = fmt.Sprintf("; and %d more", len(violations)-len(kept))
	}
	listed := make([]string, len(kept))
	for i, v := range kept {
		listed[i] = v.Field + ": " + v.Description
	}
	message := Truncate(strings.Join(listed, "; "), MaxMessageBytes-len(more)) + more
	err := New(codes.InvalidArgument, message)
	err.Violations = kept
	return err
}

// Truncate cuts text to at most maxBytes of UTF-8 at a character boundary, `…` marking a cut.
func Truncate(text string, maxBytes int) string {
	if len(text) <= maxBytes {
		return text
	}
	return strings.ToValidUTF8(text[:maxBytes-len("…")], "") + "…"
}

// Echo is client-controlled text fit to repeat in an error message: quoted as Python's
// repr() quotes it (so both greeters say the same), cut to MaxEchoCharacters characters with
// the total length said, e.g. `'xxxx…' (8000 characters)`.
func Echo(value string) string {
	count := utf8.RuneCountInString(value)
	if count <= MaxEchoCharacters {
		return PyRepr(value)
	}
	runes := []rune(value)
	return fmt.Sprintf("%s… (%d characters)", PyRepr(string(runes[:MaxEchoCharacters])), count)
}

// PyRepr is Python's repr() of a str: single quotes unless the text holds a single quote and
// no double one; backslash escapes for quotes, backslashes, \t \n \r and the characters that
// are not printable (\xNN, \uNNNN, \UNNNNNNNN).
func PyRepr(value string) string {
	quote := '\''
	if strings.ContainsRune(value, '\'') && !strings.ContainsRune(value, '"') {
		quote = '"'
	}
	var b strings.Builder
	b.WriteRune(quote)
	for _, r := range value {
		switch {
		case r == quote || r == '\\':
			b.WriteRune('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == ' ' || unicode.IsPrint(r):
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteRune(quote)
	return b.String()
}
