package config

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// decoder turns the generic TOML tree into a Config, collecting every
// problem with its line.
type decoder struct {
	file  string
	lines map[string]int
	errs  ErrorList
}

// line returns the line of path, or of its nearest enclosing key.
func (d *decoder) line(path string) int {
	for path != "" {
		if l, ok := d.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// add records a problem at path.
func (d *decoder) add(path, msg string) {
	d.errs = append(d.errs, FieldError{File: d.file, Line: d.line(path), Field: path, Msg: msg})
}

// table is one TOML table being decoded.
type table struct {
	d *decoder
	// path locates the table: "lb", "vip[1]", "vip[1].backends[0]".
	path string
	// prefix starts every message about the table: "[lb] ", `vip "mx": `.
	prefix string
	// keys is put before key names in messages: "" or "health.".
	keys string
	m    map[string]any
	// invalid is set when the table's key holds another type (reported
	// once by sub): the table is then empty, and a missing required key is
	// not worth a second message.
	invalid bool
}

// keyPath returns the path of key in t.
func (t *table) keyPath(key string) string { return join(t.path, key) }

// errorf records a problem about key ("" for the table itself).
func (t *table) errorf(key, format string, args ...any) {
	t.d.add(t.keyPath(key), t.prefix+fmt.Sprintf(format, args...))
}

// bad records a problem with the value of key: "<prefix><key> <msg>".
func (t *table) bad(key, format string, args ...any) {
	t.errorf(key, "%s%s %s", t.keys, key, fmt.Sprintf(format, args...))
}

// has reports whether key is set in t.
func (t *table) has(key string) bool {
	_, ok := t.m[key]
	return ok
}

// known reports every key of t that is not in allowed, in line order, with
// the nearest allowed key when it looks like a typo.
func (t *table) known(allowed ...string) {
	var unknown []string
	for k := range t.m {
		if !contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	sort.Slice(unknown, func(i, j int) bool {
		li, lj := t.d.line(t.keyPath(unknown[i])), t.d.line(t.keyPath(unknown[j]))
		return li < lj || li == lj && unknown[i] < unknown[j]
	})
	for _, k := range unknown {
		hint := ""
		if n := nearest(k, allowed); n != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", t.keys+n)
		} else {
			hint = fmt.Sprintf(" (known: %s)", strings.Join(allowed, ", "))
		}
		t.errorf(k, "unknown key %q%s", t.keys+k, hint)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// kind names the TOML type of a decoded value for messages.
func kind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	}
	return "a date/time"
}

// get returns key's value when it is set and of type T, reporting a value of
// another type as an error; want names T in that message.
func get[T any](t *table, key, want string) (T, bool) {
	var zero T
	raw, ok := t.m[key]
	if !ok {
		return zero, false
	}
	v, ok := raw.(T)
	if !ok {
		t.bad(key, "must be %s, not %s", want, kind(raw))
		return zero, false
	}
	return v, true
}

// str decodes a string key into dst; it reports whether dst was set.
func (t *table) str(key string, dst *string) bool {
	v, ok := get[string](t, key, "a string")
	if ok {
		*dst = v
	}
	return ok
}

// checked decodes a string key into dst when check accepts it.
func (t *table) checked(key string, dst *string, check func(string) error) bool {
	var v string
	if !t.str(key, &v) {
		return false
	}
	if err := check(v); err != nil {
		t.bad(key, "%q %v", v, err)
		return false
	}
	*dst = v
	return true
}

// boolean decodes a boolean key into dst.
func (t *table) boolean(key string, dst *bool) {
	if v, ok := get[bool](t, key, "true or false"); ok {
		*dst = v
	}
}

// integer returns an integer key when it is set and within lo..hi.
func (t *table) integer(key string, lo, hi int64) (int64, bool) {
	v, ok := get[int64](t, key, "an integer")
	if !ok {
		return 0, false
	}
	if v < lo || v > hi {
		t.bad(key, "%d is out of range %d..%d", v, lo, hi)
		return 0, false
	}
	return v, true
}

// uint32Key decodes an integer key within lo..hi into dst.
func (t *table) uint32Key(key string, dst *uint32, lo, hi int64) bool {
	v, ok := t.integer(key, lo, hi)
	if ok {
		*dst = uint32(v)
	}
	return ok
}

// duration decodes a Go duration string ("5s") key into dst; it must be
// positive.
func (t *table) duration(key string, dst *time.Duration) {
	var s string
	if !t.str(key, &s) {
		return
	}
	v, err := time.ParseDuration(s)
	switch {
	case err != nil:
		t.bad(key, "%q is not a duration like \"5s\" or \"500ms\"", s)
	case v <= 0:
		t.bad(key, "%q must be longer than zero", s)
	default:
		*dst = v
	}
}

// enum decodes a string key that must be one of allowed.
func enum[T ~string](t *table, key string, dst *T, allowed ...T) {
	var s string
	if !t.str(key, &s) {
		return
	}
	for _, a := range allowed {
		if string(a) == s {
			*dst = a
			return
		}
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	t.bad(key, "%q is not one of %s", s, strings.Join(names, ", "))
}

// sub returns the table under key, or an empty one when key is absent or
// not a table (which is reported, and marks the empty table invalid).
func (t *table) sub(key, prefix, keys string) *table {
	m, ok := get[map[string]any](t, key, "a table")
	return &table{d: t.d, path: t.keyPath(key), prefix: prefix, keys: keys, m: m, invalid: t.has(key) && !ok}
}

// list returns the tables of an array of tables or of an array of inline
// tables under key; elements that are not tables are reported and skipped
// (their slot is nil).
func (t *table) list(key, how string) []*table {
	raw, ok := t.m[key]
	if !ok {
		return nil
	}
	var elems []any
	switch v := raw.(type) {
	case []map[string]any:
		for _, m := range v {
			elems = append(elems, m)
		}
	case []any:
		elems = v
	default:
		t.bad(key, "must be %s, not %s", how, kind(raw))
		return nil
	}
	out := make([]*table, len(elems))
	for i, e := range elems {
		path := fmt.Sprintf("%s[%d]", t.keyPath(key), i)
		m, ok := e.(map[string]any)
		if !ok {
			t.d.add(path, fmt.Sprintf("%s%s%s[%d] must be a table, not %s", t.prefix, t.keys, key, i, kind(e)))
			continue
		}
		out[i] = &table{d: t.d, path: path, m: m}
	}
	return out
}

// name decodes the required "name" key of a backend or VIP and, when it is
// valid, makes the messages of t say `<base>kind "name": `.
func (t *table) name(base, kind string) string {
	var name string
	if !t.has("name") {
		t.errorf("", "name is required")
		return ""
	}
	if !t.checked("name", &name, checkName) {
		return ""
	}
	t.prefix = fmt.Sprintf("%s%s %q: ", base, kind, name)
	return name
}
