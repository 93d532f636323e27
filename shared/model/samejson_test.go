package model

import (
	"encoding/json"
	"testing"
)

func TestSameJSON(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{`{"a":1,"b":[1,2]}`, `{"b":[1,2],"a":1}`, true},
		{`1`, `1.0`, true},
		{`{"n":1e2}`, `{"n":100}`, true},
		{`{"id":12345678901234567}`, `{"id":12345678901234568}`, false},
		{`{"a":[1,2]}`, `{"a":[2,1]}`, false},
		{`{"a":1}`, `{"a":"1"}`, false},
		{`{"a":null}`, `{}`, false},
		{`{"a":{"x":true}}`, `{"a":{"x":true}}`, true},
		{`nope`, `nope`, true},
		{`nope`, `{}`, false},
	} {
		if got := SameJSON(json.RawMessage(c.a), json.RawMessage(c.b)); got != c.same {
			t.Errorf("SameJSON(%s, %s) = %v, want %v", c.a, c.b, got, c.same)
		}
	}
}
