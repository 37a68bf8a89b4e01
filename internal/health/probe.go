// Package health probes SMTP backends deeply (banner, EHLO, STARTTLS,
// MAIL FROM, RCPT TO, RSET, QUIT; never DATA), turns probe verdicts into
// per-(VIP, backend) states with rise/fall counting, and schedules probes
// with jitter and bounded concurrency.
//
// The probe exists because a balancer that stops at HELO keeps sending mail
// to an Exchange server that answers MAIL FROM with
// "452 4.3.1 Insufficient system resources" (back pressure).
package health

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dsrlb/dsrlb/internal/config"
	"github.com/dsrlb/dsrlb/internal/safetext"
)

// Verdict is the outcome of one deep probe.
type Verdict string

// Probe verdicts (DESIGN section 5).
const (
	// Good: 220 banner, 2xx to EHLO (or HELO), MAIL FROM, RCPT TO and RSET.
	Good Verdict = "good"
	// BackPressure: 4xx at MAIL FROM or RCPT TO, or a MAIL FROM reply that
	// did not come within the tarpit threshold. The backend drains.
	BackPressure Verdict = "back-pressure"
	// Bad: no connect, no or non-220 banner, a timeout, a 5xx anywhere,
	// garbage instead of a reply. The backend goes down.
	Bad Verdict = "bad"
)

// certWarnBefore is how long before its expiry a STARTTLS certificate
// raises a warning.
const certWarnBefore = 14 * 24 * time.Hour

// Built-in probe limits used when a profile leaves them zero.
const (
	defaultTimeout  = 3 * time.Second
	maxReplyLines   = 100  // continuation lines accepted in one reply
	maxReplyLineLen = 4096 // bytes in one reply line, CRLF included
	maxShownGarbage = 80   // bytes of garbage quoted in a reason
)

// Result is what one deep probe found.
type Result struct {
	// Verdict is Good, BackPressure or Bad.
	Verdict Verdict
	// Reply is the server's decisive reply line: the MAIL FROM reply when
	// good ("250 2.1.0 Sender OK"), else the reply that decided the verdict
	// ("452 4.3.1 Insufficient system resources"). For a multi-line reply
	// it is the first line with its continuation marker turned into a
	// space. "" when no reply decided it (connect failure, timeout).
	Reply string
	// Reason says in words why the verdict is not good; "" when good.
	Reason string
	// Latency is the time the MAIL FROM step took (command written to reply
	// read), the figure that tarpitting inflates. Zero when the probe did
	// not get as far as MAIL FROM.
	Latency time.Duration
	// CheckedAt is when the probe finished.
	CheckedAt time.Time
	// CertNotAfter is the expiry of the certificate presented on STARTTLS;
	// zero without TLS.
	CertNotAfter time.Time
	// Warning flags what does not change the verdict: a certificate close
	// to expiry, STARTTLS refused in "try" mode, no 221 to QUIT.
	Warning string
	// Transcript is the session, one line per entry, prefixed "C: " for
	// what the probe sent and "S: " for what the server sent.
	Transcript []string
}

// Prober runs deep probes. Its zero value is ready to use.
type Prober struct {
	// Dialer opens the TCP connection. Nil means a net.Dialer whose timeout
	// is the profile's timeout.
	Dialer *net.Dialer
	// TLSConfig is cloned for STARTTLS. Nil means: do not verify the
	// certificate chain or name (mail servers often present certificates
	// from a private CA, and senders using opportunistic TLS do not verify
	// either); the expiry is still read and warned about.
	TLSConfig *tls.Config
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Probe runs one deep SMTP probe against addr with profile p, using a zero
// Prober. See Prober.Probe.
func Probe(ctx context.Context, addr netip.AddrPort, p config.Health) Result {
	return Prober{}.Probe(ctx, addr, p)
}

// Probe connects to addr and walks the SMTP dialogue of DESIGN section 5:
// banner, EHLO (HELO if EHLO gets a 5xx), STARTTLS per p.StartTLS,
// MAIL FROM:<p.MailFrom>, RCPT TO:<p.RcptTo> when set, RSET, QUIT. It never
// sends DATA. Every reply is awaited at most p.Timeout, except the MAIL FROM
// reply, awaited up to p.TarpitThreshold. The connection is always closed
// before Probe returns, and QUIT is sent whenever the session is still in
// step with the server (after a timeout it is sent without waiting for the
// 221). Cancelling ctx ends the probe at once with a Bad verdict.
func (pr Prober) Probe(ctx context.Context, addr netip.AddrPort, p config.Health) Result {
	if p.Timeout <= 0 {
		p.Timeout = defaultTimeout
	}
	if p.TarpitThreshold <= 0 {
		p.TarpitThreshold = p.Timeout
	}
	s := &session{prober: pr, profile: p, ctx: ctx}
	if err := checkCommandArgs(p); err != nil {
		// Never on the wire: a line break would smuggle in a command (DATA).
		s.decide(Bad, "", "probe profile: "+err.Error())
	} else {
		s.run(addr)
	}
	s.res.CheckedAt = pr.now()
	return s.res.printable()
}

// printable escapes the server's text in the result: it reaches the
// operator's terminal through `dsrlb status` and `dsrlb probe`.
func (r Result) printable() Result {
	r.Reply, r.Reason, r.Warning = safetext.Printable(r.Reply), safetext.Printable(r.Reason), safetext.Printable(r.Warning)
	if r.Transcript != nil {
		t := make([]string, len(r.Transcript))
		for i, l := range r.Transcript {
			t[i] = safetext.Printable(l)
		}
		r.Transcript = t
	}
	return r
}

// checkCommandArgs refuses profile values that would break out of their
// SMTP command line. config validation refuses far more; this is the
// probe's own guarantee for callers that build a profile by hand.
func checkCommandArgs(p config.Health) error {
	for _, f := range []struct{ key, v string }{{"helo", p.HELO}, {"mail_from", p.MailFrom}, {"rcpt_to", p.RcptTo}} {
		if strings.ContainsAny(f.v, "\r\n") {
			return fmt.Errorf("%s %q holds a line break", f.key, f.v)
		}
	}
	return nil
}

func (pr Prober) now() time.Time {
	if pr.Now != nil {
		return pr.Now()
	}
	return time.Now()
}

// reply is one SMTP reply, possibly multi-line.
type reply struct {
	code  int
	lines []string // the text after "DDD " or "DDD-" of every line
}

// line is the reply's first line as "DDD text".
func (r reply) line() string {
	if r.lines[0] == "" {
		return fmt.Sprintf("%03d", r.code)
	}
	return fmt.Sprintf("%03d %s", r.code, r.lines[0])
}

// class is the reply's first digit: 2, 3, 4 or 5.
func (r reply) class() int { return r.code / 100 }

// errServerClosing marks a session ended by a 421 reply: no QUIT follows.
var errServerClosing = errors.New("server closing the connection (421)")

// garbageError is a server line that is not an SMTP reply.
type garbageError struct{ line string }

func (e *garbageError) Error() string {
	l := e.line
	if len(l) > maxShownGarbage {
		l = l[:maxShownGarbage] + "..."
	}
	return fmt.Sprintf("garbage from server: %q", l)
}

// session is the state of one probe.
type session struct {
	prober  Prober
	profile config.Health
	ctx     context.Context
	res     Result

	raw net.Conn      // the TCP connection: deadlines are set here
	rw  net.Conn      // raw, or the TLS connection over it
	r   *bufio.Reader // reads rw

	mu        sync.Mutex // guards cancelled and deadline changes
	cancelled bool

	ext      map[string]bool // EHLO keywords, upper case
	decided  bool            // the verdict is set
	broken   error           // the session is out of step with the server
	mailLine string          // the MAIL FROM reply line
}

// run is the whole probe; it fills s.res.
func (s *session) run(addr netip.AddrPort) {
	if !s.dial(addr) {
		return
	}
	defer s.raw.Close()
	stop := context.AfterFunc(s.ctx, s.cancel)
	defer stop()
	s.dialogue()
	s.quit()
	if !s.decided {
		s.res.Verdict = Good
		s.res.Reply = s.mailLine
	}
}

// dial connects; it decides Bad and returns false on failure.
func (s *session) dial(addr netip.AddrPort) bool {
	d := s.prober.Dialer
	if d == nil {
		d = &net.Dialer{Timeout: s.profile.Timeout}
	}
	conn, err := d.DialContext(s.ctx, "tcp", addr.String())
	if err != nil {
		s.decide(Bad, "", "connect: "+describeDialError(err, s.profile.Timeout))
		return false
	}
	s.raw, s.rw, s.r = conn, conn, bufio.NewReaderSize(conn, maxReplyLineLen)
	return true
}

// describeDialError turns a dial error into "connection refused",
// "timeout after 3s" and the like.
func describeDialError(err error, timeout time.Duration) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "probe cancelled"
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("timeout after %s", timeout)
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

// cancel runs when the probe's context ends: it makes every pending and
// future read or write fail at once.
func (s *session) cancel() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancelled = true
	s.raw.SetDeadline(time.Unix(1, 0))
}

// setDeadline bounds the next step by d, unless the probe was cancelled.
func (s *session) setDeadline(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cancelled {
		s.raw.SetDeadline(time.Now().Add(d))
	}
}

// dialogue walks banner to RSET; it stops at the first decisive reply.
func (s *session) dialogue() {
	p := s.profile
	banner, err := s.read(p.Timeout)
	if err != nil {
		s.failed("banner", err, p.Timeout)
		return
	}
	if banner.code != 220 {
		s.decide(Bad, banner.line(), "banner: "+banner.line())
		return
	}
	if !s.hello() || !s.startTLS() {
		return
	}
	if !s.mail() {
		return
	}
	if p.RcptTo != "" && !s.decided {
		if !s.rcpt() {
			return
		}
	}
	s.rset()
}

// hello sends EHLO, or HELO when EHLO gets a 5xx. It reports whether the
// session may go on.
func (s *session) hello() bool {
	helo := s.profile.HELO
	if helo == "" {
		helo = "localhost"
	}
	r, ok := s.command("EHLO "+helo, "EHLO", s.profile.Timeout)
	if !ok {
		return false
	}
	if r.class() == 5 {
		if r, ok = s.command("HELO "+helo, "HELO", s.profile.Timeout); !ok {
			return false
		}
		if r.class() != 2 {
			s.decide(Bad, r.line(), "HELO: "+r.line())
			return false
		}
		s.ext = map[string]bool{}
		return true
	}
	if r.class() != 2 {
		s.decide(Bad, r.line(), "EHLO: "+r.line())
		return false
	}
	s.ext = map[string]bool{}
	for _, l := range r.lines[1:] {
		if kw, _, _ := strings.Cut(l, " "); kw != "" {
			s.ext[strings.ToUpper(kw)] = true
		}
	}
	return true
}

// startTLS applies p.StartTLS. It reports whether the session may go on.
func (s *session) startTLS() bool {
	mode := s.profile.StartTLS
	if mode != config.StartTLSTry && mode != config.StartTLSRequire {
		return true
	}
	if !s.ext["STARTTLS"] {
		if mode == config.StartTLSRequire {
			s.decide(Bad, "", "STARTTLS required but not advertised")
			return false
		}
		return true
	}
	r, ok := s.command("STARTTLS", "STARTTLS", s.profile.Timeout)
	if !ok {
		return false
	}
	if r.code != 220 {
		// A 421 closes the channel: nothing can go on in plain text either.
		if mode == config.StartTLSRequire || r.class() == 5 || r.code == 421 {
			s.decide(Bad, r.line(), "STARTTLS refused: "+r.line())
			return false
		}
		s.warn("STARTTLS refused, probed without TLS: " + r.line())
		return true
	}
	cfg := &tls.Config{InsecureSkipVerify: true}
	if s.prober.TLSConfig != nil {
		cfg = s.prober.TLSConfig.Clone()
	}
	tc := tls.Client(s.raw, cfg)
	s.setDeadline(s.profile.Timeout)
	if err := tc.HandshakeContext(s.ctx); err != nil {
		msg := err.Error()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			msg = fmt.Sprintf("timeout after %s", s.profile.Timeout)
		}
		// Not a timeout for quit's sake: no plaintext QUIT into a TLS session.
		s.broken = errors.New("STARTTLS handshake failed")
		s.decide(Bad, "", "STARTTLS handshake: "+msg)
		return false
	}
	s.rw, s.r = tc, bufio.NewReaderSize(tc, maxReplyLineLen)
	s.checkCert(tc.ConnectionState())
	return s.hello()
}

// checkCert records the leaf certificate's expiry and warns when it is near.
func (s *session) checkCert(st tls.ConnectionState) {
	if len(st.PeerCertificates) == 0 {
		return
	}
	leaf := st.PeerCertificates[0]
	s.res.CertNotAfter = leaf.NotAfter
	left := leaf.NotAfter.Sub(s.prober.now())
	switch {
	case left <= 0:
		s.warn(fmt.Sprintf("TLS certificate %q expired on %s", leaf.Subject.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339)))
	case left < certWarnBefore:
		s.warn(fmt.Sprintf("TLS certificate %q expires on %s (in %d days)", leaf.Subject.CommonName,
			leaf.NotAfter.UTC().Format(time.RFC3339), int(left.Hours()/24)))
	}
}

// mail sends MAIL FROM and classifies the reply. It reports whether the
// session may go on (a transaction is open).
func (s *session) mail() bool {
	p := s.profile
	start := time.Now()
	r, err := s.exchangeWithin("MAIL FROM:<"+p.MailFrom+">", p.TarpitThreshold)
	s.res.Latency = time.Since(start)
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() && s.ctx.Err() == nil {
		s.broken = err
		s.decide(BackPressure, "", fmt.Sprintf("tarpit: no reply to MAIL FROM within %s", p.TarpitThreshold))
		return false
	}
	if err != nil {
		s.failed("MAIL FROM", err, p.TarpitThreshold)
		return false
	}
	switch r.class() {
	case 2:
		s.mailLine = r.line()
		if s.res.Latency >= p.TarpitThreshold {
			s.decide(BackPressure, r.line(), fmt.Sprintf("tarpit: MAIL FROM reply took %s (threshold %s): %s",
				s.res.Latency.Round(time.Millisecond), p.TarpitThreshold, r.line()))
		}
		return true
	case 4:
		s.decide(BackPressure, r.line(), "back pressure: "+r.line())
	case 5:
		s.decide(Bad, r.line(), "MAIL FROM refused by policy: "+r.line()+" (check mail_from)")
	default:
		s.decide(Bad, r.line(), "MAIL FROM: unexpected reply: "+r.line())
	}
	return false
}

// rcpt sends RCPT TO and classifies the reply. It reports whether the
// session may go on.
func (s *session) rcpt() bool {
	r, ok := s.command("RCPT TO:<"+s.profile.RcptTo+">", "RCPT TO", s.profile.Timeout)
	if !ok {
		return false
	}
	switch r.class() {
	case 2:
	case 4:
		s.decide(BackPressure, r.line(), "back pressure at RCPT TO: "+r.line())
	case 5:
		s.decide(Bad, r.line(), "RCPT TO refused: "+r.line()+" (check rcpt_to)")
	default:
		s.decide(Bad, r.line(), "RCPT TO: unexpected reply: "+r.line())
	}
	return true // the transaction is open either way: RSET it
}

// rset ends the transaction.
func (s *session) rset() {
	r, ok := s.command("RSET", "RSET", s.profile.Timeout)
	if ok && r.class() != 2 {
		s.decide(Bad, r.line(), "RSET: "+r.line())
	}
}

// quit ends the session politely when it can: QUIT and the 221 when the
// session is in step, QUIT alone after a timeout (the server will read it
// once it answers what it was slow on), nothing after a broken connection
// or a 421 (the server closes the channel itself).
func (s *session) quit() {
	if s.ctx.Err() != nil {
		return
	}
	var ne net.Error
	switch {
	case s.broken == nil:
		r, err := s.exchangeWithin("QUIT", s.profile.Timeout)
		switch {
		case err != nil:
			s.warn("no 221 to QUIT: " + describeStepError(err, "QUIT", s.profile.Timeout))
		case r.code != 221:
			s.warn("QUIT: expected 221, got " + r.line())
		}
	case errors.As(s.broken, &ne) && ne.Timeout():
		s.setDeadline(s.profile.Timeout)
		s.write("QUIT")
	}
}

// command sends line and reads the reply within wait. On a read or write
// failure it decides Bad for step and returns false.
func (s *session) command(line, step string, wait time.Duration) (reply, bool) {
	r, err := s.exchangeWithin(line, wait)
	if err != nil {
		s.failed(step, err, wait)
		return reply{}, false
	}
	return r, true
}

// exchangeWithin sends line and reads the reply, the whole step bounded by
// wait.
func (s *session) exchangeWithin(line string, wait time.Duration) (reply, error) {
	s.setDeadline(wait)
	if err := s.write(line); err != nil {
		return reply{}, err
	}
	return s.readLines()
}

// write sends one command line and records it.
func (s *session) write(line string) error {
	s.res.Transcript = append(s.res.Transcript, "C: "+line)
	_, err := io.WriteString(s.rw, line+"\r\n")
	return err
}

// read reads one reply within wait.
func (s *session) read(wait time.Duration) (reply, error) {
	s.setDeadline(wait)
	return s.readLines()
}

// readLines reads one reply under the deadline already set, recording
// every line. A line that is not "DDD", "DDD text" or "DDD-text" with the
// same code throughout is a garbageError.
func (s *session) readLines() (reply, error) {
	var r reply
	for n := 0; ; n++ {
		raw, err := s.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return r, &garbageError{line: string(raw)}
		}
		if err != nil && (len(raw) == 0 || !errors.Is(err, io.EOF)) {
			return r, err
		}
		if err != nil { // a last line without its newline
			s.res.Transcript = append(s.res.Transcript, "S: "+string(raw))
			return r, io.ErrUnexpectedEOF
		}
		line := strings.TrimRight(string(raw), "\r\n")
		s.res.Transcript = append(s.res.Transcript, "S: "+line)
		code, sep, text, ok := ParseReplyLine(line)
		if !ok || (n > 0 && code != r.code) || n >= maxReplyLines {
			return r, &garbageError{line: line}
		}
		r.code = code
		r.lines = append(r.lines, text)
		if sep != '-' {
			if code == 421 { // RFC 5321: the server is closing the channel
				s.broken = errServerClosing
			}
			return r, nil
		}
	}
}

// ParseReplyLine splits one SMTP reply line: its code (200-599), its
// separator (' ' on the last line of a reply, '-' on the others) and its
// text. ok is false for anything else.
func ParseReplyLine(line string) (code int, sep byte, text string, ok bool) {
	if len(line) < 3 {
		return 0, 0, "", false
	}
	for i := 0; i < 3; i++ {
		c := line[i]
		if c < '0' || c > '9' {
			return 0, 0, "", false
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code > 599 {
		return 0, 0, "", false
	}
	if len(line) == 3 {
		return code, ' ', "", true
	}
	if line[3] != ' ' && line[3] != '-' {
		return 0, 0, "", false
	}
	return code, line[3], line[4:], true
}

// failed decides Bad after an I/O or protocol error at step.
func (s *session) failed(step string, err error, wait time.Duration) {
	s.broken = err
	s.decide(Bad, "", describeStepError(err, step, wait))
}

// describeStepError words an error met while waiting for step's reply.
func describeStepError(err error, step string, wait time.Duration) string {
	var ne net.Error
	var ge *garbageError
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("timeout waiting for %s after %s", stepNoun(step), wait)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return step + ": connection closed by server"
	case errors.As(err, &ge):
		return step + ": " + ge.Error()
	}
	return step + ": " + err.Error()
}

// stepNoun names what a step waits for: "banner", "EHLO reply".
func stepNoun(step string) string {
	if step == "banner" {
		return step
	}
	return step + " reply"
}

// decide sets the verdict once: the first decisive reply wins.
func (s *session) decide(v Verdict, replyLine, reason string) {
	if s.decided {
		return
	}
	if s.ctx.Err() != nil && v != Good {
		reason = "probe cancelled: " + reason
		v = Bad
	}
	s.decided = true
	s.res.Verdict, s.res.Reply, s.res.Reason = v, replyLine, reason
}

// warn adds a warning.
func (s *session) warn(w string) {
	if s.res.Warning != "" {
		s.res.Warning += "; "
	}
	s.res.Warning += w
}
