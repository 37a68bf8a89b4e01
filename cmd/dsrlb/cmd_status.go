package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dsrlb/dsrlb/internal/config"
	"github.com/dsrlb/dsrlb/internal/daemon"
)

// socketFlags registers -c and --socket for commands that talk to the daemon.
func socketFlags(fs *flag.FlagSet) (cfgPath, socket *string) {
	return configFlag(fs), fs.String("socket", "", "API socket (default: api_socket of the config)")
}

// apiSocket picks --socket, else the config's api_socket, else the default.
func apiSocket(cfgPath, socket string) string {
	if socket != "" {
		return socket
	}
	if cfg, err := loadConfig(cfgPath); err == nil {
		return cfg.LB.APISocket
	}
	return config.DefaultAPISocket
}

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("status", stderr)
	cfgPath, socket := socketFlags(fs)
	asJSON := fs.Bool("json", false, "print the JSON status contract")
	if _, err := parseInterspersed(fs, args); err != nil {
		return usageError(stderr, fs, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := daemon.NewClient(apiSocket(*cfgPath, *socket)).Status(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "dsrlb status:", err)
		return exitError
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(st)
		return exitOK
	}
	printStatus(stdout, st, time.Now())
	return exitOK
}

// printStatus prints a compact table per VIP.
func printStatus(w io.Writer, st daemon.Status, now time.Time) {
	n := st.Node
	fmt.Fprintf(w, "dsrlb on %s (XDP %s), config %s, up %s\n", n.Interface, n.XDPMode, n.Config, age(&n.StartedAt, now))
	if n.ReloadError != "" {
		fmt.Fprintf(w, "LAST RELOAD REFUSED (running config unchanged): %s\n", n.ReloadError)
	}
	printBGP(w, n.BGP)
	for _, v := range st.VIPs {
		ports := make([]string, len(v.Ports))
		for i, p := range v.Ports {
			ports[i] = fmt.Sprint(p)
		}
		fmt.Fprintf(w, "\nVIP %s  %s:%s  persistence=%s  packets=%d new_flows=%d\n", v.Name, v.Address, strings.Join(ports, ","), v.Persistence, v.Packets, v.NewFlows)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "BACKEND\tADDRESS\tSTATE\tREASON\tW/P\tSHARE\tNEW/S\tPKTS/S\tNEW FLOWS\tLAST PACKET\tLAST REPLY\tLATENCY")
		for _, b := range v.Backends {
			reason := b.Reason
			if reason == "" {
				reason = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%.1f%%\t%.1f\t%.0f\t%d\t%s\t%s\t%.1fms\n", b.Name, b.Address, b.State, reason,
				b.Weight, b.Priority, 100*b.RingShare, b.NewFlowsPerSec, b.PacketsPerSec, b.NewFlows, age(b.LastPacketAt, now), dash(b.LastReply), b.LatencyMS)
		}
		tw.Flush()
	}
}

// printBGP prints the announced routes and each BGP session in one line.
func printBGP(w io.Writer, b *daemon.BGPStatus) {
	if b == nil {
		return
	}
	peers := make([]string, len(b.Peers))
	for i, p := range b.Peers {
		peers[i] = fmt.Sprintf("%s (AS %d) %s", p.Address, p.AS, p.State)
	}
	announced := strings.Join(b.Announced, ", ")
	if announced == "" {
		announced = "nothing"
	}
	fmt.Fprintf(w, "BGP: announcing %s; peers %s\n", announced, strings.Join(peers, ", "))
	if b.Error != "" {
		fmt.Fprintf(w, "BGP ERROR: %s\n", b.Error)
	}
}

// age prints how long ago t was ("never" for nil).
func age(t *time.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	return now.Sub(*t).Round(time.Second).String() + " ago"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
