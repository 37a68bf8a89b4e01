package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dsrlb/dsrlb/internal/health/healthtest"
)

// inEmptyDir runs the test in a fresh directory, so that no ./lb.toml is
// found.
func inEmptyDir(t *testing.T) {
	t.Helper()
	t.Chdir(t.TempDir())
}

func TestCmdProbeExitCodes(t *testing.T) {
	inEmptyDir(t)
	srv := healthtest.Start(t, healthtest.Backend{MailReply: func(from string) error {
		if strings.HasSuffix(from, "@corp.example") {
			return nil
		}
		return healthtest.Reply(452, "4.3.1", "Insufficient system resources")
	}})
	tests := []struct {
		name string
		args []string
		code int
		want []string // lines the output must hold
	}{
		{"good", []string{srv.Addr.String(), "--from", "probe@corp.example", "--timeout", "300ms"}, exitOK,
			[]string{"C: MAIL FROM:<probe@corp.example>", "C: QUIT", "verdict: good (up)"}},
		{"flags first", []string{"--from=probe@corp.example", "--helo", "lb1.corp.example", srv.Addr.String()}, exitOK,
			[]string{"C: EHLO lb1.corp.example", "verdict: good (up)"}},
		{"back pressure", []string{srv.Addr.String(), "--from", "probe@outside.example", "--timeout", "300ms"}, exitBad,
			[]string{"S: 452 4.3.1 Insufficient system resources", "verdict: back-pressure (draining)",
				"reason:  back pressure: 452 4.3.1 Insufficient system resources"}},
		{"starttls required", []string{srv.Addr.String(), "--starttls", "require", "--timeout", "300ms"}, exitError,
			[]string{"verdict: bad (down)", "reason:  STARTTLS required but not advertised"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := cmdProbe(tc.args, &out, &errb)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out.String(), errb.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w+"\n") {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestCmdProbeDown(t *testing.T) {
	inEmptyDir(t)
	var out, errb bytes.Buffer
	code := cmdProbe([]string{"[::1]:1", "--timeout", "200ms"}, &out, &errb)
	if code != exitError || !strings.Contains(out.String(), "probe:   [::1]:1 ") ||
		!strings.Contains(out.String(), "verdict: bad (down)\nreason:  connect: connection refused\n") {
		t.Errorf("exit %d, output:\n%s%s", code, out.String(), errb.String())
	}
}

func TestResolveProbeTarget(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.11", "192.0.2.11:25"},
		{"192.0.2.11:2525", "192.0.2.11:2525"},
		{"2001:db8::11", "[2001:db8::11]:25"},
		{"[2001:db8::11]", "[2001:db8::11]:25"},
		{"[2001:db8::11]:587", "[2001:db8::11]:587"},
		{"localhost:2525", ":2525"}, // resolved: 127.0.0.1 or ::1
	}
	for _, tc := range tests {
		got, err := resolveProbeTarget(tc.in, time.Second)
		if err != nil || !strings.HasSuffix(got.String(), tc.want) || (tc.want[0] == ':' && !got.Addr().IsLoopback()) {
			t.Errorf("resolveProbeTarget(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"192.0.2.11:0", "192.0.2.11:x", ":25"} {
		if got, err := resolveProbeTarget(bad, time.Second); err == nil {
			t.Errorf("resolveProbeTarget(%q) = %s, want an error", bad, got)
		}
	}
}

func TestCmdProbeUsage(t *testing.T) {
	inEmptyDir(t)
	for _, args := range [][]string{
		{},
		{"192.0.2.11", "192.0.2.12"},
		{"192.0.2.11", "--starttls", "maybe"},
		{"192.0.2.11", "--timeout", "-1s"},
		{"192.0.2.11", "--bogus"},
	} {
		var out, errb bytes.Buffer
		if code := cmdProbe(args, &out, &errb); code != exitError || errb.Len() == 0 || out.Len() != 0 {
			t.Errorf("args %q: exit %d, stdout %q, stderr %q; want 2 and a message", args, code, out.String(), errb.String())
		}
	}
}

func TestCmdProbeExplicitConfigMustLoad(t *testing.T) {
	inEmptyDir(t)
	path := filepath.Join(t.TempDir(), "missing.toml")
	var out, errb bytes.Buffer
	if code := cmdProbe([]string{"192.0.2.11", "-c", path}, &out, &errb); code != exitError || !strings.Contains(errb.String(), "dsrlb probe:") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
	// A default ./lb.toml that does not load is reported, not fatal.
	if err := os.WriteFile("lb.toml", []byte("not = [valid"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := healthtest.Start(t, healthtest.Backend{})
	out.Reset()
	errb.Reset()
	code := cmdProbe([]string{srv.Addr.String(), "--timeout", "300ms"}, &out, &errb)
	if code != exitOK || !strings.Contains(errb.String(), "ignoring lb.toml") ||
		!strings.Contains(out.String(), fmt.Sprintf("C: MAIL FROM:<%s>", builtinHealth().MailFrom)) {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
}

// TestCmdProbeRefusesCommandInjection: --from, --helo and --rcpt go into
// SMTP command lines, so they get the config's rules; a CR/LF in them must
// never reach a server (here it would have sent DATA).
func TestCmdProbeRefusesCommandInjection(t *testing.T) {
	inEmptyDir(t)
	srv := healthtest.Start(t, healthtest.Backend{})
	for _, args := range [][]string{
		{"--from", "probe@corp.example>\r\nDATA\r\nSubject: x"},
		{"--from", "probe @corp.example"},
		{"--helo", "lb1.corp.example\r\nDATA"},
		{"--rcpt", "postmaster@corp.example>\r\nDATA"},
	} {
		var out, errb bytes.Buffer
		code := cmdProbe(append([]string{srv.Addr.String(), "--timeout", "300ms"}, args...), &out, &errb)
		if code != exitError || out.Len() != 0 || !strings.Contains(errb.String(), "--"+strings.TrimPrefix(args[0], "--")) {
			t.Errorf("args %q: exit %d, stdout %q, stderr %q; want 2, nothing probed and the flag named", args, code, out.String(), errb.String())
		}
	}
	if _, _, total := srv.Sessions(); total != 0 {
		t.Errorf("the server saw %d sessions (commands %q), want none", total, srv.Commands())
	}
	// --rcpt "" still means no RCPT TO, as documented.
	var out, errb bytes.Buffer
	if code := cmdProbe([]string{srv.Addr.String(), "--timeout", "300ms", "--rcpt", ""}, &out, &errb); code != exitOK {
		t.Errorf("--rcpt \"\": exit %d\n%s%s", code, out.String(), errb.String())
	}
}
