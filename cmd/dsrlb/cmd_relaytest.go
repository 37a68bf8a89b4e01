package main

import (
	"fmt"
	"io"
)

// cmdRelayTest is not built yet.
func cmdRelayTest(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "dsrlb: this subcommand is not implemented yet")
	return exitError
}
