package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/dsrlb/dsrlb/internal/smtplog"
)

const fixtures = "../../internal/smtplog/testdata/logs"

func TestCmdLogs(t *testing.T) {
	var out, errOut bytes.Buffer
	code := cmdLogs([]string{fixtures, "--top", "2"}, &out, &errOut)
	if code != exitBad { // the fixtures have an idle connector
		t.Fatalf("exit %d, want %d; stderr %s", code, exitBad, errOut.String())
	}
	for _, want := range []string{"7 sessions", "Sessions per remote IP", "(2 more)", `! idle-connector: SERVER1\Internet via Gateway`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr is not a terminal, yet got %q", errOut.String())
	}

	out.Reset()
	if code := cmdLogs([]string{"--json", fixtures}, &out, &errOut); code != exitBad {
		t.Fatalf("--json exit %d", code)
	}
	var r smtplog.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Sessions != 7 || len(r.ByRemoteIP) != 4 || r.ByRemoteIP[0].Key != "10.0.0.5" {
		t.Errorf("JSON report: sessions %d, %d IPs, top %q", r.Sessions, len(r.ByRemoteIP), r.ByRemoteIP[0].Key)
	}

	// Only SERVER2's logs: every connector name there is used.
	out.Reset()
	if code := cmdLogs([]string{fixtures + "/SERVER2"}, &out, &errOut); code != exitOK {
		t.Errorf("SERVER2 only: exit %d, want 0:\n%s", code, out.String())
	}

	for _, args := range [][]string{{}, {"/nonexistent/dsrlb-logs"}, {fixtures, "--top", "-1"}} {
		errOut.Reset()
		if code := cmdLogs(args, &out, &errOut); code != exitError || errOut.Len() == 0 {
			t.Errorf("%q: exit %d, want %d with a message", args, code, exitError)
		}
	}
}
