package greeter

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"unicode"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	greeterv1 "acme.example/protos/acme/greeter/v1"

	"acme.example/common/rpcerr"
)

// outcome is a case's expected answer, as the Python rules gave it
// (tests/rules_cases.py wrote testdata/rules_cases.json).
type outcome struct {
	OK         any        `json:"ok"`
	Message    string     `json:"message"`
	Violations [][]string `json:"violations"`
}

type ruleCases struct {
	Greet []struct {
		Name     string `json:"name"`
		Language string `json:"language"`
		outcome
	} `json:"greet"`
	GreetInLanguages []struct {
		Name      string   `json:"name"`
		Languages []string `json:"languages"`
		outcome
	} `json:"greet_in_languages"`
	GreetEveryone []struct {
		Names []string `json:"names"`
		outcome
	} `json:"greet_everyone"`
}

func loadCases(t *testing.T) ruleCases {
	t.Helper()
	data, err := os.ReadFile("testdata/rules_cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var c ruleCases
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// check compares what a Go rule returned with what the Python rule answered.
func check(t *testing.T, what string, got any, err error, want outcome) {
	t.Helper()
	if want.Message == "" {
		if err != nil {
			t.Errorf("%s: error %v, want %v", what, err, want.OK)
			return
		}
		gotJSON, _ := json.Marshal(got)
		wantJSON, _ := json.Marshal(want.OK)
		if string(gotJSON) != string(wantJSON) {
			t.Errorf("%s = %s, want %s", what, gotJSON, wantJSON)
		}
		return
	}
	var rpcErr *rpcerr.Error
	if !errors.As(err, &rpcErr) {
		t.Errorf("%s: got %v (%v), want error %q", what, got, err, want.Message)
		return
	}
	violations := make([][]string, len(rpcErr.Violations))
	for i, v := range rpcErr.Violations {
		violations[i] = []string{v.Field, v.Description}
	}
	if rpcErr.Message != want.Message || !reflect.DeepEqual(violations, want.Violations) {
		t.Errorf("%s: error %q %q, want %q %q", what, rpcErr.Message, violations, want.Message, want.Violations)
	}
}

func TestGreetAgreesWithPythonRules(t *testing.T) {
	for _, c := range loadCases(t).Greet {
		got, err := Greet(c.Name, c.Language)
		check(t, "Greet("+rpcerr.PyRepr(c.Name)+", "+rpcerr.PyRepr(c.Language)+")", got, err, c.outcome)
	}
}

func TestGreetInLanguagesAgreesWithPythonRules(t *testing.T) {
	for _, c := range loadCases(t).GreetInLanguages {
		greetings, err := GreetInLanguages(c.Name, c.Languages)
		var got [][]string
		for _, g := range greetings {
			got = append(got, []string{g.Language, g.Message})
		}
		if got == nil {
			got = [][]string{}
		}
		check(t, "GreetInLanguages("+rpcerr.PyRepr(c.Name)+", "+strings.Join(c.Languages, ",")+")", got, err, c.outcome)
	}
}

func TestGreetEveryoneAgreesWithPythonRules(t *testing.T) {
	for _, c := range loadCases(t).GreetEveryone {
		got, err := GreetEveryone(c.Names)
		check(t, "GreetEveryone("+strings.Join(c.Names, ",")+")", got, err, c.outcome)
	}
}

// The cases are inputs the contract accepts: the only ones the rules are given.
func TestTheCasesAreInputsTheContractAccepts(t *testing.T) {
	c := loadCases(t)
	var requests []proto.Message
	for _, g := range c.Greet {
		requests = append(requests, &greeterv1.SayHelloRequest{Name: g.Name, Language: g.Language})
	}
	for _, g := range c.GreetInLanguages {
		requests = append(requests, &greeterv1.SayHelloLanguagesRequest{Name: g.Name, Languages: g.Languages})
	}
	for _, g := range c.GreetEveryone {
		for _, name := range g.Names {
			requests = append(requests, &greeterv1.GreetManyRequest{Name: name})
		}
	}
	for _, request := range requests {
		if err := protovalidate.Validate(request); err != nil {
			t.Errorf("%v: %v", prototext.Format(request), err)
		}
	}
}

// The contract's `language.supported` rule and Templates name the same tags: every tag of
// one to three ASCII letters is accepted exactly when it has a template, in any case.
func TestTheContractsLanguagesAreTheTemplates(t *testing.T) {
	accepted := func(tag string) bool {
		return protovalidate.Validate(&greeterv1.SayHelloRequest{Name: "Ada", Language: tag}) == nil
	}
	var tags []string
	for _, a := range letters {
		tags = append(tags, string(a))
		for _, b := range letters {
			tags = append(tags, string(a)+string(b))
			for _, c := range letters {
				tags = append(tags, string(a)+string(b)+string(c))
			}
		}
	}
	for _, tag := range tags {
		_, templated := Templates[tag]
		if accepted(tag) != templated || accepted(strings.ToUpper(tag)) != templated {
			t.Errorf("tag %q: accepted by the contract %v, has a template %v", tag, accepted(tag), templated)
		}
	}
	if !accepted("") || !accepted(" \tDe\n") {
		t.Error("the contract refuses an empty tag or one in whitespace")
	}
}

const letters = "abcdefghijklmnopqrstuvwxyz"

// What CleanName trims is what the contract counts as whitespace: a name of one such
// character is blank (`name.not_blank`); any other space (Unicode's) is kept.
func TestTheTrimmedWhitespaceIsTheContracts(t *testing.T) {
	for r := rune(0); r <= 0x3000; r++ {
		if !unicode.IsSpace(r) && !strings.ContainsRune(Whitespace, r) {
			continue
		}
		blank := strings.Contains(fmt.Sprint(protovalidate.Validate(&greeterv1.SayHelloRequest{Name: string(r)})), "must not be empty")
		trimmed := CleanName(string(r)+"Ada"+string(r)) == "Ada"
		if blank != strings.ContainsRune(Whitespace, r) || trimmed != blank {
			t.Errorf("%U: blank for the contract %v, trimmed %v", r, blank, trimmed)
		}
	}
}

func TestATagWithoutATemplateIsAnInternalError(t *testing.T) {
	_, err := Greet("Ada", "xx")
	var rpcErr *rpcerr.Error
	if err == nil || errors.As(err, &rpcErr) {
		t.Fatalf("Greet(Ada, xx): %v, want a plain error (INTERNAL)", err)
	}
}

func TestStatusCarriesBadRequest(t *testing.T) {
	_, err := GreetEveryone(nil)
	var rpcErr *rpcerr.Error
	if !errors.As(err, &rpcErr) {
		t.Fatalf("%v is not an rpcerr.Error", err)
	}
	st := rpcErr.GRPCStatus()
	if st.Code().String() != "InvalidArgument" || st.Message() != "name: the stream must contain at least one name" {
		t.Fatalf("status %v %q", st.Code(), st.Message())
	}
	if details := st.Details(); len(details) != 1 {
		t.Fatalf("details %v, want one BadRequest", details)
	}
}
