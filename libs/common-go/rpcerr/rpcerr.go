// Package rpcerr holds the errors that business rules return and their rich gRPC statuses:
// the Go twin of acme_common's errors (docs/errors.md), with the same codes, google.rpc
// details (Google's error model, AIP-193) and bounds. A status stays under 4 KiB whatever a
// client sent (bounded message, violations, names and echoes), so long input is answered with
// its own status, never RESOURCE_EXHAUSTED "metadata size exceeds limit".
package rpcerr

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

// The bounds of acme_common's errors.
const (
	MaxMessageBytes     = 512 // the status message
	MaxDescriptionBytes = 256 // a violation's description, an ErrorInfo metadata value, a ResourceInfo field
	MaxNameBytes        = 64  // a field path, a precondition's type and subject, an ErrorInfo's domain
	MaxViolations       = 8   // violations sent; more are counted in the message
	MaxEchoCharacters   = 32  // of client text repeated in a message: see Echo

	// ErrorInfo's reason and metadata keys (AIP-193): constants of the code that returns the
	// error, so a bad one panics (a programming error), as acme_common raises ValueError.
	MaxReasonCharacters      = 63
	MaxMetadataKeyCharacters = 64
	MaxMetadataEntries       = 8
)

// ErrorDomain is ErrorInfo.domain when an Info names none.
const ErrorDomain = "acme.example"

var (
	reasonForm      = regexp.MustCompile(`^[A-Z][A-Z0-9_]+[A-Z0-9]$`)
	metadataKeyForm = regexp.MustCompile(`^[a-z][a-zA-Z0-9\-_]+$`)
)

// FieldViolation is one bad field of a request: its path (e.g. `languages[3]`), what is
// wrong with it and, optionally, the id of the rule it breaks (e.g. `string.max_len`, a
// protovalidate rule id: google.rpc.BadRequest.FieldViolation.reason).
type FieldViolation struct {
	Field       string
	Description string
	Reason      string
}

// PreconditionViolation is one unmet precondition (google.rpc.PreconditionFailure.Violation):
// its Type, a service-specific constant (e.g. `STATE`), its Subject (e.g. `orders/o-1`) and how
// it failed.
type PreconditionViolation struct {
	Type        string
	Subject     string
	Description string
}

// Resource is the google.rpc.ResourceInfo of NotFound and AlreadyExists: Type (e.g. `order`
// or a type URL), Name, Owner (optional) and Description, which is the message too (empty:
// `<type> '<name>' not found`).
type Resource struct {
	Type        string
	Name        string
	Owner       string
	Description string
}

// Info is the google.rpc.ErrorInfo of PermissionDenied, Unauthenticated, Aborted and
// Unimplemented: Reason (UPPER_SNAKE_CASE, at most 63 characters), Domain (empty:
// ErrorDomain) and Metadata (at most MaxMetadataEntries; lowerCamelCase keys of at most 64
// characters; values cut to MaxDescriptionBytes).
type Info struct {
	Reason   string
	Domain   string
	Metadata map[string]string
}

// Error is an expected failure with a gRPC code, a message safe to show to the caller and
// the google.rpc detail of its code; grpc-go sends it as its status (GRPCStatus).
type Error struct {
	Code       codes.Code
	Message    string
	Violations []FieldViolation     // INVALID_ARGUMENT and OUT_OF_RANGE: what Detail lists
	Detail     protoadapt.MessageV2 // the google.rpc detail the status carries, if any
}

func (e *Error) Error() string { return e.Message }

// GRPCStatus is the status the call ends with, its Detail included.
func (e *Error) GRPCStatus() *status.Status {
	st := status.New(e.Code, e.Message)
	if e.Detail == nil {
		return st
	}
	detailed, err := st.WithDetails(protoadapt.MessageV1Of(e.Detail))
	if err != nil { // a google.rpc detail always marshals; keep the plain status if it did not
		return st
	}
	return detailed
}

// New is an error with code and message (cut to MaxMessageBytes) and no detail.
func New(code codes.Code, message string) *Error {
	return &Error{Code: code, Message: Truncate(message, MaxMessageBytes)}
}

// ResourceExhausted is a request over a size or count limit of the service.
func ResourceExhausted(message string) *Error {
	return New(codes.ResourceExhausted, message)
}

// Unavailable is a dependency that cannot be reached right now; the call may be retried.
func Unavailable(message string) *Error { return New(codes.Unavailable, message) }

// DeadlineExceeded is work that could not finish before the deadline.
func DeadlineExceeded(message string) *Error { return New(codes.DeadlineExceeded, message) }

// listing is the message of an error that lists violations: `a: why; b: why` within
// MaxMessageBytes, the violations not sent counted (`; and 3 more`).
func listing(lines []string, unsent int) string {
	more := ""
	if unsent > 0 {
		more = fmt.Sprintf("; and %d more", unsent)
	}
	return Truncate(strings.Join(lines, "; "), MaxMessageBytes-len(more)) + more
}

func badRequest(code codes.Code, violations []FieldViolation) *Error {
	kept := make([]FieldViolation, 0, min(len(violations), MaxViolations))
	detail := &errdetails.BadRequest{}
	lines := make([]string, 0, cap(kept))
	for _, v := range violations[:cap(kept)] {
		v = FieldViolation{
			Field:       Truncate(v.Field, MaxNameBytes),
			Description: Truncate(v.Description, MaxDescriptionBytes),
			Reason:      Truncate(v.Reason, MaxNameBytes),
		}
		kept = append(kept, v)
		lines = append(lines, v.Field+": "+v.Description)
		detail.FieldViolations = append(detail.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field: v.Field, Description: v.Description, Reason: v.Reason,
		})
	}
	err := New(code, listing(lines, len(violations)-len(kept)))
	err.Violations = kept
	err.Detail = detail
	return err
}

// InvalidArgument is a malformed request: INVALID_ARGUMENT whose message lists the violations
// (at most MaxViolations of them, each bounded; the rest are counted), and so does its
// google.rpc.BadRequest.
func InvalidArgument(violations ...FieldViolation) *Error {
	return badRequest(codes.InvalidArgument, violations)
}

// OutOfRange is a field past the valid range of the current state (a page past the last
// one): OUT_OF_RANGE with a google.rpc.BadRequest, bounded as InvalidArgument's.
func OutOfRange(violations ...FieldViolation) *Error {
	return badRequest(codes.OutOfRange, violations)
}

// FailedPrecondition is a system not in the state the operation needs: FAILED_PRECONDITION
// with a google.rpc.PreconditionFailure; the message lists `subject: description` of each (at
// most MaxViolations; types and subjects cut to MaxNameBytes, descriptions to
// MaxDescriptionBytes; the rest counted).
func FailedPrecondition(violations ...PreconditionViolation) *Error {
	kept := min(len(violations), MaxViolations)
	detail := &errdetails.PreconditionFailure{}
	lines := make([]string, 0, kept)
	for _, v := range violations[:kept] {
		item := &errdetails.PreconditionFailure_Violation{
			Type:        Truncate(v.Type, MaxNameBytes),
			Subject:     Truncate(v.Subject, MaxNameBytes),
			Description: Truncate(v.Description, MaxDescriptionBytes),
		}
		detail.Violations = append(detail.Violations, item)
		lines = append(lines, item.Subject+": "+item.Description)
	}
	err := New(codes.FailedPrecondition, listing(lines, len(violations)-kept))
	err.Detail = detail
	return err
}

func resourceError(code codes.Code, outcome string, r Resource) *Error {
	info := &errdetails.ResourceInfo{
		ResourceType: Truncate(r.Type, MaxDescriptionBytes),
		ResourceName: Truncate(r.Name, MaxDescriptionBytes),
		Owner:        Truncate(r.Owner, MaxDescriptionBytes),
	}
	message := r.Description
	if message == "" {
		message = info.ResourceType + " " + Echo(r.Name) + " " + outcome
	}
	err := New(code, message)
	info.Description = err.Message
	err.Detail = info
	return err
}

// NotFound is a resource the request names that does not exist: NOT_FOUND with a
// google.rpc.ResourceInfo, e.g. NotFound(Resource{Type: "order", Name: id}).
func NotFound(r Resource) *Error { return resourceError(codes.NotFound, "not found", r) }

// AlreadyExists is a resource the request would create that exists already: ALREADY_EXISTS
// with a google.rpc.ResourceInfo.
func AlreadyExists(r Resource) *Error {
	return resourceError(codes.AlreadyExists, "already exists", r)
}

func errorInfo(code codes.Code, message string, info Info) *Error {
	if utf8.RuneCountInString(info.Reason) > MaxReasonCharacters || !reasonForm.MatchString(info.Reason) {
		panic(fmt.Sprintf("ErrorInfo reason %s is not UPPER_SNAKE_CASE of at most %d characters (AIP-193)",
			Echo(info.Reason), MaxReasonCharacters))
	}
	if len(info.Metadata) > MaxMetadataEntries {
		panic(fmt.Sprintf("ErrorInfo metadata has %d entries, at most %d are sent", len(info.Metadata), MaxMetadataEntries))
	}
	detail := &errdetails.ErrorInfo{Reason: info.Reason, Domain: Truncate(info.Domain, MaxNameBytes)}
	if info.Domain == "" {
		detail.Domain = ErrorDomain
	}
	for key, value := range info.Metadata {
		if utf8.RuneCountInString(key) > MaxMetadataKeyCharacters || !metadataKeyForm.MatchString(key) {
			panic(fmt.Sprintf("ErrorInfo metadata key %s is not lowerCamelCase of at most %d characters (AIP-193)",
				Echo(key), MaxMetadataKeyCharacters))
		}
		if detail.Metadata == nil {
			detail.Metadata = map[string]string{}
		}
		detail.Metadata[key] = Truncate(value, MaxDescriptionBytes)
	}
	err := New(code, message)
	err.Detail = detail
	return err
}

// PermissionDenied is an operation the (known) caller may not do: PERMISSION_DENIED with a
// google.rpc.ErrorInfo, e.g. PermissionDenied("only the buyer may cancel an order",
// Info{Reason: "NOT_ORDER_OWNER"}). A bad Reason or metadata key panics.
func PermissionDenied(message string, info Info) *Error {
	return errorInfo(codes.PermissionDenied, message, info)
}

// Unauthenticated is a request without valid credentials for the operation: UNAUTHENTICATED
// with a google.rpc.ErrorInfo.
func Unauthenticated(message string, info Info) *Error {
	return errorInfo(codes.Unauthenticated, message, info)
}

// Aborted is an operation that lost a concurrency conflict and may be retried from a fresh
// read: ABORTED with a google.rpc.ErrorInfo.
func Aborted(message string, info Info) *Error { return errorInfo(codes.Aborted, message, info) }

// Unimplemented is an operation, or an option of it, this service does not support (yet):
// UNIMPLEMENTED with a google.rpc.ErrorInfo (AIP-193 asks one of every error).
func Unimplemented(message string, info Info) *Error {
	return errorInfo(codes.Unimplemented, message, info)
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
