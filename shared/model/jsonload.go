package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/usekarma/karma/shared/params"
)

// decodeObject parses data as one JSON object, keeping numbers exact (json.Number) so that hashes
// and published values never drift through float64. On failure it returns a Diagnostic with the
// line and column of the problem. JSON is UTF-8 (RFC 8259): invalid UTF-8 is refused, where
// encoding/json would silently turn it into U+FFFD.
func decodeObject(file string, data []byte) (map[string]any, *Diagnostic) {
	if d := checkUTF8(file, data); d != nil {
		return nil, d
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, jsonDiag(file, data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		off := dec.InputOffset()
		line, col := lineCol(data, off)
		return nil, &Diagnostic{Severity: SevError, Code: CodeInvalidJSON, File: file, Line: line, Column: col,
			Message: "unexpected data after the JSON value"}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, &Diagnostic{Severity: SevError, Code: CodeNotObject, File: file, Line: 1, Column: 1,
			Message: fmt.Sprintf("expected a JSON object, found %s", jsonKind(v))}
	}
	return obj, nil
}

// strictJSON returns a Diagnostic naming — by line, column and JSON pointer — the first place
// where data (valid JSON to encoding/json) says what readers make different things of, or nil:
//
//   - a member repeating a name of its object: RFC 8259 leaves its meaning to the reader
//     (encoding/json takes the last value, others the first, people reading the file or its diff
//     may see either), so a file Karma deploys from names each member once, as I-JSON (RFC 7493)
//     asks and as Karma asks of what it is sent (api.FirstDuplicateName);
//   - a \u escape of half a UTF-16 surrogate pair, which is no character: encoding/json puts
//     U+FFFD in its place, so "\ud800" and "\udfff" would be published, deployed and hashed as
//     one string, and neither as written — as an invalid UTF-8 byte would (checkUTF8).
func strictJSON(file string, data []byte) *Diagnostic {
	err := jsontext.NewDecoder(bytes.NewReader(data)).SkipValue()
	var syn *jsontext.SyntacticError
	if err == nil || !errors.As(err, &syn) {
		return nil
	}
	msg := syn.Err.Error()
	switch {
	case errors.Is(err, jsontext.ErrDuplicateName):
		msg = "an object names this member twice: which value counts is up to the reader, so name each member once"
	case strings.Contains(msg, "surrogate"):
		msg = "a \\u escape here is half a UTF-16 surrogate pair, which is no character (it would be replaced by U+FFFD): write the character, or both halves of the pair"
	}
	line, col := lineCol(data, syn.ByteOffset+1)
	return &Diagnostic{Severity: SevError, Code: CodeInvalidJSON, File: file, Line: line, Column: col, Pointer: string(syn.JSONPointer), Message: msg}
}

// checkUTF8 returns nil when data is valid UTF-8, else a Diagnostic naming the file, the byte
// offset (0-based), line and column of the first invalid byte.
func checkUTF8(file string, data []byte) *Diagnostic {
	off := params.FirstInvalidUTF8(data)
	if off < 0 {
		return nil
	}
	line, col := lineCol(data, int64(off)+1)
	return &Diagnostic{Severity: SevError, Code: CodeInvalidJSON, File: file, Line: line, Column: col,
		Message: fmt.Sprintf("invalid UTF-8 at byte offset %d (byte 0x%02x): save the file as UTF-8", off, data[off])}
}

func jsonDiag(file string, data []byte, err error) *Diagnostic {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	msg := err.Error()
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	case errors.Is(err, io.EOF):
		msg = "empty file: expected a JSON object"
		off = 0
	case errors.Is(err, io.ErrUnexpectedEOF):
		msg = "unexpected end of file: unterminated JSON value"
		off = int64(len(data))
	}
	d := &Diagnostic{Severity: SevError, Code: CodeInvalidJSON, File: file, Message: msg}
	if off >= 0 {
		d.Line, d.Column = lineCol(data, off)
	}
	return d
}

// lineCol converts a byte offset to a 1-based line and column. encoding/json reports the offset
// just after the offending byte, so the column names that byte.
func lineCol(data []byte, off int64) (int, int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line, col := 1, 0
	for _, c := range data[:off] {
		if c == '\n' {
			line++
			col = 0
			continue
		}
		col++
	}
	if col == 0 {
		col = 1
	}
	return line, col
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// ParseConfig decodes a config read from elsewhere than the repository (a /config parameter's
// value) as a config file is decoded: one JSON object, UTF-8, each member named once, numbers
// exact. name names it in the diagnostic.
func ParseConfig(name string, data []byte) (map[string]any, *Diagnostic) {
	obj, _, d := newParser().decode(name, data, false)
	return obj, d
}
