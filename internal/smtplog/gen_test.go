package smtplog

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"
)

// genSession describes one synthetic SMTP Receive session.
type genSession struct {
	connector string // connector-id, "SERVER\Name"
	id        uint64 // session-id, printed as 16 hex digits
	local     string // local endpoint
	remote    string // remote endpoint
	noClose   bool   // leave out the "-" disconnect line
}

// fieldOrder is the standard #Fields order; reordered tests pass another.
var fieldOrder = DefaultFields()

// events returns the event lines of s, in the shape Exchange writes them:
// banner and queue replies quoted because they contain commas, permissions
// and tarpit info lines, a disconnect with context "Local".
func (s genSession) events() [][2]string {
	host := strings.Trim(s.remote[:strings.LastIndexByte(s.remote, ':')], "[]")
	server := s.connector[:strings.IndexByte(s.connector, '\\')]
	ev := [][2]string{
		{"+", ""},
		{"*", "SMTPSubmit SMTPAcceptAnySender SMTPAcceptAuthoritativeDomainSender AcceptRoutingHeaders\x00Set Session Permissions"},
		{">", fmt.Sprintf("220 %s.domain.local Microsoft ESMTP MAIL Service ready at Fri, 26 Apr 2013 09:40:12 +1000", server)},
		{"<", "EHLO app01.domain.local"},
		{">", fmt.Sprintf("250-%s.domain.local Hello [%s]", server, host)},
		{">", "250 XRDST"},
		{"<", "MAIL FROM:<alerts@domain.local> SIZE=2048"},
		{">", "250 2.1.0 Sender OK"},
		{"<", "RCPT TO:<paul@domain.local>"},
		{">", "250 2.1.5 Recipient OK"},
		{"<", "DATA"},
		{">", "354 Start mail input; end with <CRLF>.<CRLF>"},
		{">", `250 2.6.0 <546b08e1@` + server + `> [InternalId=334267, Hostname=` + server + `] Queued mail for delivery`},
		{"*", `Tarpit for '0.00:00:01' due to "DelayedAck", Delivered`},
		{"<", "QUIT"},
		{">", "221 2.0.0 Service closing transmission channel"},
	}
	if !s.noClose {
		ev = append(ev, [2]string{"-", "\x00Local"})
	}
	return ev
}

// csvField quotes v the way Exchange does when it holds a comma or quote.
func csvField(v string) string {
	if strings.ContainsAny(v, `,"`) {
		return `"` + strings.ReplaceAll(v, `"`, `""`) + `"`
	}
	return v
}

// logWriter writes a synthetic SMTP Receive protocol log.
type logWriter struct {
	w      *bufio.Writer
	fields []string
	t      time.Time
}

func newLogWriter(w io.Writer) *logWriter {
	return &logWriter{w: bufio.NewWriterSize(w, 1<<16), t: time.Date(2013, 4, 26, 0, 0, 0, 0, time.UTC)}
}

// header writes the five header lines with the given field order.
func (lw *logWriter) header(fields []string) {
	lw.fields = fields
	fmt.Fprintf(lw.w, "#Software: Microsoft Exchange Server\r\n#Version: 15.0.0.0\r\n#Log-type: %s\r\n#Date: %s\r\n#Fields: %s\r\n",
		LogType, lw.t.Format("2006-01-02T15:04:05.000Z"), strings.Join(fields, ","))
}

// sessions writes the sessions with their lines interleaved round-robin,
// as concurrent sessions appear in a real log.
func (lw *logWriter) sessions(ss []genSession) {
	evs := make([][][2]string, len(ss))
	for i, s := range ss {
		evs[i] = s.events()
	}
	for seq := 0; ; seq++ {
		wrote := false
		for i, s := range ss {
			if seq < len(evs[i]) {
				lw.line(s, seq, evs[i][seq])
				wrote = true
			}
		}
		if !wrote {
			return
		}
	}
}

// line writes one event line in lw.fields order.
func (lw *logWriter) line(s genSession, seq int, ev [2]string) {
	lw.t = lw.t.Add(7 * time.Millisecond)
	data, context, _ := strings.Cut(ev[1], "\x00")
	for i, f := range lw.fields {
		if i > 0 {
			lw.w.WriteByte(',')
		}
		var v string
		switch f {
		case "date-time":
			v = lw.t.Format("2006-01-02T15:04:05.000Z")
		case "connector-id":
			v = s.connector
		case "session-id":
			v = fmt.Sprintf("%016X", s.id)
		case "sequence-number":
			v = fmt.Sprint(seq)
		case "local-endpoint":
			v = s.local
		case "remote-endpoint":
			v = s.remote
		case "event":
			v = ev[0]
		case "data":
			v = data
		case "context":
			v = context
		}
		lw.w.WriteString(csvField(v))
	}
	lw.w.WriteString("\r\n")
}

func (lw *logWriter) flush() error { return lw.w.Flush() }
