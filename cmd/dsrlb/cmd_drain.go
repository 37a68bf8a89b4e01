package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dsrlb/dsrlb/internal/daemon"
)

func cmdDrain(args []string, stdout, stderr io.Writer) int {
	return drainCommand("drain", true, args, stdout, stderr)
}

func cmdUndrain(args []string, stdout, stderr io.Writer) int {
	return drainCommand("undrain", false, args, stdout, stderr)
}

// drainCommand implements drain and undrain: through the daemon when it
// runs, else straight into state_dir (the daemon applies it on start).
func drainCommand(name string, drain bool, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet(name, stderr)
	cfgPath, socket := socketFlags(fs)
	vip := fs.String("vip", "", "only for this VIP (default: every VIP the backend serves)")
	var wait *bool
	var idle, timeout *time.Duration
	if drain {
		wait = fs.Bool("wait", false, "block until the backend is idle (no packet for --idle) or --timeout")
		idle = fs.Duration("idle", 30*time.Second, "with --wait: how long without a packet counts as idle")
		timeout = fs.Duration("timeout", 30*time.Minute, "with --wait: give up after this long")
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageError(stderr, fs, err)
	}
	if len(pos) != 1 {
		return usageError(stderr, fs, fmt.Errorf("want exactly one backend NAME, got %d arguments", len(pos)))
	}
	backend := pos[0]
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "dsrlb %s: %v\n", name, err)
		return exitError
	}
	if err := daemon.CheckDrainTarget(cfg, *vip, backend); err != nil {
		fmt.Fprintf(stderr, "dsrlb %s: %v\n", name, err)
		return exitError
	}
	sock := *socket
	if sock == "" {
		sock = cfg.LB.APISocket
	}
	client := daemon.NewClient(sock)
	ctx := context.Background()
	err = client.Drain(ctx, daemon.DrainRequest{Backend: backend, VIP: *vip, Drain: drain})
	if errors.Is(err, daemon.ErrNotRunning) {
		err = daemon.SetAdminDrain(cfg.LB.StateDir, *vip, backend, drain)
		if err == nil {
			fmt.Fprintf(stdout, "dsrlb is not running: recorded in %s, applied when it starts\n", cfg.LB.StateDir)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "dsrlb %s: %v\n", name, err)
		return exitError
	}
	scope := "every VIP"
	if *vip != "" {
		scope = "VIP " + *vip
	}
	if drain {
		fmt.Fprintf(stdout, "%s drained for %s: no new sessions; open sessions continue\n", backend, scope)
	} else {
		fmt.Fprintf(stdout, "%s undrained for %s\n", backend, scope)
	}
	if drain && *wait {
		return waitIdle(ctx, client, backend, *vip, *idle, *timeout, stdout, stderr)
	}
	return exitOK
}

// waitIdle polls the status until no packet went to backend for idle.
func waitIdle(ctx context.Context, c *daemon.Client, backend, vip string, idle, timeout time.Duration, stdout, stderr io.Writer) int {
	deadline := time.Now().Add(timeout)
	tty := isTerminal(stdout)
	for {
		st, err := c.Status(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "dsrlb drain --wait: %v\n", err)
			return exitError
		}
		last := lastPacket(st, backend, vip)
		now := time.Now()
		quiet := now.Sub(last)
		if last.IsZero() || quiet >= idle {
			if tty {
				fmt.Fprintln(stdout)
			}
			fmt.Fprintf(stdout, "%s is idle (last packet %s): safe to patch\n", backend, age(&last, now))
			return exitOK
		}
		if now.After(deadline) {
			fmt.Fprintf(stderr, "\ndsrlb drain --wait: %s still busy after %s (last packet %s)\n", backend, timeout, age(&last, now))
			return exitBad
		}
		msg := fmt.Sprintf("waiting for %s to go idle: last packet %s, need %s without one", backend, age(&last, now), idle)
		if tty {
			fmt.Fprintf(stdout, "\r\033[K%s", msg)
		} else {
			fmt.Fprintln(stdout, msg)
		}
		time.Sleep(time.Second)
	}
}

// lastPacket is the latest packet time to backend over the chosen VIPs.
func lastPacket(st daemon.Status, backend, vip string) time.Time {
	var last time.Time
	for _, v := range st.VIPs {
		if vip != "" && v.Name != vip {
			continue
		}
		for _, b := range v.Backends {
			if b.Name == backend && b.LastPacketAt != nil && b.LastPacketAt.After(last) {
				last = *b.LastPacketAt
			}
		}
	}
	return last
}
