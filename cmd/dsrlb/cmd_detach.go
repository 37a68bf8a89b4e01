package main

import (
	"fmt"
	"io"
)

// cmdDetach is not built yet.
func cmdDetach(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "dsrlb: this subcommand is not implemented yet")
	return exitError
}
