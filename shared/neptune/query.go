package neptune

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strings"
	"unicode"

	gremlingo "github.com/apache/tinkerpop/gremlin-go/v3/driver"
)

// mutatingCalls are the steps (and Graph API methods, for Gremlin Server's Groovy) that change
// the graph when called.
var mutatingCalls = map[string]bool{
	"addV": true, "addE": true, "property": true, "drop": true, "mergeV": true, "mergeE": true,
	"addVertex": true, "addEdge": true, "remove": true,
}

type token struct {
	kind byte // 'i' identifier, 'p' punctuation
	text string
}

// tokens splits a Gremlin (Groovy-like) string into identifiers and punctuation, skipping
// string literals, numbers, whitespace and comments, so that nothing quoted counts.
func tokens(q string) []token {
	var out []token
	rs := []rune(q)
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case unicode.IsSpace(r):
			i++
		case r == '\'' || r == '"':
			i++
			for i < len(rs) && rs[i] != r {
				if rs[i] == '\\' {
					i++
				}
				i++
			}
			i++ // the closing quote
		case r == '/' && i+1 < len(rs) && rs[i+1] == '/':
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
		case r == '/' && i+1 < len(rs) && rs[i+1] == '*':
			i += 2
			for i < len(rs) && !(rs[i] == '*' && i+1 < len(rs) && rs[i+1] == '/') {
				i++
			}
			i += 2
		case unicode.IsLetter(r) || r == '_' || r == '$':
			j := i + 1
			for j < len(rs) && (unicode.IsLetter(rs[j]) || unicode.IsDigit(rs[j]) || rs[j] == '_' || rs[j] == '$') {
				j++
			}
			out = append(out, token{'i', string(rs[i:j])})
			i = j
		case unicode.IsDigit(r):
			for i < len(rs) && (unicode.IsLetter(rs[i]) || unicode.IsDigit(rs[i]) || rs[i] == '.' || rs[i] == '_') {
				i++
			}
		default:
			out = append(out, token{'p', string(r)})
			i++
		}
	}
	return out
}

// StepCalls lists the steps and methods a Gremlin string calls (identifiers followed by "(",
// or following a "."), in order, strings and comments ignored.
func StepCalls(q string) []string {
	ts := tokens(q)
	var out []string
	for i, t := range ts {
		if t.kind != 'i' {
			continue
		}
		called := i+1 < len(ts) && ts[i+1].text == "("
		dotted := i > 0 && ts[i-1].text == "."
		if called || dotted {
			out = append(out, t.text)
		}
	}
	return out
}

// MutatingSteps lists what in a Gremlin string may write: the steps addV, addE, property, drop,
// mergeV, mergeE (anywhere, sideEffect(...) included), io(...).read()/write(), the Graph API's
// addVertex/addEdge/remove, and lambdas ({ ... } closures or Lambda), which can do anything.
// Names inside string literals and comments do not count. Empty means read-only. It guards
// against accidental writes; it is not a sandbox (grant a read-only IAM policy for that).
func MutatingSteps(q string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	io := false
	for _, s := range StepCalls(q) {
		switch {
		case mutatingCalls[s]:
			add(s)
		case s == "io":
			io = true
		case io && (s == "read" || s == "write"):
			add("io()." + s)
		}
	}
	for _, t := range tokens(q) {
		if t.text == "{" || t.text == "Lambda" {
			add("lambda")
			break
		}
	}
	return out
}

// JSONValue turns a driver result into plain JSON data: elements as objects with their id and
// label (and endpoints, key, value), maps keyed by strings, sets as arrays, numbers that JSON
// cannot carry as strings.
func JSONValue(v any) any {
	switch x := v.(type) {
	case nil, bool, string, int8, int16, int32, int64, int, uint8, uint16, uint32, uint64:
		return x
	case float32:
		return JSONValue(float64(x))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Sprint(x)
		}
		return x
	case *big.Int:
		return x.String()
	case *gremlingo.BigDecimal:
		f := new(big.Float).SetInt(&x.UnscaledValue)
		f.Quo(f, new(big.Float).SetFloat64(math.Pow10(int(x.Scale))))
		return f.Text('g', -1)
	case *gremlingo.Vertex:
		return map[string]any{"type": "vertex", "id": JSONValue(x.Id), "label": x.Label}
	case *gremlingo.Edge:
		return map[string]any{"type": "edge", "id": JSONValue(x.Id), "label": x.Label, "outV": JSONValue(x.OutV.Id), "inV": JSONValue(x.InV.Id)}
	case *gremlingo.VertexProperty:
		return map[string]any{"type": "vertex_property", "id": JSONValue(x.Id), "key": x.Key, "value": JSONValue(x.Value)}
	case *gremlingo.Property:
		return map[string]any{"type": "property", "key": x.Key, "value": JSONValue(x.Value)}
	case *gremlingo.Path:
		labels := make([]any, len(x.Labels))
		for i, s := range x.Labels {
			labels[i] = JSONValue(s)
		}
		return map[string]any{"type": "path", "labels": labels, "objects": JSONValue(x.Objects)}
	case gremlingo.Set:
		return JSONValue(x.ToSlice())
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = JSONValue(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[keyString(k)] = JSONValue(e)
		}
		return out
	}
	if _, err := json.Marshal(v); err == nil {
		return v // time.Time, uuid.UUID, durations...
	}
	return fmt.Sprint(v)
}

func keyString(k any) string {
	switch x := k.(type) {
	case string:
		return x
	case *gremlingo.Vertex:
		return "v[" + fmt.Sprint(x.Id) + "]"
	case *gremlingo.Edge:
		return "e[" + fmt.Sprint(x.Id) + "]"
	}
	b, err := json.Marshal(JSONValue(k))
	if err != nil {
		return fmt.Sprint(k)
	}
	return strings.Trim(string(b), `"`)
}
