// Package settings reads a Go service's configuration from environment variables with the
// names, defaults and validation of acme_common.settings.ServerSettings (docs/configuration.md
// lists them), plus the variables of the service's own model (Model.Own, e.g. greeter-go's
// GreeterSettings). A bad value is reported as pydantic
// reports it, naming the variable (never echoing a secret), and the process exits 2.
package settings

import (
	"fmt"
	"math"
	"math/big"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"acme.example/common/rpcerr"
)

// Settings is what every Go service reads from its environment (ServerSettings).
type Settings struct {
	// ProcessSettings
	LogLevel        string // DEBUG, INFO, WARNING, ERROR
	LogFormat       string // json, text
	AccessLog       string // all, errors, off
	InstanceName    string
	AuthTokens      []string
	MetricsPort     int
	TracingExporter string // none, console, otlp: read and validated; see the README
	EventLoop       string // uvloop, asyncio: read and validated; no meaning in Go

	// ServerSettings
	GRPCHost                 string
	GRPCPort                 int
	GracePeriod              time.Duration
	DrainDelay               time.Duration
	Workers                  int
	MaxConcurrentRPCs        int
	MaxConcurrentStreams     int
	MaxMessageBytes          int
	KeepaliveMinPingInterval time.Duration
	MaxConnectionAge         time.Duration
	MaxConnectionAgeGrace    time.Duration
	TLSCertFile              string
	TLSKeyFile               string
	TLSClientCAFile          string
	AdminPort                *int // nil: no admin server; 0: any free port
	AdminServicesOnMainPort  bool
	Compression              string // none, gzip, deflate
}

// Model is one service's settings model: Name names it in errors (GreeterSettings), Port is
// GRPC_PORT's default, and Own (optional) reads the service's own variables with the Reader's
// checks, after the shared ones: a bad one is reported with them, in the same error.
type Model struct {
	Name string
	Port int
	Own  func(r *Reader)
}

// Problem is one invalid setting: its variable (empty for a combination of them), what is
// wrong, and the value when it may be shown.
type Problem struct {
	Variable string
	Message  string
	Input    *string
}

// Error lists every invalid setting of a Load.
type Error struct {
	Model    string
	Problems []Problem
}

func (e *Error) Error() string {
	lines := []string{fmt.Sprintf("invalid configuration for %s:", e.Model)}
	for _, p := range e.Problems {
		shown := ""
		if p.Input != nil {
			shown = fmt.Sprintf(" (got %s)", rpcerr.PyRepr(*p.Input))
		}
		if p.Variable == "" {
			lines = append(lines, "  "+p.Message)
		} else {
			lines = append(lines, fmt.Sprintf("  %s: %s%s", p.Variable, p.Message, shown))
		}
	}
	return strings.Join(lines, "\n")
}

// Environ is the environment as pydantic-settings reads it: names are case-insensitive.
func Environ() map[string]string {
	env := map[string]string{}
	for _, entry := range os.Environ() {
		name, value, _ := strings.Cut(entry, "=")
		env[strings.ToUpper(name)] = value
	}
	return env
}

// Load reads the settings of model from env (upper-case names, see Environ).
func Load(env map[string]string, model Model) (*Settings, error) {
	r := &Reader{env: env}
	hostname, _ := os.Hostname()
	s := &Settings{
		LogLevel:        r.Choice("LOG_LEVEL", "INFO", "DEBUG", "INFO", "WARNING", "ERROR"),
		LogFormat:       r.Choice("LOG_FORMAT", "json", "json", "text"),
		AccessLog:       r.Choice("ACCESS_LOG", "all", "all", "errors", "off"),
		InstanceName:    r.Text("INSTANCE_NAME", hostname),
		AuthTokens:      r.Tokens("AUTH_TOKENS"),
		MetricsPort:     r.Integer("METRICS_PORT", 0, Bounds{GE: Ptr(0), LE: Ptr(65535)}),
		TracingExporter: r.Choice("TRACING_EXPORTER", "none", "none", "console", "otlp"),
		EventLoop:       r.Choice("EVENT_LOOP", "uvloop", "uvloop", "asyncio"),

		GRPCHost:                 r.Text("GRPC_HOST", "0.0.0.0"),
		GRPCPort:                 r.Integer("GRPC_PORT", model.Port, Bounds{GE: Ptr(0), LE: Ptr(65535)}),
		GracePeriod:              r.Seconds("GRPC_GRACE_PERIOD", 10, Bounds{GE: Ptr(0), LE: Ptr(300)}),
		DrainDelay:               r.Seconds("GRPC_DRAIN_DELAY", 0, Bounds{GE: Ptr(0), LE: Ptr(60)}),
		Workers:                  r.Integer("GRPC_WORKERS", 1, Bounds{GE: Ptr(1), LE: Ptr(64)}),
		MaxConcurrentRPCs:        r.Integer("GRPC_MAX_CONCURRENT_RPCS", 1000, Bounds{GE: Ptr(1)}),
		MaxConcurrentStreams:     r.Integer("GRPC_MAX_CONCURRENT_STREAMS", 32, Bounds{GE: Ptr(1)}),
		MaxMessageBytes:          r.Integer("GRPC_MAX_MESSAGE_BYTES", 256*1024, Bounds{GE: Ptr(1024)}),
		KeepaliveMinPingInterval: r.Seconds("GRPC_KEEPALIVE_MIN_PING_INTERVAL", 10, Bounds{GT: Ptr(0), LE: Ptr(3600)}),
		MaxConnectionAge:         r.Seconds("GRPC_MAX_CONNECTION_AGE", 300, Bounds{GT: Ptr(0), LE: Ptr(86400)}),
		MaxConnectionAgeGrace:    r.Seconds("GRPC_MAX_CONNECTION_AGE_GRACE", 30, Bounds{GE: Ptr(0), LE: Ptr(3600)}),
		TLSCertFile:              r.File("TLS_CERT_FILE"),
		TLSKeyFile:               r.File("TLS_KEY_FILE"),
		TLSClientCAFile:          r.File("TLS_CLIENT_CA_FILE"),
		AdminPort:                r.OptionalPort("ADMIN_PORT"),
		AdminServicesOnMainPort:  r.Boolean("ADMIN_SERVICES_ON_MAIN_PORT", true),
		Compression:              r.Choice("GRPC_COMPRESSION", "none", "none", "gzip", "deflate"),
	}
	if model.Own != nil {
		model.Own(r)
	}
	if len(r.problems) == 0 { // as pydantic: the combinations only once every field is valid
		if message := s.combinations(); message != "" {
			r.problems = append(r.problems, Problem{Message: message})
		}
	}
	if len(r.problems) > 0 {
		return nil, &Error{Model: model.Name, Problems: r.problems}
	}
	return s, nil
}

// combinations is ServerSettings._check_combinations: the first fault, or "".
func (s *Settings) combinations() string {
	if s.Workers > 1 && s.GRPCPort == 0 {
		return "GRPC_WORKERS > 1 needs a fixed GRPC_PORT for the workers to share"
	}
	if (s.TLSCertFile == "") != (s.TLSKeyFile == "") {
		return "TLS_CERT_FILE and TLS_KEY_FILE must be set together"
	}
	if s.TLSClientCAFile != "" && s.TLSCertFile == "" {
		return "TLS_CLIENT_CA_FILE (mTLS) needs TLS_CERT_FILE and TLS_KEY_FILE"
	}
	admin := 0
	if s.AdminPort != nil {
		admin = *s.AdminPort
	}
	var fixed []string
	seen := map[int]bool{}
	same := false
	for _, port := range []struct {
		name  string
		value int
	}{{"GRPC_PORT", s.GRPCPort}, {"METRICS_PORT", s.MetricsPort}, {"ADMIN_PORT", admin}} {
		if port.value == 0 {
			continue
		}
		fixed = append(fixed, fmt.Sprintf("%s=%d", port.name, port.value))
		same = same || seen[port.value]
		seen[port.value] = true
	}
	if same {
		return "two ports are the same: " + strings.Join(fixed, ", ")
	}
	if s.TLSCertFile != "" {
		if err := CheckPair(s.TLSCertFile, s.TLSKeyFile); err != nil {
			return err.Error()
		}
	}
	if s.TLSClientCAFile != "" {
		if err := CheckCABundle(s.TLSClientCAFile); err != nil {
			return err.Error()
		}
	}
	return ""
}

// Reader parses variables, collecting a Problem per bad one (its methods return the fallback
// or the value given; Load reports every Problem at once).
type Reader struct {
	env      map[string]string
	problems []Problem
}

func (r *Reader) fail(variable, message, input string) {
	p := Problem{Variable: variable, Message: message}
	if !strings.Contains(variable, "TOKEN") && !strings.Contains(variable, "KEY") {
		p.Input = &input
	}
	r.problems = append(r.problems, p)
}

// Text is a non-empty string.
func (r *Reader) Text(name, fallback string) string {
	value, ok := r.env[name]
	if !ok {
		return fallback
	}
	if value == "" {
		r.fail(name, "String should have at least 1 character", value)
	}
	return value
}

// Choice is one of options.
func (r *Reader) Choice(name, fallback string, options ...string) string {
	value, ok := r.env[name]
	if !ok {
		return fallback
	}
	if !slices.Contains(options, value) {
		quoted := make([]string, len(options))
		for i, option := range options {
			quoted[i] = "'" + option + "'"
		}
		listed := strings.Join(quoted[:len(quoted)-1], ", ") + " or " + quoted[len(quoted)-1]
		r.fail(name, "Input should be "+listed, value)
	}
	return value
}

// Tokens is a comma-separated list, each stripped, empty ones dropped.
func (r *Reader) Tokens(name string) []string {
	var tokens []string
	for _, token := range strings.Split(r.env[name], ",") {
		if token = strings.TrimSpace(token); token != "" {
			tokens = append(tokens, token)
		}
	}
	return tokens
}

// Bounds are the limits of a number, as pydantic's ge, gt and le (nil: none).
type Bounds struct {
	GE, GT, LE *float64
}

func (r *Reader) checkBounds(name string, value float64, b Bounds, input string) bool {
	format := func(limit float64) string { return strconv.FormatFloat(limit, 'f', -1, 64) }
	switch {
	case b.LE != nil && !(value <= *b.LE): // NaN fails here first, as in pydantic
		r.fail(name, "Input should be less than or equal to "+format(*b.LE), input)
	case b.GE != nil && !(value >= *b.GE):
		r.fail(name, "Input should be greater than or equal to "+format(*b.GE), input)
	case b.GT != nil && !(value > *b.GT):
		r.fail(name, "Input should be greater than "+format(*b.GT), input)
	default:
		return true
	}
	return false
}

// Python-style numbers as pydantic reads them: surrounding whitespace, a sign, digits with
// single underscores between them; an integer may end in a zero fraction (`5.0`).
var (
	integerSyntax = regexp.MustCompile(`^[+-]?[0-9](?:_?[0-9])*(?:\.0*)?$`)
	numberSyntax  = regexp.MustCompile(`^[+-]?(?:(?:[0-9](?:_?[0-9])*)?\.?[0-9](?:_?[0-9])*\.?|[0-9](?:_?[0-9])*\.)(?:[eE][+-]?[0-9](?:_?[0-9])*)?$`)
	specialNumber = regexp.MustCompile(`^(?i)[+-]?(?:inf|infinity|nan)$`)
)

// Integer is an int within b.
func (r *Reader) Integer(name string, fallback int, b Bounds) int {
	input, ok := r.env[name]
	if !ok {
		return fallback
	}
	text := strings.TrimSpace(input)
	if !integerSyntax.MatchString(text) {
		r.fail(name, "Input should be a valid integer, unable to parse string as an integer", input)
		return fallback
	}
	digits, _, _ := strings.Cut(strings.ReplaceAll(text, "_", ""), ".")
	parsed, _ := new(big.Int).SetString(digits, 10)
	value := math.MaxInt64 // what only lower bounds accept, as Python's unbounded int would be
	if parsed.IsInt64() {
		value = int(parsed.Int64())
	} else if parsed.Sign() < 0 {
		value = math.MinInt64
	}
	asFloat, _ := new(big.Float).SetInt(parsed).Float64()
	if !r.checkBounds(name, asFloat, b, input) {
		return fallback
	}
	return value
}

// Number is a float within b.
func (r *Reader) Number(name string, fallback float64, b Bounds) float64 {
	input, ok := r.env[name]
	if !ok {
		return fallback
	}
	text := strings.TrimSpace(input)
	if !numberSyntax.MatchString(text) && !specialNumber.MatchString(text) {
		r.fail(name, "Input should be a valid number, unable to parse string as a number", input)
		return fallback
	}
	value, err := strconv.ParseFloat(strings.ReplaceAll(text, "_", ""), 64)
	if err != nil && !strings.Contains(err.Error(), "range") { // out of range: ±Inf, as Python
		r.fail(name, "Input should be a valid number, unable to parse string as a number", input)
		return fallback
	}
	if !r.checkBounds(name, value, b, input) {
		return fallback
	}
	return value
}

// Seconds is a duration given in seconds, within b.
func (r *Reader) Seconds(name string, fallback float64, b Bounds) time.Duration {
	return time.Duration(r.Number(name, fallback, b) * float64(time.Second))
}

// Boolean is what pydantic accepts, in any case, and nothing around it.
func (r *Reader) Boolean(name string, fallback bool) bool {
	input, ok := r.env[name]
	if !ok {
		return fallback
	}
	switch strings.ToLower(input) {
	case "1", "on", "t", "true", "y", "yes":
		return true
	case "0", "off", "f", "false", "n", "no":
		return false
	}
	r.fail(name, "Input should be a valid boolean, unable to interpret input", input)
	return fallback
}

// File is the path of a file that exists, or empty when unset.
func (r *Reader) File(name string) string {
	path, ok := r.env[name]
	if !ok {
		return ""
	}
	if info, err := os.Stat(path); err != nil || !info.Mode().IsRegular() {
		r.fail(name, fmt.Sprintf("file %s does not exist", path), path)
		return ""
	}
	return path
}

// OptionalPort is nil when unset, "" or "0"; any other value is a port (" 0" is 0, any
// free port, as in pydantic, which compares the text before parsing it).
func (r *Reader) OptionalPort(name string) *int {
	input, ok := r.env[name]
	if !ok || input == "" || input == "0" {
		return nil
	}
	before := len(r.problems)
	port := r.Integer(name, 0, Bounds{GE: Ptr(0), LE: Ptr(65535)})
	if len(r.problems) > before {
		return nil
	}
	return &port
}

// Ptr is a bound's value.
func Ptr(value float64) *float64 { return &value }
