package safetext

import "testing"

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"250 2.1.0 Sender OK":          "250 2.1.0 Sender OK",
		"tab\tkept":                    "tab\tkept",
		"452 \x1b]0;pwned\x07 x":       `452 \x1b]0;pwned\x07 x`,
		"250 \u202eKO nepo":            `250 \u202eKO nepo`,
		"bad \xff byte":                `bad \xff byte`,
		"221 bye\r\nDATA":              `221 bye\x0d\x0aDATA`,
		"220 mail.example.org ESMTP é": "220 mail.example.org ESMTP é",
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}
