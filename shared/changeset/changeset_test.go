package changeset

import (
	"reflect"
	"sort"
	"testing"
)

// diamond: vpc <- cluster (vpc_id), vpc <- lambda (subnets), cluster <- service (*), lambda <- api (*).
func diamond(rootKeys ...string) *ChangeSet {
	cs := &ChangeSet{ID: "cs", Nodes: map[string]*Node{}, Waves: [][]string{{"vpc"}, {"cluster", "lambda"}, {"api", "service"}}}
	add := func(id string, wave int, ups ...Upstream) {
		cs.Nodes[id] = &Node{Component: id, Wave: wave, Upstreams: ups, State: Pending, DeploymentID: DeploymentID("cs", id)}
		for _, u := range ups {
			cs.Nodes[u.Component].Dependents = append(cs.Nodes[u.Component].Dependents, id)
		}
	}
	add("vpc", 0)
	add("cluster", 1, Upstream{Component: "vpc", Consumes: []string{"vpc_id"}})
	add("lambda", 1, Upstream{Component: "vpc", Consumes: []string{"subnets"}})
	add("service", 2, Upstream{Component: "cluster", Consumes: []string{"*"}})
	add("api", 2, Upstream{Component: "lambda", Consumes: []string{"*"}})
	cs.Nodes["vpc"].Root = true
	return cs
}

func states(cs *ChangeSet) map[string]string {
	out := map[string]string{}
	for id, n := range cs.Nodes {
		out[id] = n.State
	}
	return out
}

func TestOnlyConsumersOfChangedKeysDeploy(t *testing.T) {
	t.Parallel()
	cs := diamond()
	cs.Start()
	if got := states(cs); got["vpc"] != Scheduled || got["cluster"] != Pending {
		t.Fatalf("after start: %v", got)
	}
	if err := cs.MarkApplied("vpc", []string{"subnets"}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"vpc": Applied, "cluster": Skipped, "service": Skipped, "lambda": Scheduled, "api": Pending}
	if got := states(cs); !reflect.DeepEqual(got, want) {
		t.Errorf("after vpc applied (subnets): %v, want %v", got, want)
	}
	if c := cs.Nodes["lambda"].Causes; len(c) != 1 || c[0].ID != cs.Nodes["vpc"].DeploymentID || c[0].Keys[0] != "subnets" {
		t.Errorf("lambda causes = %+v", c)
	}
	cs.MarkApplied("lambda", []string{}) // no output changed
	if cs.Nodes["api"].State != Skipped || cs.Nodes["api"].Reason != ReasonNoConsumedKey || !cs.Done() {
		t.Errorf("api must be skipped when lambda's outputs did not change: %+v", cs.Nodes["api"])
	}
}

func TestFailureBlocksEverythingBelow(t *testing.T) {
	t.Parallel()
	cs := diamond()
	cs.Start()
	cs.MarkApplied("vpc", []string{"vpc_id", "subnets"})
	cs.MarkFailed("cluster", "apply: boom")
	if cs.Nodes["service"].State != Blocked || cs.Nodes["service"].Reason != ReasonUpstreamFailed {
		t.Errorf("service: %+v", cs.Nodes["service"])
	}
	if cs.Nodes["lambda"].State != Scheduled {
		t.Errorf("a sibling branch must go on: %+v", cs.Nodes["lambda"])
	}
	if f := cs.FailedComponents(); !reflect.DeepEqual(f, []string{"cluster"}) {
		t.Errorf("failed = %v", f)
	}
}

func TestRedeliveredOutcomeDecidesNothingTwice(t *testing.T) {
	t.Parallel()
	cs := diamond()
	cs.Start()
	cs.MarkApplied("vpc", []string{"vpc_id"})
	for _, n := range cs.Unannounced() {
		n.Announced = true
	}
	cs.MarkApplied("vpc", []string{"vpc_id", "subnets"}) // a duplicate with different data
	if len(cs.Unannounced()) != 0 || cs.Nodes["lambda"].State != Skipped {
		t.Errorf("a settled node must not be decided again: %v", states(cs))
	}
}

func TestUnannouncedIsAnOutbox(t *testing.T) {
	t.Parallel()
	cs := diamond()
	cs.Start()
	var ids []string
	for _, n := range cs.Unannounced() {
		ids = append(ids, n.Component)
	}
	if !reflect.DeepEqual(ids, []string{"vpc"}) {
		t.Fatalf("unannounced at start = %v", ids)
	}
	// Not marked announced (the publisher crashed): still there on the next look.
	if len(cs.Unannounced()) != 1 {
		t.Error("decision lost before it was announced")
	}
	cs.Nodes["vpc"].Announced = true
	cs.MarkApplied("vpc", []string{"vpc_id"})
	ids = nil
	for _, n := range cs.Unannounced() {
		ids = append(ids, n.Component+":"+n.State)
	}
	sort.Strings(ids)
	if !reflect.DeepEqual(ids, []string{"api:skipped", "cluster:scheduled", "lambda:skipped"}) {
		t.Errorf("unannounced after vpc = %v", ids)
	}
}

func TestDestroyIsHeld(t *testing.T) {
	t.Parallel()
	cs := &ChangeSet{ID: "cs", Waves: [][]string{{"old"}}, Nodes: map[string]*Node{"old": {Component: "old", Root: true, Destroy: true, State: Pending}}}
	cs.Start()
	if n := cs.Nodes["old"]; n.State != Skipped || n.Reason != ReasonDestroyHeld {
		t.Errorf("destroy: %+v", n)
	}
}

func TestDeploymentIDIsDeterministic(t *testing.T) {
	t.Parallel()
	if DeploymentID("a", "b") != DeploymentID("a", "b") || DeploymentID("a", "b") == DeploymentID("a", "c") {
		t.Error("deployment ids must be a function of change set and component")
	}
}

// TestTriggerSeenThroughCascade: service depends on cluster (skipped) and on vpc (which changed a
// key service consumes); whatever order the dependents are visited in, service deploys.
func TestTriggerSeenThroughCascade(t *testing.T) {
	t.Parallel()
	for _, order := range [][]string{{"cluster", "service"}, {"service", "cluster"}} {
		cs := &ChangeSet{ID: "cs", Waves: [][]string{{"vpc"}, {"cluster"}, {"service"}}, Nodes: map[string]*Node{
			"vpc":     {Component: "vpc", Root: true, State: Pending, Dependents: order},
			"cluster": {Component: "cluster", State: Pending, Upstreams: []Upstream{{Component: "vpc", Consumes: []string{"vpc_id"}}}, Dependents: []string{"service"}},
			"service": {Component: "service", State: Pending, Upstreams: []Upstream{{Component: "cluster", Consumes: []string{"*"}}, {Component: "vpc", Consumes: []string{"subnets"}}}},
		}}
		cs.Start()
		cs.MarkApplied("vpc", []string{"subnets"})
		if cs.Nodes["service"].State != Scheduled || cs.Nodes["cluster"].State != Skipped {
			t.Errorf("order %v: %v", order, states(cs))
		}
	}
}

// TestOnAnyApplyEdgeRedeploysWithoutAConsumedKey: lambda's edge to vpc says "redeploy on any
// apply": vpc's apply changing no key lambda consumes still schedules lambda, with a cause that
// says why; cluster (an ordinary edge) is skipped.
func TestOnAnyApplyEdgeRedeploysWithoutAConsumedKey(t *testing.T) {
	t.Parallel()
	for name, changed := range map[string][]string{"a key nobody consumes": {"flow_logs"}, "no key at all": {}} {
		cs := diamond()
		cs.Nodes["lambda"].Upstreams[0].OnAnyApply = true
		cs.Start()
		if err := cs.MarkApplied("vpc", changed); err != nil {
			t.Fatal(err)
		}
		if got := states(cs); got["lambda"] != Scheduled || got["cluster"] != Skipped {
			t.Fatalf("%s: %v", name, got)
		}
		c := cs.Nodes["lambda"].Causes
		if len(c) != 1 || c[0].ID != cs.Nodes["vpc"].DeploymentID || c[0].Trigger != "on-any-apply" || c[0].Keys == nil || len(c[0].Keys) != 0 {
			t.Errorf("%s: lambda causes = %+v", name, c)
		}
	}
	// A consumed key changed: the ordinary cause, with the keys, and no trigger.
	cs := diamond()
	cs.Nodes["lambda"].Upstreams[0].OnAnyApply = true
	cs.Start()
	cs.MarkApplied("vpc", []string{"subnets"})
	if c := cs.Nodes["lambda"].Causes; len(c) != 1 || c[0].Trigger != "" || !reflect.DeepEqual(c[0].Keys, []string{"subnets"}) {
		t.Errorf("consumed key changed: lambda causes = %+v", c)
	}
}
