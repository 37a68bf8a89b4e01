// Package relaytest answers one question about an SMTP server: would it
// relay mail from an outside sender to an outside recipient?
//
// It replaces the manual telnet session of the field report (connect, HELO,
// "mail from:", "rcpt to:" an outside domain, read the reply) with the
// emersion/go-smtp client. It stops after RCPT TO: it never sends DATA, so
// no message is ever queued, and it always ends the session with RSET and
// QUIT while the connection is usable.
package relaytest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/dsrlb/dsrlb/internal/health"
	"github.com/dsrlb/dsrlb/internal/safetext"
)

// DefaultTimeout bounds the connection and each SMTP command when
// Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// DefaultHELO is the name sent in EHLO/HELO when Options.HELO is empty.
const DefaultHELO = "dsrlb-relay-test.invalid"

// Options says who the test pretends to be.
type Options struct {
	// From is the envelope sender (MAIL FROM). "" or "<>" send the null
	// sender.
	From string
	// To is the recipient (RCPT TO); it must be in a domain the server
	// does not accept mail for, or the test proves nothing.
	To string
	// HELO is the name given in EHLO (and HELO if the server refuses EHLO).
	HELO string
	// Timeout bounds the TCP connect and each command's reply.
	Timeout time.Duration
}

// Outcome is the verdict of one relay test.
type Outcome string

// Outcomes, from best to worst for exit-code purposes see Worse.
const (
	// Closed: the server refused the recipient with a 5xx reply.
	Closed Outcome = "closed"
	// Inconclusive: a 4xx reply to RCPT, or a failure before RCPT.
	Inconclusive Outcome = "inconclusive"
	// Open: the server accepted the outside recipient (2xx): it relays.
	Open Outcome = "open"
)

// severity orders outcomes: Open is the worst.
func (o Outcome) severity() int {
	switch o {
	case Closed:
		return 0
	case Open:
		return 2
	default:
		return 1
	}
}

// Worse returns whichever of a and b is worse (Open > Inconclusive > Closed).
func Worse(a, b Outcome) Outcome {
	if b.severity() > a.severity() {
		return b
	}
	return a
}

// Stage names the step of the session that decided the outcome.
type Stage string

// Session steps, in order.
const (
	StageConnect Stage = "connect"
	StageBanner  Stage = "banner"
	StageHello   Stage = "hello"
	StageMail    Stage = "mail"
	StageRcpt    Stage = "rcpt"
)

// Result is the outcome of one test with the evidence for it.
type Result struct {
	// Target is the address tested, as host:port.
	Target string
	// Outcome is the verdict.
	Outcome Outcome
	// Stage is the step that decided it: StageRcpt when the server answered
	// RCPT TO, an earlier step when the session failed before.
	Stage Stage
	// Code is the reply code of that step (0 when there was no reply).
	Code int
	// Reply is the server's exact reply to that step, one line per reply
	// line joined with "\n" ("" when there was no reply), with control
	// characters and bytes that are not UTF-8 written as \xNN (as in the
	// Transcript): the reply comes from outside and is printed on a terminal.
	Reply string
	// Err describes a failure that is not a reply (connect refused,
	// timeout, connection closed); nil otherwise.
	Err error
	// Transcript is the whole session, both directions.
	Transcript []Line
	// Duration is how long the test took.
	Duration time.Duration
}

// Summary is one human-readable sentence about r.
func (r Result) Summary(from, to string) string {
	reply := r.Reply
	if reply == "" && r.Err != nil {
		reply = r.Err.Error()
	}
	reply = safetext.Printable(strings.ReplaceAll(reply, "\n", " | "))
	switch r.Outcome {
	case Open:
		return fmt.Sprintf("OPEN RELAY: %s accepted RCPT TO:<%s> from <%s>: %s", r.Target, to, from, reply)
	case Closed:
		return fmt.Sprintf("closed: %s refused RCPT TO:<%s> from <%s>: %s", r.Target, to, from, reply)
	default:
		return fmt.Sprintf("inconclusive: %s at %s: %s", r.Target, r.Stage, reply)
	}
}

// Direction says who sent a transcript line.
type Direction string

// Transcript directions.
const (
	Client Direction = "C"
	Server Direction = "S"
)

// Line is one line of the transcript, without its CRLF.
type Line struct {
	Dir  Direction
	Text string
}

// String renders a line as "C: EHLO x" or "S: 250 ...".
func (l Line) String() string { return string(l.Dir) + ": " + l.Text }

// ParseTarget turns "host", "host:port", "[v6]:port" or a bare IPv6 address
// into host:port, with port 25 when none is given.
func ParseTarget(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty target")
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, 25).String(), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			return net.JoinHostPort(strings.Trim(s, "[]"), "25"), nil
		}
		return "", fmt.Errorf("target %q: %w", s, err)
	}
	if host == "" {
		return "", fmt.Errorf("target %q: no host", s)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("target %q: bad port %q", s, port)
	}
	return net.JoinHostPort(host, port), nil
}

// Test runs one relay test against addr (host:port, see ParseTarget).
//
// The session is: banner, EHLO (HELO if EHLO is refused with 500/502),
// MAIL FROM:<opts.From>, RCPT TO:<opts.To>, then always RSET and QUIT while
// the connection is usable, whatever happened before. DATA is never sent.
func Test(ctx context.Context, addr string, opts Options) (res Result) {
	start := time.Now()
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	helo := opts.HELO
	if helo == "" {
		helo = DefaultHELO
	}
	res = Result{Target: addr, Outcome: Inconclusive, Stage: StageConnect}
	defer func() { res.Duration = time.Since(start) }()

	d := net.Dialer{Timeout: timeout}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		res.Err = fmt.Errorf("connect %s: %w", addr, err)
		return res
	}
	rec := newRecorder(raw)
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()

	s := &session{rec: rec, res: &res, timeout: timeout}
	defer func() { res.Transcript = rec.lines() }()
	s.run(helo, from(opts.From), opts.To)
	s.end()
	if res.Err != nil && ctx.Err() != nil {
		res.Err = fmt.Errorf("%w (%v)", res.Err, ctx.Err())
	}
	return res
}

// from maps the "<>" spelling of the null sender to "".
func from(s string) string {
	if s == "<>" {
		return ""
	}
	return s
}

// session is one test in progress.
type session struct {
	rec     *recorder
	res     *Result
	timeout time.Duration
	c       *smtp.Client
}

// run walks banner, hello, MAIL and RCPT, filling res; it stops at the
// first step that fails.
func (s *session) run(helo, from, to string) {
	s.c = smtp.NewClient(s.rec)
	s.c.CommandTimeout = s.timeout

	// Hello reads the banner first, then sends EHLO (and HELO if EHLO is
	// refused): tell a refused banner from a refused greeting by the
	// first reply read.
	err := s.c.Hello(helo)
	if err != nil {
		lines := s.rec.serverLinesSince(0)
		if len(lines) == 0 || !strings.HasPrefix(lines[0], "220") {
			s.fail(StageBanner, lines, err)
			return
		}
		s.fail(StageHello, lines[bannerEnd(lines):], err)
		return
	}
	mark := s.rec.mark()
	if err := s.c.Mail(from, nil); err != nil {
		s.fail(StageMail, s.rec.serverLinesSince(mark), err)
		return
	}

	mark = s.rec.mark()
	err = s.c.Rcpt(to, nil)
	s.res.Stage = StageRcpt
	s.setReply(s.rec.serverLinesSince(mark))
	var se *smtp.SMTPError
	switch {
	case err == nil:
		s.res.Outcome = Open
	case errors.As(err, &se) && se.Code >= 500 && se.Code < 600:
		s.res.Outcome = Closed
	case errors.As(err, &se):
		s.res.Outcome = Inconclusive
	default:
		s.res.Outcome = Inconclusive
		s.res.Err = fmt.Errorf("RCPT TO: %w", err)
	}
}

// bannerEnd returns the index just after the banner reply in lines.
func bannerEnd(lines []string) int {
	for i, l := range lines {
		if !isContinuation(l) {
			return i + 1
		}
	}
	return len(lines)
}

// fail records a failure before RCPT at stage, with the last reply in
// lines (what the server said to that step, if anything) or the error.
func (s *session) fail(stage Stage, lines []string, err error) {
	s.res.Stage = stage
	s.res.Outcome = Inconclusive
	s.setReply(lines)
	var se *smtp.SMTPError
	if s.res.Reply == "" || !errors.As(err, &se) {
		s.res.Err = fmt.Errorf("%s: %w", stage, err)
	}
}

// setReply copies into res the last complete reply in lines.
func (s *session) setReply(lines []string) {
	lines = lastReply(lines)
	if len(lines) == 0 {
		return
	}
	s.res.Reply = strings.Join(lines, "\n")
	s.res.Code, _ = strconv.Atoi(lines[0][:3])
}

// lastReply returns the lines of the last reply in lines: a run of
// "NNN-" continuation lines ended by a "NNN " line.
func lastReply(lines []string) []string {
	end := len(lines)
	for end > 0 && !isFinalLine(lines[end-1]) {
		end--
	}
	if end == 0 {
		return nil
	}
	start := end - 1
	for start > 0 && isContinuation(lines[start-1]) {
		start--
	}
	return lines[start:end]
}

// isFinalLine reports whether l is the last line of a reply ("250 ok").
func isFinalLine(l string) bool {
	_, sep, _, ok := health.ParseReplyLine(l)
	return ok && sep == ' '
}

// isContinuation reports whether l is a line of a reply with more to come
// ("250-PIPELINING").
func isContinuation(l string) bool {
	_, sep, _, ok := health.ParseReplyLine(l)
	return ok && sep == '-'
}

// end sends RSET and QUIT, then stops. They are written on the connection
// directly rather than through the go-smtp client: after a refused banner
// or greeting the client refuses to send anything, and after Reset its Quit
// would send a fresh EHLO first. Nothing is sent once the connection is
// known to be broken (closed by the server, timed out).
func (s *session) end() {
	for _, cmd := range []string{"RSET", "QUIT"} {
		if s.rec.broken() {
			return
		}
		if err := s.rec.rawCommand(cmd, s.timeout); err != nil {
			return
		}
	}
}
