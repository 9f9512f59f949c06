// Command steward is Steward's single binary: the CLI client of the REST
// API and, once registered by its package, the server.
package main

import (
	"os"

	"github.com/stewardhq/steward/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
