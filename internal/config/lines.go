package config

import (
	"strconv"
	"strings"
)

// keyLines returns the line on which every key, table header and array
// element of a TOML document is written, by path: "lb" (the [lb] header),
// "lb.interface", "vip" (the first [[vip]] header: where the array itself
// is), "vip[1]" (the second [[vip]] header), "vip[1].health",
// "vip[1].ports[0]", "vip[1].backends[2].name".
//
// BurntSushi/toml v1.6.0 records the position of every key while parsing,
// but keeps it private: its MetaData exposes only the keys in document order
// (MetaData.Keys) and a key's position only inside a decode error, and in
// both cases without array indices, so the keys of the second [[backend]]
// cannot be told from those of the first. keyLines therefore rescans the
// document. It runs only on input the toml package has already accepted, so
// it may assume well-formed TOML; on malformed input it returns what it has
// found so far and never panics.
func keyLines(src string) map[string]int {
	s := &lineScanner{src: src, line: 1, lines: map[string]int{}, aot: map[string]int{}}
	s.document()
	return s.lines
}

// lineScanner is the state of keyLines.
type lineScanner struct {
	src   string
	pos   int
	line  int
	lines map[string]int
	// aot counts the [[headers]] seen so far per path, so a header or a
	// key under an array of tables resolves to its latest element.
	aot map[string]int
}

func (s *lineScanner) eof() bool { return s.pos >= len(s.src) }

func (s *lineScanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.pos]
}

func (s *lineScanner) advance() {
	if s.src[s.pos] == '\n' {
		s.line++
	}
	s.pos++
}

// record notes the line of path, keeping the first one seen.
func (s *lineScanner) record(path string, line int) {
	if _, ok := s.lines[path]; !ok {
		s.lines[path] = line
	}
}

// skip passes blanks, and also newlines and comments when multiline is set.
func (s *lineScanner) skip(multiline bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.advance()
		case multiline && c == '\n':
			s.advance()
		case multiline && c == '#':
			for !s.eof() && s.peek() != '\n' {
				s.advance()
			}
		default:
			return
		}
	}
}

// document scans the top level: headers and key/value lines.
func (s *lineScanner) document() {
	table := ""
	for {
		s.skip(true)
		if s.eof() {
			return
		}
		start := s.pos
		line := s.line
		if s.peek() == '[' {
			s.advance()
			array := s.peek() == '['
			if array {
				s.advance()
			}
			table = s.resolve(s.keyPath(), array)
			if array { // the array itself is where its first [[header]] is
				s.record(table[:strings.LastIndexByte(table, '[')], line)
			}
			s.record(table, line)
			for !s.eof() && s.peek() != '\n' && s.peek() != '#' {
				s.advance() // the closing brackets
			}
			continue
		}
		s.keyValue(table)
		if s.pos == start { // not TOML: give up rather than loop
			return
		}
	}
}

// resolve turns the segments of a header into a path with indices: every
// segment naming an array of tables stands for its latest element. A new
// [[header]] (array set) adds an element.
func (s *lineScanner) resolve(segs []string, array bool) string {
	path := ""
	for i, seg := range segs {
		path = join(path, seg)
		if array && i == len(segs)-1 {
			n := s.aot[path]
			s.aot[path] = n + 1
			return path + "[" + strconv.Itoa(n) + "]"
		}
		if n := s.aot[path]; n > 0 {
			path += "[" + strconv.Itoa(n-1) + "]"
		}
	}
	return path
}

// keyValue scans `a.b = value` under table.
func (s *lineScanner) keyValue(table string) {
	line := s.line
	path := table
	for _, seg := range s.keyPath() {
		path = join(path, seg)
		s.record(path, line)
	}
	s.skip(false)
	if s.peek() != '=' {
		return
	}
	s.advance()
	s.skip(false)
	s.value(path)
}

// keyPath scans a dotted key and returns its segments.
func (s *lineScanner) keyPath() []string {
	var segs []string
	for {
		s.skip(false)
		segs = append(segs, s.keySegment())
		s.skip(false)
		if s.peek() != '.' {
			return segs
		}
		s.advance()
	}
}

// keySegment scans one bare or quoted key.
func (s *lineScanner) keySegment() string {
	switch s.peek() {
	case '"', '\'':
		start := s.pos
		s.str()
		raw := s.src[start:s.pos]
		if raw[0] == '\'' {
			return strings.Trim(raw, "'")
		}
		if u, err := strconv.Unquote(raw); err == nil {
			return u
		}
		return strings.Trim(raw, `"`)
	}
	start := s.pos
	for !s.eof() && isBareKeyByte(s.peek()) {
		s.advance()
	}
	return s.src[start:s.pos]
}

func isBareKeyByte(c byte) bool {
	return isAlnum(c) || c == '_' || c == '-'
}

// value scans one value at path, recording the keys of inline tables and
// the elements of arrays.
func (s *lineScanner) value(path string) {
	switch s.peek() {
	case '"', '\'':
		s.str()
	case '[':
		s.sequence(']', func(i int) {
			elem := path + "[" + strconv.Itoa(i) + "]"
			s.record(elem, s.line)
			s.value(elem)
		})
	case '{':
		s.sequence('}', func(int) { s.keyValue(path) })
	default: // number, boolean, date
		for !s.eof() && !strings.ContainsRune(",]}#\n", rune(s.peek())) {
			s.advance()
		}
	}
}

// sequence scans the items of an array or inline table up to end, calling
// item for the i-th one.
func (s *lineScanner) sequence(end byte, item func(i int)) {
	s.advance()
	for i := 0; ; i++ {
		s.skip(true)
		if s.eof() || s.peek() == end {
			break
		}
		before := s.pos
		item(i)
		s.skip(true)
		if s.peek() == ',' {
			s.advance()
		} else if s.pos == before { // not TOML: give up rather than loop
			return
		}
	}
	if !s.eof() {
		s.advance()
	}
}

// str scans a basic, literal or multi-line string.
func (s *lineScanner) str() {
	q := s.peek()
	multi := strings.HasPrefix(s.src[s.pos:], strings.Repeat(string(q), 3))
	if multi {
		s.pos += 3
	} else {
		s.advance()
	}
	for !s.eof() {
		c := s.peek()
		switch {
		case c == '\\' && q == '"':
			s.advance()
			if !s.eof() {
				s.advance()
			}
		case c == q && !multi:
			s.advance()
			return
		case c == q && strings.HasPrefix(s.src[s.pos:], strings.Repeat(string(q), 3)):
			s.pos += 3
			for i := 0; i < 2 && s.peek() == q; i++ { // up to two quotes may end the content
				s.advance()
			}
			return
		case c == '\n' && !multi:
			return
		default:
			s.advance()
		}
	}
}

// join appends a key to a path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
