package model

import (
	"encoding/json"
	"testing"
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
