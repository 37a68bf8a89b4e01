package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v = "dev-" + s.Value
			}
		}
	}
	fmt.Fprintf(stdout, "dsrlb %s\n", v)
	return exitOK
}
