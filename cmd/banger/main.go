// Command banger is the CLI of banger: disposable Linux microVMs for
// developers and coding agents.
package main

import (
	"os"

	"banger/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
