package model

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// Invalid UTF-8 is an error naming the file and the byte offset, never silently turned into
// U+FFFD (which is what encoding/json does with it).
func TestDecodeObjectInvalidUTF8(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, data string
		offset     int
		line, col  int
	}{
		{"in a value", "{\"name\": \"caf\xe9\"}", 13, 1, 14},
		{"in a key", "{\n  \"n\xffme\": 1\n}", 6, 2, 5},
		{"truncated sequence at the end", "{\"a\": \"\xe2\x82", 7, 1, 8},
		{"overlong encoding", "{\"a\": \"\xc0\xaf\"}", 7, 1, 8},
		{"UTF-16 surrogate", "{\"a\": \"\xed\xa0\x80\"}", 7, 1, 8},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			obj, d := decodeObject("f.json", []byte(c.data))
			if d == nil {
				t.Fatalf("no diagnostic; decoded %q", obj)
			}
			want := "invalid UTF-8 at byte offset " + strconv.Itoa(c.offset)
			if d.Code != CodeInvalidJSON || d.File != "f.json" || !strings.Contains(d.Message, want) || d.Line != c.line || d.Column != c.col {
				t.Errorf("got %s (line %d col %d), want %s at %d:%d containing %q", d, d.Line, d.Column, CodeInvalidJSON, c.line, c.col, want)
			}
		})
	}
	if _, d := decodeObject("f.json", []byte(`{"name": "café ☕"}`)); d != nil {
		t.Errorf("valid UTF-8 refused: %s", d)
	}
}

// Every file Karma reads as configuration is checked: component configs, account environment
// files (JSON and YAML) and karma.json.
func TestLoadRefusesInvalidUTF8(t *testing.T) {
	t.Parallel()
	write := func(t *testing.T, files map[string]string) string {
		dir := t.TempDir()
		for rel, content := range files {
			p := filepath.Join(dir, filepath.FromSlash(rel))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	bad := map[string]string{
		"iac/dev/app/a/config.json":       "{\"name\": \"caf\xe9\"}",
		"account_environments/dev.json":   "{\"environment\": \"dev\", \"owner\": \"\xff\"}",
		"account_environments/stage.yaml": "environment: stage\nowner: \"caf\xe9\"\n",
	}
	want := map[string]string{}
	files := map[string]string{"iac/dev/app/fine/config.json": `{"name": "café"}`, "account_environments/prod.yaml": "environment: prod\n"}
	for f, content := range bad {
		files[f] = content
		want[f] = "invalid UTF-8 at byte offset " + strconv.Itoa(strings.IndexAny(content, "\xe9\xff"))
	}
	root := write(t, files)
	repo, err := Load(root, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range repo.Diagnostics.Errors() {
		if w, ok := want[d.File]; ok && strings.Contains(d.Message, w) {
			delete(want, d.File)
		}
	}
	if len(want) > 0 {
		t.Errorf("missing diagnostics %v; got %v", want, repo.Diagnostics)
	}
	for _, c := range repo.Components {
		if c.ID() == "dev/app/a" && !c.Broken {
			t.Errorf("dev/app/a resolved to %s; want it broken", c.Resolved)
		}
	}

	settingsFile := "{\"prefix\": \"/iac\", \"aliases\": {\"\xe9_nickname\": \"x\"}}"
	settings := write(t, map[string]string{"karma.json": settingsFile})
	if _, err := Load(settings, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "karma.json") ||
		!strings.Contains(err.Error(), "invalid UTF-8 at byte offset "+strconv.Itoa(strings.IndexByte(settingsFile, 0xe9))) {
		t.Errorf("Load with an invalid karma.json: %v; want an error naming karma.json and the offset", err)
	}
}

// FuzzDecodeObject: decodeObject never panics; what it accepts is valid UTF-8, a JSON object,
// and survives a canonical round trip unchanged; what is not valid UTF-8 it refuses.
func FuzzDecodeObject(f *testing.F) {
	for _, seed := range []string{`{}`, `{"a":1}`, `{"a":"caf\u00e9","b":[1,2,{"c":null}]}`, "{\"a\":\"\xff\"}",
		`{"big":123456789012345678901234567890}`, `[1]`, ``, `{"a":1}{}`, "{\"\xc0\xaf\":1}"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		obj, d := decodeObject("f.json", data)
		if !utf8.Valid(data) && d == nil {
			t.Fatalf("invalid UTF-8 accepted: %q", data)
		}
		if d != nil {
			if obj != nil || d.File != "f.json" || d.Line < 1 || d.Column < 1 {
				t.Fatalf("diagnostic %+v with object %v", d, obj)
			}
			return
		}
		canon, _ := Canonical(obj)
		again, d := decodeObject("f.json", canon)
		if d != nil {
			t.Fatalf("canonical form %s refused: %s", canon, d)
		}
		if c2, _ := Canonical(again); string(c2) != string(canon) {
			t.Fatalf("canonical round trip changed %s into %s", canon, c2)
		}
	})
}
