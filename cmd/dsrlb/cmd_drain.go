package main

import (
	"fmt"
	"io"
)

// cmdDrain is not built yet.
func cmdDrain(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "dsrlb: this subcommand is not implemented yet")
	return exitError
}
