package main

import (
	"fmt"
	"io"
)

// cmdBackendScript is not built yet.
func cmdBackendScript(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "dsrlb: this subcommand is not implemented yet")
	return exitError
}
