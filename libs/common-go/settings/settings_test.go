package settings

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// maxStreamNames is what the test model's own variable (greeter-go's) was read as.
var maxStreamNames int

// greeterSettings: the shared settings with a service's own variable (Model.Own), as
// greeter-go declares them.
var greeterSettings = Model{Name: "GreeterSettings", Port: 50051, Own: func(r *Reader) {
	maxStreamNames = r.Integer("GREETER_MAX_STREAM_NAMES", 10000, Bounds{GE: Ptr(1)})
}}

func load(t *testing.T, env map[string]string) (*Settings, string) {
	t.Helper()
	s, err := Load(env, greeterSettings)
	if err == nil {
		return s, ""
	}
	var settingsErr *Error
	if !errors.As(err, &settingsErr) {
		t.Fatalf("Load: %v is not a settings.Error", err)
	}
	return nil, err.Error()
}

func TestDefaultsAreThePythonGreeters(t *testing.T) {
	s, problem := load(t, map[string]string{})
	if problem != "" {
		t.Fatal(problem)
	}
	if s.GRPCPort != 50051 || s.GRPCHost != "0.0.0.0" || s.MaxMessageBytes != 262144 ||
		s.MaxConcurrentStreams != 32 || s.MaxConcurrentRPCs != 1000 || maxStreamNames != 10000 ||
		s.GracePeriod != 10*time.Second || s.DrainDelay != 0 || s.AdminPort != nil ||
		!s.AdminServicesOnMainPort || s.AccessLog != "all" || s.LogFormat != "json" ||
		s.KeepaliveMinPingInterval != 10*time.Second || s.MaxConnectionAge != 300*time.Second ||
		s.MaxConnectionAgeGrace != 30*time.Second || s.InstanceName == "" || len(s.AuthTokens) != 0 {
		t.Fatalf("defaults: %+v", s)
	}
}

// What the Python greeter's load_settings says (or the value it reads) for one variable.
func TestEachVariableIsReadAsPydanticReadsIt(t *testing.T) {
	const header = "invalid configuration for GreeterSettings:\n  "
	for _, c := range []struct {
		variable, value, problem string
		check                    func(*Settings) bool
	}{
		{"GRPC_PORT", " 5", "", func(s *Settings) bool { return s.GRPCPort == 5 }},
		{"GRPC_PORT", "+5", "", func(s *Settings) bool { return s.GRPCPort == 5 }},
		{"GRPC_PORT", "5.0", "", func(s *Settings) bool { return s.GRPCPort == 5 }},
		{"GRPC_PORT", "1_000", "", func(s *Settings) bool { return s.GRPCPort == 1000 }},
		{"GRPC_PORT", "5.5", "GRPC_PORT: Input should be a valid integer, unable to parse string as an integer (got '5.5')", nil},
		{"GRPC_PORT", "0x10", "GRPC_PORT: Input should be a valid integer, unable to parse string as an integer (got '0x10')", nil},
		{"GRPC_PORT", "", "GRPC_PORT: Input should be a valid integer, unable to parse string as an integer (got '')", nil},
		{"GRPC_PORT", "1e3", "GRPC_PORT: Input should be a valid integer, unable to parse string as an integer (got '1e3')", nil},
		{"GRPC_PORT", "70000", "GRPC_PORT: Input should be less than or equal to 65535 (got '70000')", nil},
		{"GRPC_PORT", "-1", "GRPC_PORT: Input should be greater than or equal to 0 (got '-1')", nil},
		{"GRPC_GRACE_PERIOD", "1e1", "", func(s *Settings) bool { return s.GracePeriod == 10*time.Second }},
		{"GRPC_GRACE_PERIOD", " 2 ", "", func(s *Settings) bool { return s.GracePeriod == 2*time.Second }},
		{"GRPC_GRACE_PERIOD", ".5", "", func(s *Settings) bool { return s.GracePeriod == 500*time.Millisecond }},
		{"GRPC_GRACE_PERIOD", "5.", "", func(s *Settings) bool { return s.GracePeriod == 5*time.Second }},
		{"GRPC_GRACE_PERIOD", "inf", "GRPC_GRACE_PERIOD: Input should be less than or equal to 300 (got 'inf')", nil},
		{"GRPC_GRACE_PERIOD", "nan", "GRPC_GRACE_PERIOD: Input should be less than or equal to 300 (got 'nan')", nil},
		{"GRPC_GRACE_PERIOD", "", "GRPC_GRACE_PERIOD: Input should be a valid number, unable to parse string as a number (got '')", nil},
		{"GRPC_GRACE_PERIOD", "-1", "GRPC_GRACE_PERIOD: Input should be greater than or equal to 0 (got '-1')", nil},
		{"GRPC_KEEPALIVE_MIN_PING_INTERVAL", "0", "GRPC_KEEPALIVE_MIN_PING_INTERVAL: Input should be greater than 0 (got '0')", nil},
		{"ADMIN_SERVICES_ON_MAIN_PORT", "off", "", func(s *Settings) bool { return !s.AdminServicesOnMainPort }},
		{"ADMIN_SERVICES_ON_MAIN_PORT", "YES", "", func(s *Settings) bool { return s.AdminServicesOnMainPort }},
		{"ADMIN_SERVICES_ON_MAIN_PORT", " true", "ADMIN_SERVICES_ON_MAIN_PORT: Input should be a valid boolean, unable to interpret input (got ' true')", nil},
		{"LOG_LEVEL", "debug", "LOG_LEVEL: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR' (got 'debug')", nil},
		{"ACCESS_LOG", "some", "ACCESS_LOG: Input should be 'all', 'errors' or 'off' (got 'some')", nil},
		{"INSTANCE_NAME", "", "INSTANCE_NAME: String should have at least 1 character (got '')", nil},
		{"INSTANCE_NAME", " ", "", func(s *Settings) bool { return s.InstanceName == " " }},
		{"AUTH_TOKENS", " , ", "", func(s *Settings) bool { return len(s.AuthTokens) == 0 }},
		{"AUTH_TOKENS", "a, b", "", func(s *Settings) bool { return strings.Join(s.AuthTokens, "|") == "a|b" }},
		{"ADMIN_PORT", "", "", func(s *Settings) bool { return s.AdminPort == nil }},
		{"ADMIN_PORT", "0", "", func(s *Settings) bool { return s.AdminPort == nil }},
		{"ADMIN_PORT", " 0", "", func(s *Settings) bool { return s.AdminPort != nil && *s.AdminPort == 0 }},
		{"ADMIN_PORT", "abc", "ADMIN_PORT: Input should be a valid integer, unable to parse string as an integer (got 'abc')", nil},
		{"GREETER_MAX_STREAM_NAMES", "0", "GREETER_MAX_STREAM_NAMES: Input should be greater than or equal to 1 (got '0')", nil},
		{"GREETER_MAX_STREAM_NAMES", "99999999999999999999999", "", func(*Settings) bool { return maxStreamNames > 1<<62 }},
		{"TLS_CERT_FILE", "/nonexistent", "TLS_CERT_FILE: file /nonexistent does not exist (got '/nonexistent')", nil},
		{"TLS_KEY_FILE", "/secret", "TLS_KEY_FILE: file /secret does not exist", nil},
		{"GRPC_WORKERS", "65", "GRPC_WORKERS: Input should be less than or equal to 64 (got '65')", nil},
		{"GRPC_COMPRESSION", "snappy", "GRPC_COMPRESSION: Input should be 'none', 'gzip' or 'deflate' (got 'snappy')", nil},
	} {
		s, problem := load(t, map[string]string{c.variable: c.value})
		if c.problem != "" {
			if problem != header+c.problem {
				t.Errorf("%s=%q: %q, want %q", c.variable, c.value, problem, header+c.problem)
			}
			continue
		}
		if problem != "" || !c.check(s) {
			t.Errorf("%s=%q: %q %+v", c.variable, c.value, problem, s)
		}
	}
}

func TestEveryBadVariableIsNamedAndCombinationsWaitForValidFields(t *testing.T) {
	_, problem := load(t, map[string]string{"GRPC_PORT": "x", "METRICS_PORT": "x", "GRPC_WORKERS": "2"})
	want := "invalid configuration for GreeterSettings:\n" +
		"  METRICS_PORT: Input should be a valid integer, unable to parse string as an integer (got 'x')\n" +
		"  GRPC_PORT: Input should be a valid integer, unable to parse string as an integer (got 'x')"
	if problem != want {
		t.Fatalf("%q, want %q", problem, want)
	}
}

func TestCombinations(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"GRPC_WORKERS": "2", "GRPC_PORT": "0"}, "GRPC_WORKERS > 1 needs a fixed GRPC_PORT for the workers to share"},
		{map[string]string{"GRPC_PORT": "9000", "METRICS_PORT": "9000"}, "two ports are the same: GRPC_PORT=9000, METRICS_PORT=9000"},
		{map[string]string{"GRPC_PORT": "9000", "ADMIN_PORT": "9000"}, "two ports are the same: GRPC_PORT=9000, ADMIN_PORT=9000"},
		{map[string]string{"TLS_CERT_FILE": "settings_test.go"}, "TLS_CERT_FILE and TLS_KEY_FILE must be set together"},
		{map[string]string{"TLS_CLIENT_CA_FILE": "settings_test.go"}, "TLS_CLIENT_CA_FILE (mTLS) needs TLS_CERT_FILE and TLS_KEY_FILE"},
		{map[string]string{"TLS_CERT_FILE": "settings.go", "TLS_KEY_FILE": "pem.go"}, "settings.go: no PEM certificate in it"},
	} {
		_, problem := load(t, c.env)
		if problem != "invalid configuration for GreeterSettings:\n  "+c.want {
			t.Errorf("%v: %q, want %q", c.env, problem, c.want)
		}
	}
}

func TestAServiceWithoutOwnSettingsHasItsOwnPort(t *testing.T) {
	s, err := Load(map[string]string{}, Model{Name: "BillingSettings", Port: 50053})
	if err != nil || s.GRPCPort != 50053 {
		t.Fatalf("%v %+v", err, s)
	}
	_, err = Load(map[string]string{"GRPC_PORT": "x"}, Model{Name: "BillingSettings", Port: 50053})
	if err == nil || !strings.HasPrefix(err.Error(), "invalid configuration for BillingSettings:\n  GRPC_PORT") {
		t.Fatalf("%v", err)
	}
}
