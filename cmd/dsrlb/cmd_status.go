package main

import (
	"fmt"
	"io"
)

// cmdStatus is not built yet.
func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "dsrlb: this subcommand is not implemented yet")
	return exitError
}
