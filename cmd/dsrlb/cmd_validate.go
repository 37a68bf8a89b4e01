package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/dsrlb/dsrlb/internal/config"
)

// cmdValidate checks a config file: `dsrlb validate [-c FILE] [--strict]`.
// It prints "FILE: OK (N VIPs, M backends)" and the warnings on stdout and
// exits 0; with --strict any warning exits 1. Errors go to stderr, one per
// line as file:line: message, and exit 1. An unreadable file exits 2.
func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate", stderr)
	path := configFlag(fs)
	strict := fs.Bool("strict", false, "exit 1 when there are warnings too")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return usageError(stderr, fs, err)
	}
	if len(rest) > 0 {
		return usageError(stderr, fs, fmt.Errorf("unexpected argument %q (give the file with -c)", rest[0]))
	}
	file, err := resolveConfigPath(*path)
	if err != nil {
		fmt.Fprintf(stderr, "dsrlb validate: %v\n", err)
		return exitError
	}
	c, err := config.Load(file)
	var list config.ErrorList
	switch {
	case errors.As(err, &list):
		for _, e := range list {
			fmt.Fprintln(stderr, e)
		}
		fmt.Fprintf(stderr, "%s: %s\n", file, nounCount(len(list), "error"))
		return exitBad
	case err != nil:
		fmt.Fprintf(stderr, "dsrlb validate: %v\n", err)
		return exitError
	}
	fmt.Fprintf(stdout, "%s: OK (%s, %s)\n", file, nounCount(len(c.VIPs), "VIP"), nounCount(len(c.Backends), "backend"))
	warnings := config.Lint(c)
	for _, w := range warnings {
		fmt.Fprintln(stdout, w)
	}
	if *strict && len(warnings) > 0 {
		fmt.Fprintf(stderr, "%s: %s with --strict\n", file, nounCount(len(warnings), "warning"))
		return exitBad
	}
	return exitOK
}

// nounCount returns "1 word" or "n words".
func nounCount(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
