package main

import (
	"fmt"
	"io"
)

// cmdValidate is not built yet.
func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "dsrlb: this subcommand is not implemented yet")
	return exitError
}
