package main

import (
	"fmt"
	"io"

	"github.com/dsrlb/dsrlb/internal/daemon"
)

func cmdDetach(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("detach", stderr)
	cfgPath := configFlag(fs)
	if _, err := parseInterspersed(fs, args); err != nil {
		return usageError(stderr, fs, err)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "dsrlb detach:", err)
		return exitError
	}
	done, err := daemon.Detach(cfg)
	for _, d := range done {
		fmt.Fprintln(stdout, d)
	}
	if err != nil {
		fmt.Fprintln(stderr, "dsrlb detach:", err)
		return exitError
	}
	if len(done) == 0 {
		fmt.Fprintln(stdout, "nothing to detach")
	}
	return exitOK
}
