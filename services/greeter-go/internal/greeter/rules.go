// Package greeter is the Greeter service: its rules (plain functions, no gRPC, the twin of
// services/greeter's rules.py) and its gRPC wiring (service.go).
package greeter

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"

	"acme.example/common/rpcerr"
)

// The limits and greetings of rules.py.
const (
	MaxNameLength   = 100
	MaxLanguages    = 1000 // one request may ask for at most this many streamed greetings
	DefaultLanguage = "en"
)

// Templates are the greetings by language tag; %s is the name.
var Templates = map[string]string{
	"en": "Hello, %s!",
	"fr": "Bonjour, %s !",
	"es": "¡Hola, %s!",
	"de": "Hallo, %s!",
	"it": "Ciao, %s!",
	"pt": "Olá, %s!",
}

// Greeting is one greeting in one language.
type Greeting struct {
	Language string
	Message  string
}

// supported lists the tags, sorted (the order SayHelloLanguages uses for "every language").
var supported = func() []string {
	tags := make([]string, 0, len(Templates))
	for tag := range Templates {
		tags = append(tags, tag)
	}
	slices.Sort(tags)
	return tags
}()

// Python's full lower-casing (SpecialCasing: final sigma, dotted capital I), as str.lower().
var lower = cases.Lower(language.Und)

// ValidateName is the name without surrounding whitespace; InvalidArgument on field when
// it is empty, longer than MaxNameLength characters or holds a character that is not
// printable.
func ValidateName(name, field string) (string, error) {
	cleaned := strip(name)
	if cleaned == "" {
		return "", rpcerr.InvalidArgument(rpcerr.FieldViolation{Field: field, Description: "must not be empty"})
	}
	if count := utf8.RuneCountInString(cleaned); count > MaxNameLength {
		return "", rpcerr.InvalidArgument(rpcerr.FieldViolation{
			Field:       field,
			Description: fmt.Sprintf("must be at most %d characters, got %d", MaxNameLength, count),
		})
	}
	if !printable(cleaned) {
		return "", rpcerr.InvalidArgument(rpcerr.FieldViolation{
			Field: field, Description: "must not contain control characters",
		})
	}
	return cleaned, nil
}

// ValidateLanguage is the language tag (empty means DefaultLanguage); InvalidArgument on
// field when it is not supported.
func ValidateLanguage(tag, field string) (string, error) {
	cleaned := lower.String(strip(tag))
	if cleaned == "" {
		cleaned = DefaultLanguage
	}
	if _, ok := Templates[cleaned]; !ok {
		return "", rpcerr.InvalidArgument(rpcerr.FieldViolation{
			Field: field,
			Description: fmt.Sprintf(
				"unsupported %s; supported: %s", rpcerr.Echo(cleaned), strings.Join(supported, ", "),
			),
		})
	}
	return cleaned, nil
}

// Greet is one greeting, for example "Hello, Ada!".
func Greet(name, tag string) (string, error) {
	tag, err := ValidateLanguage(tag, "language")
	if err != nil {
		return "", err
	}
	cleaned, err := ValidateName(name, "name")
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(Templates[tag], cleaned), nil
}

// GreetInLanguages is the greeting in each requested language, or in every supported one.
func GreetInLanguages(name string, tags []string) ([]Greeting, error) {
	cleaned, err := ValidateName(name, "name")
	if err != nil {
		return nil, err
	}
	if len(tags) > MaxLanguages {
		return nil, rpcerr.InvalidArgument(rpcerr.FieldViolation{
			Field:       "languages",
			Description: fmt.Sprintf("must list at most %d entries, got %d", MaxLanguages, len(tags)),
		})
	}
	wanted := make([]string, 0, len(tags))
	for index, tag := range tags {
		valid, err := ValidateLanguage(tag, fmt.Sprintf("languages[%d]", index))
		if err != nil {
			return nil, err
		}
		wanted = append(wanted, valid)
	}
	if len(wanted) == 0 {
		wanted = supported
	}
	greetings := make([]Greeting, len(wanted))
	for i, tag := range wanted {
		greetings[i] = Greeting{Language: tag, Message: fmt.Sprintf(Templates[tag], cleaned)}
	}
	return greetings, nil
}

// GreetEveryone is one greeting for all names: "Hello, Ada!", "Hello, Ada and Alan!",
// "Hello, A, B and C!".
func GreetEveryone(names []string) (string, error) {
	if len(names) == 0 {
		return "", rpcerr.InvalidArgument(rpcerr.FieldViolation{
			Field: "name", Description: "the stream must contain at least one name",
		})
	}
	together := names[0]
	if len(names) > 1 {
		together = strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
	}
	return fmt.Sprintf(Templates[DefaultLanguage], together), nil
}

// strip is Python's str.strip(): Go's unicode.IsSpace plus the four information separators
// (U+001C-U+001F) that Python also counts as whitespace.
func strip(text string) string {
	return strings.TrimFunc(text, func(r rune) bool {
		return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
	})
}

// printable is Python's str.isprintable(): no control, format, surrogate, private-use,
// unassigned or separator character other than the ASCII space.
func printable(text string) bool {
	for _, r := range text {
		if r != ' ' && !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
