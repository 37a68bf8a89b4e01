package config

import (
	"fmt"
	"sort"
	"strings"
)

// FieldError is one problem in a config file, at a line.
type FieldError struct {
	// File is the name the config was read under.
	File string
	// Line is the 1-based line at fault; 0 when the problem has no line
	// (a required key that is missing with its whole table).
	Line int
	// Field is the path of the key at fault, with array indices, for
	// example "vip[0].backends[2].name"; "" for syntax errors.
	Field string
	// Msg says what is wrong, without the file and line.
	Msg string
}

// Error returns "file:line: msg".
func (e FieldError) Error() string { return location(e.File, e.Line) + ": " + e.Msg }

// ErrorList is every problem found in one config file, in line order.
type ErrorList []FieldError

// Error returns the problems one per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sortByLine orders l by line, keeping the order of problems on one line.
func (l ErrorList) sortByLine() {
	sort.SliceStable(l, func(i, j int) bool { return l[i].Line < l[j].Line })
}

// Warning is a config that is valid but probably not what the operator
// wants (see Lint).
type Warning struct {
	File string
	Line int
	Msg  string
}

// String returns "file:line: warning: msg".
func (w Warning) String() string { return location(w.File, w.Line) + ": warning: " + w.Msg }

// location formats "file:line", or just "file" when the line is unknown.
func location(file string, line int) string {
	if file == "" {
		file = "lb.toml"
	}
	if line <= 0 {
		return file
	}
	return fmt.Sprintf("%s:%d", file, line)
}
