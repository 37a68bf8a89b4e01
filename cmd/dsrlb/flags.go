package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dsrlb/dsrlb/internal/config"
)

// defaultConfigPaths are tried in order when -c is not given.
var defaultConfigPaths = [...]string{"/etc/dsrlb/lb.toml", "lb.toml"}

// newFlagSet returns a FlagSet for subcommand name that reports errors
// instead of exiting, writing usage to stderr.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("dsrlb "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseInterspersed parses flags that may come before or after positional
// arguments ("dsrlb drain EX1 --vip internet") and returns the positionals.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if rest[0] == "--" {
			return append(positional, rest[1:]...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// configFlag registers -c/--config on fs and returns the pointer to its value.
func configFlag(fs *flag.FlagSet) *string {
	p := fs.String("c", "", "config file (default /etc/dsrlb/lb.toml, then ./lb.toml)")
	fs.StringVar(p, "config", "", "same as -c")
	return p
}

// resolveConfigPath returns path, or the first default config file that exists.
func resolveConfigPath(path string) (string, error) {
	if path != "" {
		return path, nil
	}
	for _, p := range defaultConfigPaths {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no config file: tried %s (use -c FILE)", strings.Join(defaultConfigPaths[:], ", "))
}

// loadConfig resolves and loads the config named by -c.
func loadConfig(path string) (*config.Config, error) {
	p, err := resolveConfigPath(path)
	if err != nil {
		return nil, err
	}
	return config.Load(p)
}

// usageError reports a usage problem and returns exitError.
func usageError(stderr io.Writer, fs *flag.FlagSet, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
	}
	return exitError
}
