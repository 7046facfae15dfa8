package greeter

import (
	"acme.example/common/server"
	"acme.example/common/settings"
)

// Settings are GreeterSettings' own variables (settings.py), besides the shared ones.
type Settings struct {
	MaxStreamNames int // GREETER_MAX_STREAM_NAMES
}

func (own *Settings) read(r *settings.Reader) {
	own.MaxStreamNames = r.Integer("GREETER_MAX_STREAM_NAMES", 10000, settings.Bounds{GE: settings.Ptr(1)})
}

// Main runs Greeter until SIGTERM (server.Main): the shared settings with GRPC_PORT 50051 and
// GREETER_MAX_STREAM_NAMES, as GreeterSettings in settings.py.
func Main() int {
	own := &Settings{}
	model := settings.Model{Name: "GreeterSettings", Port: 50051, Own: own.read}
	return server.Main(model, func(s *settings.Settings) []server.Service { return Build(s, own) })
}
