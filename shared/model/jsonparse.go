package model

import (
	"encoding/json"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// parser decodes a config file into the values encoding/json gives with UseNumber
// (map[string]any, []any, string, json.Number, bool, nil), in one pass over the bytes and with
// far fewer allocations: maps and slices are made at their final size, object keys are interned
// (the same few dozen keys recur in every file), string values and numbers share the file's
// bytes, or one copy of them when they are not the caller's own (so a parsed file is freed as a
// whole), and there is no reflection. It accepts exactly the documents encoding/json accepts as
// a JSON object; on anything else it gives up, and decodeObject asks encoding/json, whose
// diagnostics (line, column, message) are the ones reported. A parser is not safe for
// concurrent use: each worker has its own.
type parser struct {
	data []byte
	src  string // data as one string: values without escapes are slices of it
	// owned is set when nothing else holds or changes data (a file just read): src is then
	// data itself, not a copy
	owned bool
	nulls bool // a null was parsed (anywhere: in an array too)
	dups  bool // an object named a member twice (decode refuses the document)
	lone  bool // a \u escape named half a surrogate pair (decode refuses the document)
	pos   int
	depth int
	keys  map[string]string // interned object keys
	// recent keys, by a cheap hash of their length and ends: most lookups stop here, before
	// hashing the key for the map
	recent [512]string
	stack  []any    // values of the arrays and objects being parsed
	names  []string // keys of the objects being parsed
}

// maxInternedKeys bounds the interned keys of one parser (files with unique keys do not grow
// it without limit).
const maxInternedKeys = 1 << 14

// maxParseDepth is where the fast path hands over to encoding/json (whose own limit is 10,000).
const maxParseDepth = 1000

func newParser() *parser { return &parser{keys: make(map[string]string, 256)} }

// object parses data as one JSON object and nothing else (whitespace aside); ok is false when
// data is anything else or is not valid JSON.
func (p *parser) object(data []byte) (obj map[string]any, ok bool) {
	p.data, p.src, p.pos, p.depth, p.nulls, p.dups, p.lone = data, "", 0, 0, false, false, false
	p.stack, p.names = p.stack[:0], p.names[:0]
	defer func() { p.data, p.src = nil, "" }()
	p.space()
	if p.pos >= len(p.data) || p.data[p.pos] != '{' {
		return nil, false
	}
	v, ok := p.value()
	if !ok {
		return nil, false
	}
	p.space()
	if p.pos != len(p.data) {
		return nil, false
	}
	return v.(map[string]any), true
}

func (p *parser) space() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value() (any, bool) {
	if p.pos >= len(p.data) {
		return nil, false
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.objectValue()
	case c == '[':
		return p.array()
	case c == '"':
		s, ok := p.str(false)
		return s, ok
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		p.nulls = true
		return nil, p.literal("null")
	}
	return nil, false
}

func (p *parser) literal(word string) bool {
	if len(p.data)-p.pos < len(word) || string(p.data[p.pos:p.pos+len(word)]) != word {
		return false
	}
	p.pos += len(word)
	return true
}

func (p *parser) objectValue() (any, bool) {
	if p.depth++; p.depth > maxParseDepth {
		return nil, false
	}
	p.pos++ // '{'
	base := len(p.stack)
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		p.depth--
		return map[string]any{}, true
	}
	for {
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, false
		}
		k, ok := p.str(true)
		if !ok {
			return nil, false
		}
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, false
		}
		p.pos++
		p.space()
		v, ok := p.value()
		if !ok {
			return nil, false
		}
		p.names = append(p.names, k)
		p.stack = append(p.stack, v)
		p.space()
		if p.pos >= len(p.data) {
			return nil, false
		}
		c := p.data[p.pos]
		p.pos++
		if c == '}' {
			break
		}
		if c != ',' {
			return nil, false
		}
		p.space()
	}
	m := make(map[string]any, len(p.stack)-base)
	for i := base; i < len(p.stack); i++ {
		m[p.names[i]] = p.stack[i]
	}
	if len(m) != len(p.stack)-base {
		p.dups = true // a repeated name: decode reports it (strictJSON)
	}
	clear(p.stack[base:]) // no stale references from the scratch space
	p.stack, p.names = p.stack[:base], p.names[:base]
	p.depth--
	return m, true
}

// The names and values of an object share one index, so names holds a placeholder for the
// elements of arrays being parsed under it: both stacks grow together.
func (p *parser) array() (any, bool) {
	if p.depth++; p.depth > maxParseDepth {
		return nil, false
	}
	p.pos++ // '['
	base := len(p.stack)
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		p.depth--
		return []any{}, true
	}
	for {
		v, ok := p.value()
		if !ok {
			return nil, false
		}
		p.stack = append(p.stack, v)
		p.names = append(p.names, "")
		p.space()
		if p.pos >= len(p.data) {
			return nil, false
		}
		c := p.data[p.pos]
		p.pos++
		if c == ']' {
			break
		}
		if c != ',' {
			return nil, false
		}
		p.space()
	}
	a := make([]any, len(p.stack)-base)
	copy(a, p.stack[base:])
	clear(p.stack[base:])
	p.stack, p.names = p.stack[:base], p.names[:base]
	p.depth--
	return a, true
}

// str parses a string; an object key is interned. It returns a string, not an any: a key boxed
// in an interface would cost an allocation each time (a fifth of a build's allocations).
func (p *parser) str(key bool) (string, bool) {
	start := p.pos
	p.pos++ // '"'
	escaped := false
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			raw := p.data[start+1 : p.pos]
			p.pos++
			if escaped {
				s, ok, lone := unescape(raw)
				p.lone = p.lone || lone // decode reports it (strictJSON)
				return s, ok
			}
			if key && len(raw) > 0 {
				return p.intern(raw), true
			}
			return p.slice(start+1, p.pos-1), true
		case c == '\\':
			escaped = true
			p.pos += 2 // the escaped character; a \u's digits are checked by encoding/json
		case c < 0x20:
			return "", false
		default:
			p.pos++ // UTF-8 was checked for the whole file before parsing
		}
	}
	return "", false
}

func (p *parser) intern(b []byte) string {
	slot := &p.recent[(len(b)*31+int(b[0])*7+int(b[len(b)-1]))%len(p.recent)]
	if *slot == string(b) {
		return *slot
	}
	s, ok := p.keys[string(b)]
	if !ok {
		s = string(b)
		if len(p.keys) < maxInternedKeys {
			p.keys[s] = s
		}
	}
	*slot = s
	return s
}

// number parses a JSON number into a json.Number holding its text.
func (p *parser) number() (any, bool) {
	n := numberLen(p.data[p.pos:])
	if n == 0 {
		return nil, false
	}
	p.pos += n
	return json.Number(p.slice(p.pos-n, p.pos)), true
}

// slice is data[from:to] as a string: a slice of one copy of data, made on first use, or of
// data itself when the parser owns it.
func (p *parser) slice(from, to int) string {
	if p.src == "" {
		if p.owned {
			p.src = unsafe.String(unsafe.SliceData(p.data), len(p.data))
		} else {
			p.src = string(p.data)
		}
	}
	return p.src[from:to]
}

// numberLen is the length of the JSON number (RFC 8259 grammar, as encoding/json checks it) at
// the start of s, 0 when there is none.
func numberLen[T []byte | string](s T) int {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = digitsEnd(s, i)
	default:
		return 0
	}
	if i < len(s) && s[i] == '.' {
		if j := digitsEnd(s, i+1); j > i+1 {
			i = j
		} else {
			return 0
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := digitsEnd(s, i)
		if j == i {
			return 0
		}
		i = j
	}
	return i
}

// digitsEnd is the index after the decimal digits of s starting at i.
func digitsEnd[T []byte | string](s T, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// unescape is the string whose JSON text (quotes excluded) is raw, as encoding/json decodes it:
// the two-character escapes, \uXXXX with UTF-16 surrogate pairs, and U+FFFD for a lone
// surrogate (lone is then set). ok is false for an escape JSON does not have.
func unescape(raw []byte) (s string, ok, lone bool) {
	b := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			b = append(b, c)
			continue
		}
		i++
		if i >= len(raw) {
			return "", false, false
		}
		switch raw[i] {
		case '"', '\\', '/':
			b = append(b, raw[i])
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r := hex4(raw[i+1:])
			if r < 0 {
				return "", false, false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				// a valid pair is consumed whole; otherwise U+FFFD, and what follows is read
				// on its own
				if len(raw) > i+2 && raw[i+1] == '\\' && raw[i+2] == 'u' {
					if r2 := hex4(raw[i+3:]); r2 >= 0 {
						if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
							b = utf8.AppendRune(b, dec)
							i += 6
							continue
						}
					}
				}
				r, lone = unicode.ReplacementChar, true
			}
			b = utf8.AppendRune(b, r)
		default:
			return "", false, false
		}
	}
	return string(b), true, lone
}

// hex4 is the value of the 4 hexadecimal digits at the start of b, or -1.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// decode is decodeObject with the fast path: the parser first, encoding/json (and its
// diagnostic) when the parser does not accept the file. owned says that data is the caller's
// own (read for this call, never to be changed): the decoded strings then share its memory
// instead of a copy of it (a file's bytes are 6 % of what a build allocates). nulls says the
// document may hold a null: false only when the parser saw none (encoding/json's are unknown).
func (p *parser) decode(file string, data []byte, owned bool) (obj map[string]any, nulls bool, d *Diagnostic) {
	if d := checkUTF8(file, data); d != nil {
		return nil, false, d
	}
	p.owned = owned
	obj, ok := p.object(data)
	p.owned = false
	if ok && !p.dups && !p.lone {
		return obj, p.nulls, nil
	}
	if !ok {
		if obj, d = decodeObject(file, data); d != nil {
			return nil, false, d
		}
	}
	if d := strictJSON(file, data); d != nil {
		return nil, false, d
	}
	return obj, true, nil
}
