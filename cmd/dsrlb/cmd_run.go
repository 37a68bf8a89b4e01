package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/dsrlb/dsrlb/internal/daemon"
)

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", stderr)
	cfgPath := configFlag(fs)
	logFormat := fs.String("log-format", "text", "log format: text or json")
	withdraw := fs.Bool("withdraw-on-exit", false, "withdraw every VIP from BGP when stopping (default: routes stay announced, like the data plane)")
	if _, err := parseInterspersed(fs, args); err != nil {
		return usageError(stderr, fs, err)
	}
	var h slog.Handler
	switch *logFormat {
	case "text":
		h = slog.NewTextHandler(stderr, nil)
	case "json":
		h = slog.NewJSONHandler(stderr, nil)
	default:
		return usageError(stderr, fs, fmt.Errorf("--log-format %q: want text or json", *logFormat))
	}
	log := slog.New(h)
	path, err := resolveConfigPath(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "dsrlb run:", err)
		return exitError
	}
	d, err := daemon.New(path, log)
	if err != nil {
		fmt.Fprintln(stderr, "dsrlb run:", err)
		return exitError
	}
	d.WithdrawOnExit(*withdraw)
	if err := d.Run(context.Background()); err != nil {
		log.Error("dsrlb run failed", "err", err)
		return exitError
	}
	return exitOK
}
