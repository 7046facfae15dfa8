// Package greeter is the Greeter service: its rules (plain functions, no gRPC, the twin of
// services/greeter's rules.py) and its gRPC wiring (service.go).
//
// What a request must satisfy is the contract's (proto/acme/greeter/v1/greeter.proto: a
// name's length and characters, the supported language tags, how many languages a request
// may list), and libs/common-go refuses a request that breaks it before the service sees it.
// What stays here is what those rules cannot say: trimming the surrounding whitespace the
// contract allows, which greeting each supported tag gets (the proto's `language.supported`
// rule lists the same tags: rules_test.go fails when they differ), and that a GreetMany
// stream carries at least one name (a rule over the stream, not over one message). How many
// names a stream may carry is a server setting (GREETER_MAX_STREAM_NAMES, service.go).
package greeter

import (
	"fmt"
	"slices"
	"strings"

	"acme.example/common/rpcerr"
)

// DefaultLanguage is the tag of an empty language.
const DefaultLanguage = "en"

// Templates are the greetings by language tag; %s is the name.
var Templates = map[string]string{
	"en": "Hello, %s!",
	"fr": "Bonjour, %s !",
	"es": "¡Hola, %s!",
	"de": "Hallo, %s!",
	"it": "Ciao, %s!",
	"pt": "Olá, %s!",
}

// Whitespace is what the contract allows around a name or a language tag, and what is
// trimmed: ASCII only, as its rules say. strings.TrimSpace would also take Unicode spaces
// (U+0085, U+00A0, U+3000...), which the contract counts as part of the name.
const Whitespace = " \t\n\v\f\r"

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

// CleanName is the name without the surrounding whitespace the contract allows.
func CleanName(name string) string {
	return strings.Trim(name, Whitespace)
}

// LanguageTag is the Templates key of a language tag the contract accepts: trimmed, in lower
// case (the contract's tags are ASCII letters), DefaultLanguage when empty.
func LanguageTag(tag string) string {
	if cleaned := strings.ToLower(strings.Trim(tag, Whitespace)); cleaned != "" {
		return cleaned
	}
	return DefaultLanguage
}

// templateOf is the greeting of a LanguageTag; an error (INTERNAL, as the Python greeter's
// KeyError) for a tag without one, which the contract accepts only if its tags and
// Templates differ.
func templateOf(key string) (string, error) {
	template, ok := Templates[key]
	if !ok {
		return "", fmt.Errorf("no greeting template for the language tag %q", key)
	}
	return template, nil
}

// Greet is one greeting, for example "Hello, Ada!".
func Greet(name, tag string) (string, error) {
	template, err := templateOf(LanguageTag(tag))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(template, CleanName(name)), nil
}

// GreetInLanguages is the greeting in each requested language, or in every supported one.
func GreetInLanguages(name string, tags []string) ([]Greeting, error) {
	keys := supported
	if len(tags) > 0 {
		keys = make([]string, len(tags))
		for i, tag := range tags {
			keys[i] = LanguageTag(tag)
		}
	}
	cleaned := CleanName(name)
	greetings := make([]Greeting, len(keys))
	for i, key := range keys {
		template, err := templateOf(key)
		if err != nil {
			return nil, err
		}
		greetings[i] = Greeting{Language: key, Message: fmt.Sprintf(template, cleaned)}
	}
	return greetings, nil
}

// GreetEveryone is one greeting for all names: "Hello, Ada!", "Hello, Ada and Alan!",
// "Hello, A, B and C!"; InvalidArgument for none (the stream must carry at least one name).
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
