package main

import (
	"fmt"
	"io"
)

// cmdProbe is not built yet.
func cmdProbe(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "dsrlb: this subcommand is not implemented yet")
	return exitError
}
