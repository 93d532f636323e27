package model

import (
	"strings"
	"testing"
)

func TestDecodeObjectErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, data       string
		code             string
		line, col        int
		messageSubstring string
	}{
		{"placeholder token", "{\n  \"a\": <<x>>\n}", CodeInvalidJSON, 2, 8, "invalid character '<'"},
		{"truncated", "{\n  \"a\": 1,\n", CodeInvalidJSON, 3, 1, "unexpected end"},
		{"empty", "", CodeInvalidJSON, 1, 1, "empty file"},
		{"array", "[1,2]", CodeNotObject, 1, 1, "found an array"},
		{"trailing data", "{}\n{}", CodeInvalidJSON, 2, 1, "after the JSON value"},
		{"trailing comma", "{\"a\": 1,}", CodeInvalidJSON, 1, 9, "invalid character '}'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, d := decodeObject("f.json", []byte(c.data))
			if d == nil {
				t.Fatal("no diagnostic")
			}
			if d.Code != c.code || d.Line != c.line || d.Column != c.col || !strings.Contains(d.Message, c.messageSubstring) {
				t.Errorf("got %s (line %d col %d), want code %s at %d:%d containing %q", d, d.Line, d.Column, c.code, c.line, c.col, c.messageSubstring)
			}
			if d.File != "f.json" {
				t.Errorf("file = %q", d.File)
			}
		})
	}
}

func TestDecodeObjectKeepsNumbersExact(t *testing.T) {
	t.Parallel()
	obj, d := decodeObject("f.json", []byte(`{"big": 123456789012345678901234567890, "f": 1.10}`))
	if d != nil {
		t.Fatal(d)
	}
	b, _ := Canonical(obj)
	if string(b) != `{"big":123456789012345678901234567890,"f":1.10}` {
		t.Errorf("canonical form lost precision: %s", b)
	}
}
