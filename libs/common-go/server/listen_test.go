package server

import (
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"

	"acme.example/common/settings"
)

// A configured port that is taken stops the start with a ListenError naming the setting (Main
// exits 2 for it), as acme_common answers the same case (tests/integration/test_config.py).
func TestATakenPortIsAListenErrorNamingItsSetting(t *testing.T) {
	for _, variable := range []string{"GRPC_PORT", "METRICS_PORT", "ADMIN_PORT"} {
		t.Run(variable, func(t *testing.T) {
			occupant, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = occupant.Close() }()
			port := strconv.Itoa(occupant.Addr().(*net.TCPAddr).Port)
			env := map[string]string{"GRPC_HOST": "127.0.0.1", "GRPC_PORT": "0", variable: port}
			s, err := settings.Load(env, settings.Model{Name: "ProbeSettings"})
			if err != nil {
				t.Fatal(err)
			}
			host, err := NewHost(s, nil, NewLogger(io.Discard, "INFO", "json"))
			if err != nil {
				t.Fatal(err)
			}
			err = host.Start()
			if err == nil {
				host.Stop()
				t.Fatalf("started on a taken %s", variable)
			}
			var listen *ListenError
			if !errors.As(err, &listen) || listen.Variable != variable {
				t.Fatalf("want a ListenError naming %s, got %v", variable, err)
			}
			want := "cannot listen on 127.0.0.1:" + port + " (" + variable + "): address already in use"
			if err.Error() != want {
				t.Fatalf("got %q, want %q", err.Error(), want)
			}
			if strings.Contains(err.Error(), "listen tcp") {
				t.Fatalf("the reason repeats Go's wrapping: %q", err.Error())
			}
		})
	}
}
