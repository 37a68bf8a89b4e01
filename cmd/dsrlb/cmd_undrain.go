package main

import (
	"fmt"
	"io"
)

// cmdUndrain is not built yet.
func cmdUndrain(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "dsrlb: this subcommand is not implemented yet")
	return exitError
}
