package main

import (
	"fmt"
	"io"
)

// cmdLogs is not built yet.
func cmdLogs(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "dsrlb: this subcommand is not implemented yet")
	return exitError
}
