package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validateRun runs `dsrlb validate args...` and returns its exit code and
// outputs.
func validateRun(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := dispatch(append([]string{"validate"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// writeConfig writes an lb.toml with body into a fresh directory.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "lb.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const validateBase = `[lb]
interface = "eth0"

[[backend]]
name = "EX1"
address = "192.0.2.11"

[[backend]]
name = "EX2"
address = "192.0.2.12"

[[vip]]
name = "internet"
address = "198.51.100.25"
`

func TestValidateExample(t *testing.T) {
	code, out, errOut := validateRun("-c", "../../lb.toml")
	if code != exitOK || out != "../../lb.toml: OK (2 VIPs, 3 backends)\n" || errOut != "" {
		t.Errorf("exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	// --strict passes too: the example draws no warning.
	if code, _, _ := validateRun("--strict", "--config", "../../lb.toml"); code != exitOK {
		t.Errorf("--strict on the example: exit %d", code)
	}
}

func TestValidateErrors(t *testing.T) {
	p := writeConfig(t, validateBase+`backends = [{ name = "EX1" }, { name = "EX9", weight = 0 }]
`)
	code, out, errOut := validateRun("-c", p)
	want := p + `:15: vip "internet": backend "EX9": weight 0 is out of range 1..65535` + "\n" +
		p + `:15: vip "internet": backend "EX9" is not defined` + "\n" +
		p + ": 2 errors\n"
	if code != exitBad || out != "" || errOut != want {
		t.Errorf("exit %d\nstdout %q\nstderr %q\nwant   %q", code, out, errOut, want)
	}
}

func TestValidateWarnings(t *testing.T) {
	p := writeConfig(t, validateBase+`persistence = "source-ip"
backends = [{ name = "EX1" }, { name = "EX2" }]
`)
	code, out, errOut := validateRun("-c", p)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != exitOK || errOut != "" || len(lines) != 2 || lines[0] != p+": OK (1 VIP, 2 backends)" ||
		!strings.HasPrefix(lines[1], p+`:12: warning: vip "internet": persistence = "source-ip"`) {
		t.Errorf("exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	code, _, errOut = validateRun(p, "--strict") // the file is given with -c only
	if code != exitError || !strings.Contains(errOut, "unexpected argument") {
		t.Errorf("positional file: exit %d, stderr %q", code, errOut)
	}
	code, out2, errOut := validateRun("-c", p, "--strict")
	if code != exitBad || out2 != out || errOut != p+": 1 warning with --strict\n" {
		t.Errorf("--strict: exit %d\nstdout %q\nstderr %q", code, out2, errOut)
	}
}

func TestValidateUnreadable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "absent.toml")
	code, out, errOut := validateRun("-c", p)
	if code != exitError || out != "" || !strings.Contains(errOut, p) || !strings.Contains(errOut, "no such file") {
		t.Errorf("exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	if code, _, _ := validateRun("--bogus"); code != exitError {
		t.Errorf("unknown flag: exit %d, want %d", code, exitError)
	}
}
