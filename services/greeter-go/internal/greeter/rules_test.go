package greeter

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

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

func TestAtMostMaxLanguagesAreGreeted(t *testing.T) {
	tags := make([]string, MaxLanguages)
	for i := range tags {
		tags[i] = "de"
	}
	greetings, err := GreetInLanguages("Ada", tags)
	if err != nil || len(greetings) != MaxLanguages {
		t.Fatalf("%d greetings, %v; want %d", len(greetings), err, MaxLanguages)
	}
	if _, err := GreetInLanguages("Ada", append(tags, "de")); err == nil {
		t.Fatal("one more language than MaxLanguages was greeted")
	}
}

func TestStatusCarriesBadRequest(t *testing.T) {
	_, err := Greet("", "")
	var rpcErr *rpcerr.Error
	if !errors.As(err, &rpcErr) {
		t.Fatalf("%v is not an rpcerr.Error", err)
	}
	st := rpcErr.GRPCStatus()
	if st.Code().String() != "InvalidArgument" || st.Message() != "name: must not be empty" {
		t.Fatalf("status %v %q", st.Code(), st.Message())
	}
	if details := st.Details(); len(details) != 1 {
		t.Fatalf("details %v, want one BadRequest", details)
	}
}
