package model

import (
	"encoding/json"
	"slices"
	"sync"
	"unicode/utf8"
)

// canonicalJSON is json.Marshal(v) for the values decoded configs are made of (map[string]any,
// []any, string, json.Number, bool, nil) written directly, without reflection: object keys
// sorted, strings escaped as encoding/json escapes them (HTML characters, U+2028 and U+2029
// included), numbers as their text. Any other value, or a number that is not valid JSON, is
// left to json.Marshal, whose output (or error) it then is. The result has no spare capacity.
func canonicalJSON(v any) []byte {
	e := encoders.Get().(*encoder)
	defer encoders.Put(e)
	e.buf, e.keys = e.buf[:0], e.keys[:0]
	if e.value(v) {
		return append(make([]byte, 0, len(e.buf)), e.buf...)
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Values come from decoded JSON, so this cannot happen; fail loudly if it ever does.
		panic("model: canonical encoding: " + err.Error())
	}
	return b
}

var encoders = sync.Pool{New: func() any { return &encoder{} }}

type encoder struct {
	buf  []byte
	keys []string // keys of the objects being written, a stack
}

func (e *encoder) value(v any) bool {
	switch x := v.(type) {
	case nil:
		e.buf = append(e.buf, "null"...)
	case bool:
		if x {
			e.buf = append(e.buf, "true"...)
		} else {
			e.buf = append(e.buf, "false"...)
		}
	case string:
		e.buf = appendJSONString(e.buf, x)
	case json.Number:
		if !validNumber(string(x)) {
			return false
		}
		e.buf = append(e.buf, x...)
	case []any:
		if x == nil {
			e.buf = append(e.buf, "null"...)
			return true
		}
		e.buf = append(e.buf, '[')
		for i, el := range x {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			if !e.value(el) {
				return false
			}
		}
		e.buf = append(e.buf, ']')
	case map[string]any:
		if x == nil {
			e.buf = append(e.buf, "null"...)
			return true
		}
		base := len(e.keys)
		for k := range x {
			e.keys = append(e.keys, k)
		}
		keys := e.keys[base:]
		slices.Sort(keys)
		e.buf = append(e.buf, '{')
		for i, k := range keys {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.buf = appendJSONString(e.buf, k)
			e.buf = append(e.buf, ':')
			if !e.value(x[k]) {
				return false
			}
		}
		e.buf = append(e.buf, '}')
		clear(e.keys[base:])
		e.keys = e.keys[:base]
	default:
		return false
	}
	return true
}

const hexDigits = "0123456789abcdef"

// appendJSONString is encoding/json's string encoding with HTML escaping (json.Marshal's).
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// validNumber reports whether s is exactly one JSON number.
func validNumber(s string) bool { return len(s) > 0 && numberLen(s) == len(s) }
