package bgp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
)

// ErrBirdUnreachable says BIRD's control socket did not answer (BIRD is not
// running, or bird_socket is wrong). The file dsrlb writes is in place all
// the same: BIRD reads it when it starts.
var ErrBirdUnreachable = errors.New("BIRD's control socket does not answer")

// ErrBirdConfig says BIRD refused its configuration; the running
// configuration is unchanged.
var ErrBirdConfig = errors.New("BIRD refused the configuration")

// replyLine is one line of BIRD's answer. Code is the reply code (0 on a
// continuation line); codes of 8000 and up are errors.
type replyLine struct {
	code int
	text string
}

// birdc runs `birdc -v -s SOCKET args...` (verbose: every reply carries
// its numeric code) and returns the reply lines.
func (a *Announcer) birdc(ctx context.Context, socket string, args ...string) ([]replyLine, error) {
	ctx, cancel := context.WithTimeout(ctx, a.opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.opts.Birdc, append([]string{"-v", "-s", socket}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	what := "birdc -s " + socket + " " + strings.Join(args, " ")
	text := out.String()
	if strings.Contains(text, "Unable to connect to server control socket") {
		return nil, fmt.Errorf("%s: %w: %s", what, ErrBirdUnreachable, strings.TrimSpace(text))
	}
	lines := parseReply(text)
	for _, l := range lines {
		if l.code >= 8000 {
			err := fmt.Errorf("%s: %s", what, l.text)
			if l.code == 8002 || l.code >= 9000 {
				err = fmt.Errorf("%w: %w", ErrBirdConfig, err)
			}
			return lines, err
		}
	}
	if runErr != nil {
		return lines, fmt.Errorf("%s: %w: %s", what, runErr, strings.TrimSpace(text))
	}
	return lines, nil
}

// parseReply splits birdc -v output into reply lines: "NNNN-text" and
// "NNNN text" carry a code; lines starting with a space continue the
// previous reply.
func parseReply(text string) []replyLine {
	var lines []replyLine
	for l := range strings.Lines(text) {
		l = strings.TrimRight(l, "\r\n")
		if len(l) >= 5 && (l[4] == '-' || l[4] == ' ') {
			if code, err := strconv.Atoi(l[:4]); err == nil {
				lines = append(lines, replyLine{code: code, text: l[5:]})
				continue
			}
		}
		lines = append(lines, replyLine{text: l})
	}
	return lines
}

// configured reports whether a `configure` reply says BIRD took the new
// configuration (reconfigured, in progress, queued, or nothing to do).
func configured(lines []replyLine) bool {
	for _, l := range lines {
		switch l.code {
		case 3, 4, 5, 19:
			return true
		}
	}
	return false
}

// PeerStatus is the state of the BGP session with one configured peer.
type PeerStatus struct {
	Address netip.Addr
	AS      uint32
	// Protocol is the BIRD protocol's name (ProtocolName).
	Protocol string
	// State is the BGP state BIRD reports: Idle, Connect, Active, OpenSent,
	// OpenConfirm, Established, Close; "Down" when the protocol is down,
	// "unknown" when BIRD does not (yet) have the protocol.
	State string
	// Info is BIRD's last error or its info column, "" when none.
	Info string
}

// birdProtocol is what `show protocols all` says about one protocol.
type birdProtocol struct {
	state, info, bgpState, lastError string
}

// parseProtocols reads a `show protocols all` reply: code 1002 starts a
// protocol ("name proto table state since info"), code 1006 and the
// continuation lines after it hold its details.
func parseProtocols(lines []replyLine) map[string]birdProtocol {
	out := map[string]birdProtocol{}
	var name string
	for _, l := range lines {
		switch {
		case l.code == 1002:
			f := strings.Fields(l.text)
			if len(f) < 4 {
				name = ""
				continue
			}
			name = f[0]
			p := birdProtocol{state: f[3]}
			if len(f) > 5 {
				p.info = strings.Join(f[5:], " ")
			}
			out[name] = p
		case name != "" && (l.code == 1006 || l.code == 0):
			p := out[name]
			key, val, ok := strings.Cut(strings.TrimSpace(l.text), ":")
			if !ok {
				continue
			}
			switch key {
			case "BGP state":
				p.bgpState = strings.TrimSpace(val)
			case "Last error":
				p.lastError = strings.TrimSpace(val)
			}
			out[name] = p
		default:
			name = ""
		}
	}
	return out
}
