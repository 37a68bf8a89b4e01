package loopback

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsrlb/dsrlb/internal/config"
)

// psParse runs the tree-sitter PowerShell parser (testdata/psparse) on files
// and returns its report and whether every file parsed clean. It fails the
// test, never skips it, when node or the parser's modules are missing.
func psParse(t *testing.T, files ...string) (string, bool) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "psparse"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"web-tree-sitter", "tree-sitter-powershell"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", m)); err != nil {
			t.Fatalf("the PowerShell parser's modules are missing (%v): run `make test-deps` (npm ci --ignore-scripts --prefix internal/loopback/testdata/psparse)", err)
		}
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed (%v): install Node.js, then run `make test-deps`", err)
	}
	out, err := exec.Command(node, append([]string{filepath.Join(dir, "psparse.js")}, files...)...).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), true
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		return string(out), false
	default:
		t.Fatalf("psparse did not run: %v\n%s", err, out)
		return "", false
	}
}

// TestPowerShellParses parses every generated PowerShell variant with the real
// PowerShell grammar.
func TestPowerShellParses(t *testing.T) {
	tmp := t.TempDir()
	var files []string
	for _, c := range scriptCases() {
		if c.os != config.OSWindows {
			continue
		}
		f := filepath.Join(tmp, strings.TrimSuffix(c.golden, ".golden"))
		if err := os.WriteFile(f, []byte(generate(t, c)), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		t.Fatal("no PowerShell variants to parse")
	}
	if out, ok := psParse(t, files...); !ok {
		t.Fatalf("generated PowerShell does not parse:\n%s", out)
	}
}

// TestPowerShellParserRejects proves the parse check can fail: a small script
// with an unclosed "(" and a generated script with one brace removed.
func TestPowerShellParserRejects(t *testing.T) {
	tmp := t.TempDir()
	small := filepath.Join(tmp, "unclosed.ps1")
	if err := os.WriteFile(small, []byte("param()\n$x = Get-Item -Path (Join-Path $env:windir 'inf'\nWrite-Host 'after'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, ok := psParse(t, small)
	if ok {
		t.Fatalf("a script with an unclosed ( parsed clean:\n%s", out)
	}
	if !strings.Contains(out, "unclosed.ps1:2:") {
		t.Errorf("the report does not point at line 2:\n%s", out)
	}

	script := generate(t, scriptCases()[0])
	const good = "if ($Failures -gt 0) {"
	if !strings.Contains(script, good) {
		t.Fatalf("generated script lacks %q", good)
	}
	broken := filepath.Join(tmp, "broken.ps1")
	if err := os.WriteFile(broken, []byte(strings.Replace(script, good, "if ($Failures -gt 0", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, ok := psParse(t, broken); ok {
		t.Fatalf("a generated script with a broken if parsed clean:\n%s", out)
	}
}
