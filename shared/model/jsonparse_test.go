package model

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"unsafe"
)

// parseCases are documents the parser must decode exactly as encoding/json does, or refuse
// where encoding/json refuses them.
var parseCases = []string{
	`{}`, ` {} `, "\t{\r\n}\n", `{"a":1}`, `{"a":-0.5e+10,"b":1E3,"c":0,"d":-0,"e":123456789012345678901234567890}`,
	`{"a":"x","a":"y"}`, `{"":""}`, `{"a":[],"b":{},"c":[[]],"d":[{}],"e":null,"f":true,"g":false}`,
	`{"a":[1,"two",null,true,{"b":[false]}]}`, `{"s":"caf\u00e9 \ud83d\ude00 \ud800 \udc00x \ud800\u0041 \/ \" \\ \b\f\n\r\t"}`,
	`{"k\u0041y":1, "k\ny": 2}`, `{"html":"<a href=\"x\">&amp;</a>", "u":"\u2028\u2029"}`, `{"café ☕":"é"}`,
	`{"n":1.0,"m":1.10,"o":1e-7}`, `{"a":"\ud83d","b":"\ud83dx","c":"\uDC00\uD800","d":"\u0000\u001F","e":"\uD83D\uDE00\uD83D"}`,
	`{"\u0041":"\\\/\u00e9","x":"a\u2028b"}`, `{"a":"\ud83d\u"}`, `{"a":"\'"}`, `{"a":"\uD83D\uZZZZ"}`, "{\"a\" : [ 1 , 2 ] , \"b\" :\n{ } }",
	// refused by both
	``, ` `, `[]`, `"x"`, `1`, `null`, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{"a":1 "b":2}`,
	`{"a":[1,]}`, `{"a":[1 2]}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":+1}`, `{"a":-}`,
	`{"a":tru}`, `{"a":nul}`, `{"a":True}`, `{"a":"x\q"}`, `{"a":"\u00"}`, `{"a":"\u00zz"}`, "{\"a\":\"x\ty\"}",
	`{"a":"x`, `{"a":"x\`, `{} {}`, `{}x`, `{}]`, `{"a":1}}`, `{'a':1}`, `{a:1}`, `{"a":1}//`, "\ufeff{}",
	`{"a":NaN}`, `{"a":Infinity}`, `{"a":[}`, `{"a":{]}`, `{"a":"\x"}`,
}

// checkParse decodes doc with decode (the parser, then encoding/json) and with encoding/json
// alone (decodeObject): both must give equal values or the same diagnostic — except that decode
// refuses an object naming a member twice (strictJSON), which encoding/json takes the last
// value of — and decode may say that a document holds no null only when it holds none. It
// returns whether the parser itself accepted doc; it must never accept what encoding/json
// refuses.
func checkParse(t *testing.T, p *parser, doc string) bool {
	t.Helper()
	want, wd := decodeObject("f.json", []byte(doc))
	_, fast := p.object([]byte(doc))
	got, nulls, gd := p.decode("f.json", []byte(doc), true)
	dup := strictJSON("f.json", []byte(doc))
	name := doc
	if len(name) > 60 {
		name = name[:60] + "..."
	}
	switch {
	case wd != nil && fast:
		t.Errorf("%q: parser accepted what encoding/json refuses: %s", name, wd)
	case wd != nil && (gd == nil || *gd != *wd):
		t.Errorf("%q: diagnostic %v, want %v", name, gd, wd)
	case wd == nil && dup != nil && (gd == nil || *gd != *dup):
		t.Errorf("%q: a name repeated: diagnostic %v, want %v", name, gd, dup)
	case wd == nil && dup != nil: // refused, as it must be
	case wd == nil && (gd != nil || !reflect.DeepEqual(got, want)):
		t.Errorf("%q: decoded %#v (%v), encoding/json %#v", name, got, gd, want)
	case wd == nil && !nulls && holdsNull(want):
		t.Errorf("%q: decode says there is no null in it", name)
	case wd == nil && fast && nulls && !holdsNull(want):
		t.Errorf("%q: the parser says there is a null in it", name)
	}
	return fast
}

// holdsNull reports whether v holds a null at any depth, arrays included.
func holdsNull(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case map[string]any:
		for _, e := range x {
			if holdsNull(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if holdsNull(e) {
				return true
			}
		}
	}
	return false
}

func TestParserMatchesEncodingJSON(t *testing.T) {
	p := newParser()
	for _, doc := range parseCases {
		_, err := decodeObject("f.json", []byte(doc))
		if fast := checkParse(t, p, doc); err == nil && !fast {
			t.Errorf("%q: valid, but the parser handed it over to encoding/json", doc)
		}
	}
	// deeper than the parser goes: encoding/json decodes it
	deep := strings.Repeat(`{"a":`, maxParseDepth+5) + "1" + strings.Repeat("}", maxParseDepth+5)
	if checkParse(t, p, deep) {
		t.Errorf("parser went deeper than %d", maxParseDepth)
	}
	// ... and a null in what encoding/json decoded is not missed
	deepNull := strings.Repeat(`{"a":`, maxParseDepth+5) + "null" + strings.Repeat("}", maxParseDepth+5)
	if checkParse(t, p, deepNull) {
		t.Errorf("parser went deeper than %d", maxParseDepth)
	}
	// the interned keys are shared between documents, the values are not
	a, _ := p.object([]byte(`{"tags":{"Name":"x"}}`))
	b, _ := p.object([]byte(`{"tags":{"Name":"y"}}`))
	if a["tags"].(map[string]any)["Name"] != "x" || b["tags"].(map[string]any)["Name"] != "y" {
		t.Errorf("values leaked between documents: %v %v", a, b)
	}
}

// TestDecodeCopiesBytesItDoesNotOwn: decoded strings share the file's bytes only when the
// caller says they are its own; an override's bytes, which the caller may change later, are
// copied first.
func TestDecodeCopiesBytesItDoesNotOwn(t *testing.T) {
	p := newParser()
	inside := func(s string, data []byte) bool {
		at, start := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(&data[0]))
		return at >= start && at < start+uintptr(len(data))
	}
	for _, owned := range []bool{false, true} {
		data := []byte(`{"name":"web","size":12,"tags":["a"]}`)
		obj, _, d := p.decode("f.json", data, owned)
		if d != nil {
			t.Fatal(d)
		}
		name := obj["name"].(string)
		if shared := inside(name, data); shared != owned {
			t.Errorf("owned %v: the value shares the caller's bytes: %v", owned, shared)
		}
		if !owned {
			copy(data, strings.Repeat("x", len(data))) // the caller reuses its buffer
			if name != "web" || obj["size"] != json.Number("12") || obj["tags"].([]any)[0] != "a" {
				t.Errorf("a value changed with bytes the parser did not own: %v", obj)
			}
		}
	}
}

// TestLoadCopiesOverrides: a load's overrides stay their caller's, who may reuse the buffers
// once it returns; a base layer, which the Repo keeps, holds none of their bytes.
func TestLoadCopiesOverrides(t *testing.T) {
	const file = "iac/_base/app/web/config.json"
	over := []byte(`{"name":"from-override"}`)
	fsys := fstest.MapFS{
		file:                           {Data: []byte(`{"name":"base"}`)},
		"iac/prod/app/web/config.json": {Data: []byte(`{"size":1}`)},
	}
	r, err := LoadFS(fsys, "t", LoadOptions{Overrides: map[string][]byte{file: over}})
	if err != nil {
		t.Fatal(err)
	}
	b := r.base["app/web"]
	if b == nil || b.layer == nil {
		t.Fatalf("no base layer for app/web: %+v", b)
	}
	name, _ := b.layer.Data["name"].(string)
	start := uintptr(unsafe.Pointer(&over[0]))
	if at := uintptr(unsafe.Pointer(unsafe.StringData(name))); name != "from-override" || (at >= start && at < start+uintptr(len(over))) {
		t.Errorf("the base layer's name %q shares the override's bytes", name)
	}
}

func FuzzParserMatchesEncodingJSON(f *testing.F) {
	for _, doc := range parseCases {
		f.Add(doc)
	}
	p := newParser()
	f.Fuzz(func(t *testing.T, doc string) {
		if checkUTF8("f.json", []byte(doc)) != nil {
			return // refused before either parser sees it
		}
		checkParse(t, p, doc)
	})
}

// a config as the generated repositories have them (modeltest)
const benchConfig = `{
  "allowed_cidrs": [
    "10.121.0.0/16"
  ],
  "capacity": {
    "instance_type": "c6g.large",
    "scaling": {
      "max": 16
    }
  },
  "description": "lambda for data",
  "environment": {
    "DEP_0_ENDPOINT": "${s3-bucket/web-002219.runtime.endpoint}",
    "DEP_1_URL": "${vpc/core-000880.runtime.url}"
  },
  "karma": {
    "depends_on": [
      {
        "consumes": [
          "arn"
        ],
        "ref": "kms-key/media-000352"
      }
    ],
    "extends": "lambda/defaults"
  },
  "name": "prod-api-002523",
  "tags": {
    "CostCenter": "cc-3423",
    "Environment": "prod"
  },
  "user_data": "#!/bin/sh\necho ${HOSTNAME}"
}`

// BenchmarkDecodeConfig compares the parser with encoding/json (UseNumber, as decodeObject) on
// one config.
func BenchmarkDecodeConfig(b *testing.B) {
	data := []byte(benchConfig)
	b.Run("parser", func(b *testing.B) {
		p := newParser()
		b.ReportAllocs()
		for b.Loop() {
			if _, _, d := p.decode("f.json", data, false); d != nil {
				b.Fatal(d)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, d := decodeObject("f.json", data); d != nil {
				b.Fatal(d)
			}
		}
	})
}
