// Command greeter-go is Greeter (acme.greeter.v1.GreeterService) in Go: the same contract,
// settings and behaviour from the outside as services/greeter (README.md says where the two
// differ). Configured by environment variables (docs/configuration.md).
package main

import (
	"os"

	"acme.example/greeter-go/internal/greeter"
)

func main() {
	os.Exit(greeter.Main())
}
