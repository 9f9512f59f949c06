// Command steward is Steward's single binary: `steward server` runs the
// control plane; every other command is a client of its REST API.
package main

import (
	"os"

	"github.com/stewardhq/steward/cli"
	"github.com/stewardhq/steward/daemon"
)

func main() {
	cli.RegisterCommandFunc(daemon.Command)
	os.Exit(cli.Main(os.Args[1:]))
}
