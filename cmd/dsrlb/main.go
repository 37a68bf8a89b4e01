// Command dsrlb is an XDP Direct Server Return load balancer for SMTP.
//
// Run `dsrlb help` for its subcommands.
package main

import (
	"fmt"
	"io"
	"os"
)

// Exit codes shared by every subcommand (DESIGN section 8).
const (
	exitOK    = 0 // success
	exitBad   = 1 // the thing checked is bad (open relay, probe down/draining)
	exitError = 2 // usage or runtime error
)

const usage = `dsrlb: an XDP Direct Server Return load balancer for SMTP

Usage:
  dsrlb run [-c lb.toml]                 run the daemon (foreground)
  dsrlb status [--json]                  VIPs, backends, state, last probe reply, share, traffic
  dsrlb validate [-c lb.toml] [--strict] check the config: errors exit 1, warnings are printed
  dsrlb probe HOST[:PORT] [--from A --helo H --rcpt R --starttls off|try|require --timeout D]
                                         one deep SMTP probe with its transcript
  dsrlb drain NAME [--vip V] [--wait]    stop new sessions to a backend (admin drain)
  dsrlb undrain NAME [--vip V]           end an admin drain
  dsrlb backend-script NAME [--os windows|linux] [--remove] [--exchange]
                                         setup (or rollback) script for one real server
  dsrlb relay-test HOST[:PORT] --from A --to B [--all]
                                         is it an open relay? never sends DATA
  dsrlb logs FILE|DIR... [--json]        report on Exchange SMTP Receive protocol logs
  dsrlb detach                           remove program, pins and managed VIP addresses
  dsrlb version                          print the version

Every subcommand accepts -c FILE (default /etc/dsrlb/lb.toml, then ./lb.toml).
Exit codes: 0 success, 1 the thing checked is bad, 2 usage or runtime error.
`

// command is one subcommand: it gets its arguments (without its name) and
// returns the process exit code.
type command func(args []string, stdout, stderr io.Writer) int

func commands() map[string]command {
	return map[string]command{
		"run":            cmdRun,
		"status":         cmdStatus,
		"validate":       cmdValidate,
		"probe":          cmdProbe,
		"drain":          cmdDrain,
		"undrain":        cmdUndrain,
		"backend-script": cmdBackendScript,
		"relay-test":     cmdRelayTest,
		"logs":           cmdLogs,
		"detach":         cmdDetach,
		"version":        cmdVersion,
	}
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return exitError
		}
		return exitOK
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "dsrlb: unknown command %q\n\n%s", args[0], usage)
		return exitError
	}
	return cmd(args[1:], stdout, stderr)
}
