package relaytest

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/dsrlb/dsrlb/internal/safetext"
)

// recorder is the net.Conn given to the go-smtp client. It keeps a
// transcript of both directions, remembers whether the connection broke,
// and ignores Close: Test closes the real connection itself, so that RSET
// and QUIT can still be sent after the client gave up on a refused banner.
type recorder struct {
	net.Conn
	transcript []Line
	server     []string // server lines only, for reply extraction
	partial    [2][]byte
	failed     bool
	reader     *bufio.Reader // for commands sent without the client
}

func newRecorder(c net.Conn) *recorder { return &recorder{Conn: c} }

// Read records what the server sent.
func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.record(Server, p[:n])
	if err != nil {
		r.failed = true
	}
	return n, err
}

// Write records what the client sent.
func (r *recorder) Write(p []byte) (int, error) {
	r.record(Client, p)
	n, err := r.Conn.Write(p)
	if err != nil {
		r.failed = true
	}
	return n, err
}

// Close does nothing: see recorder.
func (r *recorder) Close() error { return nil }

// record splits b into lines and appends complete ones to the transcript.
func (r *recorder) record(d Direction, b []byte) {
	i := 0
	if d == Server {
		i = 1
	}
	buf := append(r.partial[i], b...)
	for {
		nl := strings.IndexByte(string(buf), '\n')
		if nl < 0 {
			break
		}
		text := safetext.Printable(strings.TrimRight(string(buf[:nl]), "\r"))
		r.transcript = append(r.transcript, Line{Dir: d, Text: text})
		if d == Server {
			r.server = append(r.server, text)
		}
		buf = buf[nl+1:]
	}
	r.partial[i] = append([]byte(nil), buf...)
}

// mark returns a position in the server's lines for serverLinesSince.
func (r *recorder) mark() int { return len(r.server) }

// serverLinesSince returns the server lines read since mark.
func (r *recorder) serverLinesSince(mark int) []string { return r.server[mark:] }

// broken reports whether a read or write on the connection failed.
func (r *recorder) broken() bool { return r.failed }

// lines returns the transcript, with any unterminated trailing text.
func (r *recorder) lines() []Line {
	out := append([]Line(nil), r.transcript...)
	for i, d := range [2]Direction{Client, Server} {
		if len(r.partial[i]) > 0 {
			out = append(out, Line{Dir: d, Text: safetext.Printable(string(r.partial[i])) + " [no CRLF]"})
		}
	}
	return out
}

// rawCommand sends cmd and reads its whole reply without the go-smtp
// client, for RSET and QUIT after the client refused to continue.
func (r *recorder) rawCommand(cmd string, timeout time.Duration) error {
	if err := r.Conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	defer r.Conn.SetDeadline(time.Time{})
	if _, err := r.Write([]byte(cmd + "\r\n")); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if r.reader == nil {
		r.reader = bufio.NewReader(r)
	}
	for {
		line, err := r.reader.ReadString('\n')
		if err != nil {
			return fmt.Errorf("reply to %s: %w", cmd, err)
		}
		if isFinalLine(strings.TrimRight(line, "\r\n")) {
			return nil
		}
	}
}
