package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/dsrlb/dsrlb/internal/config"
	"github.com/dsrlb/dsrlb/internal/loopback"
)

// cmdBackendScript prints the setup (or, with --remove, rollback) script for
// one real server and all its VIPs: `dsrlb backend-script NAME [-c FILE]
// [--os windows|linux] [--remove] [--exchange]`. --os defaults to the
// backend's os field in lb.toml.
func cmdBackendScript(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("backend-script", stderr)
	cfgPath := configFlag(fs)
	osName := fs.String("os", "", "windows or linux (default: the backend's os in lb.toml)")
	remove := fs.Bool("remove", false, "print the rollback script instead of the setup script")
	exchange := fs.Bool("exchange", false, "add the Exchange receive-connector commands, commented out for review (windows)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dsrlb backend-script NAME [-c FILE] [--os windows|linux] [--remove] [--exchange]")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageError(stderr, fs, err)
	}
	if len(pos) != 1 {
		fs.Usage()
		return usageError(stderr, fs, errors.New("want exactly one backend NAME"))
	}
	c, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "dsrlb backend-script: %v\n", err)
		return exitError
	}
	return backendScript(c, pos[0], config.OS(*osName), loopback.Options{Remove: *remove, Exchange: *exchange}, stdout, stderr)
}

// backendScript writes the script for backend name of c to stdout. target ""
// means the backend's own os.
func backendScript(c *config.Config, name string, target config.OS, o loopback.Options, stdout, stderr io.Writer) int {
	s, err := loopback.FromConfig(c, name)
	if err != nil {
		fmt.Fprintf(stderr, "dsrlb backend-script: %v\n", err)
		return exitError
	}
	if target == "" {
		b, _ := c.Backend(name)
		target = b.OS
		if target == "" {
			fmt.Fprintf(stderr, "dsrlb backend-script: backend %q has no os in the config: pass --os windows or --os linux\n", name)
			return exitError
		}
	}
	script, err := loopback.Generate(s, target, o)
	if err != nil {
		fmt.Fprintf(stderr, "dsrlb backend-script: %v\n", err)
		return exitError
	}
	if _, err := io.WriteString(stdout, script); err != nil {
		fmt.Fprintf(stderr, "dsrlb backend-script: writing the script: %v\n", err)
		return exitError
	}
	return exitOK
}
