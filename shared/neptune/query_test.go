package neptune

import (
	"encoding/json"
	"math"
	"math/big"
	"strings"
	"testing"

	gremlingo "github.com/apache/tinkerpop/gremlin-go/v3/driver"
)

func TestMutatingSteps(t *testing.T) {
	tests := []struct {
		q    string
		want string // comma-separated, in order of appearance
	}{
		{`g.V().hasLabel('component').count()`, ""},
		{`g.V().has('name', 'dropbox').values('property')`, ""},
		{`g.V().has("name", "addV(x)").as("drop")`, ""},
		{`g.V().has('name', 'it\'s drop()').valueMap()`, ""},
		{`g.V().has("k", "say \"drop()\" loud").id()`, ""},
		{`g.V().properties('config_hash').value()`, ""},
		{`g.V().elementMap().by(T.id)`, ""},
		{`g.V() // .drop()` + "\n" + `.count()`, ""},
		{`g.V() /* g.addV('x') */ .count()`, ""},
		{`g.V().dropped().count()`, ""},
		{`g.V().sideEffect(aggregate('x')).cap('x')`, ""},
		{`g.V().drop()`, "drop"},
		{`g.V().drop ()`, "drop"},
		{`g.addV('component').property('id', 'x')`, "addV,property"},
		{`g.V('a').addE('depends_on').to(V('b'))`, "addE"},
		{`g.V().property(single, 'env', 'dev')`, "property"},
		{`g.mergeV([(T.id): 'x'])`, "mergeV"},
		{`g.mergeE([(T.id): 'e'])`, "mergeE"},
		{`g.V().sideEffect(__.drop())`, "drop"},
		{`g.V().sideEffect(properties('x').drop())`, "drop"},
		{`g.V().sideEffect{ it.get().remove() }`, "remove,lambda"},
		{`g.V().map(Lambda.function('it.get()'))`, "lambda"},
		{`g.io('/tmp/graph.json').write().iterate()`, "io().write"},
		{`g.io('/tmp/graph.json').read().iterate()`, "io().read"},
		{`g.V().has('file', 'read').values('write')`, ""},
		{`graph.addVertex('x'); g.V()`, "addVertex"},
		{`g.V().choose(has('x'), drop(), identity())`, "drop"},
		{`g.V().coalesce(V('a'), addV('a'))`, "addV"},
	}
	for _, tt := range tests {
		got := strings.Join(MutatingSteps(tt.q), ",")
		if got != tt.want {
			t.Errorf("MutatingSteps(%s) = %q, want %q", tt.q, got, tt.want)
		}
	}
}

func TestStepCalls(t *testing.T) {
	got := strings.Join(StepCalls(`g.V().has('a', 'profile()').out("x").profile()`), ",")
	if got != "V,has,out,profile" {
		t.Errorf("StepCalls = %s", got)
	}
}

func TestJSONValue(t *testing.T) {
	set := &gremlingo.SimpleSet{}
	set.Add("a")
	v := &gremlingo.Vertex{Element: gremlingo.Element{Id: "dev/app/api", Label: "component"}}
	in := []any{
		v,
		&gremlingo.Edge{Element: gremlingo.Element{Id: "a|depends_on|b", Label: "depends_on"},
			OutV: gremlingo.Vertex{Element: gremlingo.Element{Id: "a"}}, InV: gremlingo.Vertex{Element: gremlingo.Element{Id: "b"}}},
		map[any]any{"id": "x", v: int64(3), "n": math.NaN()},
		set,
		big.NewInt(12),
		&gremlingo.BigDecimal{Scale: 2, UnscaledValue: *big.NewInt(1234)},
		&gremlingo.VertexProperty{Element: gremlingo.Element{Id: int64(7)}, Key: "env", Value: "dev"},
	}
	b, err := json.Marshal(JSONValue(in))
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"id":"dev/app/api","label":"component","type":"vertex"},` +
		`{"id":"a|depends_on|b","inV":"b","label":"depends_on","outV":"a","type":"edge"},` +
		`{"id":"x","n":"NaN","v[dev/app/api]":3},["a"],"12","12.34",` +
		`{"id":7,"key":"env","type":"vertex_property","value":"dev"}]`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}
