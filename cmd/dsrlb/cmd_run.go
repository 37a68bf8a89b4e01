package main

import (
	"fmt"
	"io"
)

// cmdRun is not built yet.
func cmdRun(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "dsrlb: this subcommand is not implemented yet")
	return exitError
}
