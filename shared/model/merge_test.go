package model

import (
	"encoding/json"
	"testing"
	"testing/fstest"
)

// TestMergePatchRFC7386 runs the examples of RFC 7386 appendix A.
func TestMergePatchRFC7386(t *testing.T) {
	t.Parallel()
	cases := []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, `null`},
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"a":1,"e":null}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		{`{"a":[null,1]}`, `{"b":[null]}`, `{"a":[null,1],"b":[null]}`},
	}
	for _, c := range cases {
		var target, patch, want any
		mustJSON(t, c.target, &target)
		mustJSON(t, c.patch, &patch)
		mustJSON(t, c.want, &want)
		before, _ := json.Marshal(target)
		got := MergePatch(target, patch)
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(want)
		if string(gb) != string(wb) {
			t.Errorf("MergePatch(%s, %s) = %s, want %s", c.target, c.patch, gb, wb)
		}
		after, _ := json.Marshal(target)
		if string(before) != string(after) {
			t.Errorf("MergePatch modified its target: %s -> %s", before, after)
		}
	}
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
}

// A null in the karma block deletes what a lower layer set, as anywhere else (docs/config-format.md,
// layers): "depends_on": null in a child's file removes the depends_on it would inherit from its
// parent, and one with nothing below is dropped, not refused as a malformed depends_on.
func TestNullInTheKarmaBlockDeletes(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		"iac/dev/vpc/core/config.json": {Data: []byte(`{}`)},
		"iac/dev/app/p/config.json":    {Data: []byte(`{"karma": {"depends_on": ["vpc/core"]}, "size": 1}`)},
		"iac/dev/app/c/config.json":    {Data: []byte(`{"karma": {"extends": "app/p", "depends_on": null}, "name": "c"}`)},
		"iac/dev/app/d/config.json":    {Data: []byte(`{"karma": {"depends_on": null, "extends": null}}`)},
		"iac/_base/app/e/config.json":  {Data: []byte(`{"karma": {"depends_on": null}}`)},
		"iac/dev/app/e/config.json":    {Data: []byte(`{"karma": null}`)},
	}
	r, err := LoadFS(fsys, "repo", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Diagnostics) != 0 {
		t.Errorf("diagnostics: %v", r.Diagnostics)
	}
	for _, c := range r.Components {
		want := 0
		if c.ID() == "dev/app/p" {
			want = 1
		}
		if c.Broken || len(c.References) != want {
			t.Errorf("%s: broken %v, references %v", c.ID(), c.Broken, c.References)
		}
		if c.ID() == "dev/app/c" && string(c.Resolved) != `{"name":"c","size":1}` {
			t.Errorf("%s resolved %s", c.ID(), c.Resolved)
		}
	}
}
