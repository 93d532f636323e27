package model

import (
	"bytes"
	"encoding/json"
	"testing"
)

// canonicalCases are values Canonical must encode exactly as json.Marshal does.
var canonicalCases = []any{
	nil, true, false, "", json.Number("1.10"), json.Number("-0"), json.Number("1e+300"),
	"plain", "<a href=\"x\">&amp;</a>", "\u2028\u2029", "tab\there\nnew\r\b\f\x00\x01\x1f\x7f", `back\slash "quoted"`,
	"café ☕ 😀", "\xff\xfe bad utf-8 \xc3", "\ufffd",
	[]any{}, []any(nil), map[string]any{}, map[string]any(nil),
	map[string]any{"b": 1.5, "a": []any{json.Number("2"), nil, map[string]any{"z": "<", "y": []any{}}}},
	map[string]any{"Z": 1, "a": 2, "_": 3, "é": 4, "<": 5, "": 6, "aa": 7, "a\u2028": 8},
	map[string]any{"s": map[string]string{"k": "v"}}, // not a decoded value: json.Marshal writes it
	map[string]string{"b": "2", "a": "1"},
	[]any{float64(1.5), int64(3), json.Number("")}, // likewise; the empty number is 0 there
}

func TestCanonicalMatchesJSONMarshal(t *testing.T) {
	for _, v := range canonicalCases {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := Canonical(v); !bytes.Equal(got, want) {
			t.Errorf("%#v:\n got %s\nwant %s", v, got, want)
		}
	}
	for _, doc := range parseCases {
		v, d := decodeObject("f.json", []byte(doc))
		if d != nil {
			continue
		}
		want, _ := json.Marshal(v)
		if got, _ := Canonical(v); !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", doc, got, want)
		}
	}
}

func TestCanonicalRefusesWhatJSONMarshalRefuses(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("an invalid json.Number was encoded")
		}
	}()
	Canonical(map[string]any{"n": json.Number("12abc")})
}

func FuzzCanonicalMatchesJSONMarshal(f *testing.F) {
	for _, doc := range parseCases {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		v, d := decodeObject("f.json", []byte(doc))
		if d != nil {
			return
		}
		want, _ := json.Marshal(v)
		if got, _ := Canonical(v); !bytes.Equal(got, want) {
			t.Errorf("%q:\n got %s\nwant %s", doc, got, want)
		}
	})
}

// The walk that extracts a component's references also writes its canonical JSON: it must be
// Canonical's, less the karma block, for any config.
func TestWalkEncodesCanonically(t *testing.T) {
	docs := append([]string{
		`{"karma":{"depends_on":["vpc/a"]},"vpc_nickname":"a","x":{"karma":1,"y":[1,{"z":"${vpc/a.runtime.id}"}]}}`,
		`{"a~b/c":{"src_type":"vpc","src_nickname":"b"},"karma":null,"n":-1.5e3,"s":"<&>\u2028"}`,
	}, parseCases...)
	rules := compileRules(Settings{}.Defaults())
	var w refWalker
	for _, doc := range docs {
		v, d := decodeObject("f.json", []byte(doc))
		if d != nil {
			continue
		}
		w.reset()
		w.rules, w.encode = rules, true
		w.walk(v, true)
		want, _ := Canonical(withoutKarma(v))
		if w.odd || !bytes.Equal(w.out, want) {
			t.Errorf("%s:\n walk %s (odd %v)\nwant %s", doc, w.out, w.odd, want)
		}
	}
}
