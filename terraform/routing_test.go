package terraform

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/usekarma/karma/shared/eventbridge"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/queue"
	"github.com/usekarma/karma/shared/sqs"
)

// testVars are the variables the tests deploy with: everything on (webhook, ingest and
// reconcile by default), an existing Neptune cluster, and every optional setting set, so that
// every conditional part of the environment is evaluated.
func testVars() map[string]cty.Value {
	s := cty.StringVal
	return map[string]cty.Value{
		"environment":                 s("test"),
		"subnet_ids":                  cty.TupleVal([]cty.Value{s("subnet-a"), s("subnet-b")}),
		"lambda_security_group_ids":   cty.TupleVal([]cty.Value{s("sg-a")}),
		"neptune_endpoint":            s("graph.cluster-x.eu-west-1.neptune.amazonaws.com"),
		"neptune_cluster_resource_id": s("cluster-TEST"),
		"webhook_secret_arn":          s("arn:aws:secretsmanager:eu-west-1:123456789012:secret:karma/webhooks-AbCdEf"),
		"git_url":                     s("https://git.example.com/acme/infra.git"),
		"git_subdir":                  s("karma"),
		"git_token_user":              s("oauth2"),
		"git_token_secret_arn":        s("arn:aws:secretsmanager:eu-west-1:123456789012:secret:karma/git-token-AbCdEf"),
	}
}

// tb is what the checks report to: a *testing.T, or a recorder (mutation_test.go).
type tb interface {
	Helper()
	Errorf(format string, args ...any)
	Logf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	FailNow()
}

// deployment is this folder evaluated with testVars.
type deployment struct {
	m *module
	// functions: the Lambda functions by instance key, with their environment.
	functions map[string]lambdaFn
	// queues by SQS name.
	queues map[string]instance
}

type lambdaFn struct {
	inst instance
	env  map[string]cty.Value
}

func load(t tb, dir string) *deployment {
	t.Helper()
	return loadWith(t, dir, testVars())
}

// loadWith is load with the variables vars.
func loadWith(t tb, dir string, vars map[string]cty.Value) *deployment {
	t.Helper()
	m, err := loadModule(dir, vars)
	if err != nil {
		t.Fatal(err)
	}
	d := &deployment{m: m, functions: map[string]lambdaFn{}, queues: map[string]instance{}}
	fns, err := m.allInstances("aws_lambda_function")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range fns {
		v, ok, err := m.arg(in, "environment", "variables")
		if err != nil {
			t.Fatal(err)
		}
		env := map[string]cty.Value{}
		if ok && !v.IsNull() {
			if !v.CanIterateElements() {
				t.Fatalf("%s: environment.variables is %#v, want a map", in.addr, v)
			}
			env = v.AsValueMap()
		}
		d.functions[in.key] = lambdaFn{inst: in, env: env}
	}
	qs, err := m.allInstances("aws_sqs_queue")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range qs {
		name := d.mustString(t, in, "name")
		if prev, dup := d.queues[name]; dup {
			t.Fatalf("queue %s is declared twice: %s and %s", name, prev.addr, in.addr)
		}
		d.queues[name] = in
	}
	return d
}

func (d *deployment) mustString(t tb, in instance, path ...string) string {
	t.Helper()
	v, ok, err := d.m.arg(in, path...)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("%s: %s is not set", in.addr, strings.Join(path, "."))
	}
	s, err := str(v, in.addr+"."+strings.Join(path, "."))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// follow resolves a reference to attr of some instance of typ, e.g. the ARN of a queue.
func (d *deployment) follow(t tb, v cty.Value, typ, attr, what string) (instance, bool) {
	t.Helper()
	in, a, ok := d.m.ref(v)
	if !ok || !strings.HasPrefix(in.addr, typ+".") || a != attr {
		t.Errorf("%s is %#v: want the %s of a %s", what, v, attr, typ)
		return instance{}, false
	}
	return in, true
}

// envString is a function's variable as a known string ("" when it is not set).
func (f lambdaFn) envString(t tb, name string) string {
	t.Helper()
	v, ok := f.env[name]
	if !ok {
		return ""
	}
	s, err := str(v, f.inst.addr+" "+name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// queuePrefix is the KARMA_QUEUE_PREFIX every function that sets it agrees on.
func (d *deployment) queuePrefix(t tb) string {
	t.Helper()
	prefix := ""
	for _, name := range slices.Sorted(maps.Keys(d.functions)) {
		p := d.functions[name].envString(t, "KARMA_QUEUE_PREFIX")
		if p == "" {
			continue
		}
		if prefix != "" && p != prefix {
			t.Fatalf("function %s: KARMA_QUEUE_PREFIX=%q, others have %q", name, p, prefix)
		}
		prefix = p
	}
	if prefix == "" {
		t.Fatal("no function sets KARMA_QUEUE_PREFIX")
	}
	return prefix
}

// bus is the bus every function publishes to (KARMA_EVENT_BUS): the reference, and its name.
func (d *deployment) bus(t tb) (ref cty.Value, name string) {
	t.Helper()
	for _, fn := range slices.Sorted(maps.Keys(d.functions)) {
		v, ok := d.functions[fn].env["KARMA_EVENT_BUS"]
		if !ok {
			t.Fatalf("function %s: KARMA_EVENT_BUS is not set", fn)
		}
		if ref == cty.NilVal {
			ref = v
		} else if !v.RawEquals(ref) {
			t.Fatalf("function %s: KARMA_EVENT_BUS is %#v, others have %#v", fn, v, ref)
		}
	}
	in, ok := d.follow(t, ref, "aws_cloudwatch_event_bus", "name", "KARMA_EVENT_BUS")
	if !ok {
		t.FailNow()
	}
	return ref, d.mustString(t, in, "name")
}

// rule is an EventBridge rule as deployed: its bus, pattern and targets.
type rule struct {
	inst    instance
	name    string
	bus     cty.Value // the event_bus_name argument (null: the default bus)
	pattern map[string]any
	targets []target
}

type target struct {
	inst  instance
	id    string
	queue string // the SQS name of the queue it delivers to ("" if not a queue)
}

func (d *deployment) rules(t tb) []*rule {
	t.Helper()
	ins, err := d.m.allInstances("aws_cloudwatch_event_rule")
	if err != nil {
		t.Fatal(err)
	}
	var out []*rule
	byAddr := map[string]*rule{}
	for _, in := range ins {
		r := &rule{inst: in, name: d.mustString(t, in, "name"), bus: cty.NullVal(cty.String)}
		if v, ok, err := d.m.arg(in, "event_bus_name"); err != nil {
			t.Fatal(err)
		} else if ok {
			r.bus = v
		}
		if v, ok, err := d.m.arg(in, "event_pattern"); err != nil {
			t.Fatal(err)
		} else if ok {
			p, err := str(v, in.addr+".event_pattern")
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(p), &r.pattern); err != nil {
				t.Fatalf("%s.event_pattern: %v", in.addr, err)
			}
		}
		out = append(out, r)
		byAddr[in.addr] = r
	}
	tgts, err := d.m.allInstances("aws_cloudwatch_event_target")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range tgts {
		v, _, err := d.m.arg(in, "rule")
		if err != nil {
			t.Fatal(err)
		}
		ri, ok := d.follow(t, v, "aws_cloudwatch_event_rule", "name", in.addr+".rule")
		if !ok {
			continue
		}
		r := byAddr[ri.addr]
		tg := target{inst: in, id: d.mustString(t, in, "target_id")}
		arn, _, err := d.m.arg(in, "arn")
		if err != nil {
			t.Fatal(err)
		}
		if qi, a, ok := d.m.ref(arn); ok && strings.HasPrefix(qi.addr, "aws_sqs_queue.") && a == "arn" {
			tg.queue = d.mustString(t, qi, "name")
		}
		// A target names the rule's bus too, or EventBridge looks for the rule on the default bus.
		bus := cty.NullVal(cty.String)
		if b, ok, err := d.m.arg(in, "event_bus_name"); err != nil {
			t.Fatal(err)
		} else if ok {
			bus = b
		}
		if !bus.RawEquals(r.bus) {
			t.Errorf("%s: event_bus_name %#v, but its rule %s is on %#v", in.addr, bus, r.inst.addr, r.bus)
		}
		r.targets = append(r.targets, tg)
	}
	return out
}

func stringList(v any) ([]string, bool) {
	l, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(l))
	for _, e := range l {
		s, ok := e.(string)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// diff says what want has that got lacks and the other way round.
func diff(got, want []string) string {
	var missing, extra []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			extra = append(extra, g)
		}
	}
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, "missing "+strings.Join(missing, ", "))
	}
	if len(extra) > 0 {
		parts = append(parts, "not routed there by pipeline.Routes: "+strings.Join(extra, ", "))
	}
	return strings.Join(parts, "; ")
}

// TestRoutingFollowsPipelineRoutes: the karma bus has exactly the rules eventbridge.Rules
// derives from pipeline.Routes (for every stage a rule whose detail-type list is the types
// routed to it; audit gets every type), each delivering to its stage's queue, which has its
// dead-letter queue and is consumed by the function of that stage; the Parameter Store rule
// feeds the ingest queue.
func TestRoutingFollowsPipelineRoutes(t *testing.T) {
	checkRouting(t, load(t, moduleDir()))
}

func checkRouting(t tb, d *deployment) {
	t.Helper()
	prefix := d.queuePrefix(t)
	busRef, busName := d.bus(t)
	want := eventbridge.Rules(busName, func(stage string) string { return prefix + stage })

	onBus := map[string]*rule{}
	var ssmRules []*rule
	for _, r := range d.rules(t) {
		switch {
		case r.bus.RawEquals(busRef):
			onBus[r.name] = r
		case r.bus.IsNull() && fmt.Sprint(r.pattern["source"]) == "[aws.ssm]":
			ssmRules = append(ssmRules, r)
		}
	}
	wantNames := map[string]bool{}
	stages := []string{}
	for _, w := range want {
		wantNames[w.Name] = true
		stages = append(stages, w.Stage)
		r, ok := onBus[w.Name]
		if !ok {
			t.Errorf("no rule %s on the karma bus: stage %s gets no messages", w.Name, w.Stage)
			continue
		}
		var wp map[string]any
		if err := json.Unmarshal([]byte(w.Pattern), &wp); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(r.pattern["source"]) != fmt.Sprint(wp["source"]) {
			t.Errorf("rule %s (%s): source %v, want %v", w.Name, r.inst.addr, r.pattern["source"], wp["source"])
		}
		gotTypes, gotOK := stringList(r.pattern["detail-type"])
		wantTypes, wantOK := stringList(wp["detail-type"])
		switch {
		case !wantOK && r.pattern["detail-type"] != nil:
			t.Errorf("rule %s (%s): detail-type %v, want every type (no detail-type filter)", w.Name, r.inst.addr, gotTypes)
		case wantOK && !gotOK:
			t.Errorf("rule %s (%s): pattern %v has no detail-type list; want %v", w.Name, r.inst.addr, r.pattern, wantTypes)
		case wantOK:
			if msg := diff(gotTypes, wantTypes); msg != "" {
				t.Errorf("rule %s (%s): detail-types differ from pipeline.Routes for stage %s: %s", w.Name, r.inst.addr, w.Stage, msg)
			}
		}
		for k := range r.pattern {
			if k != "source" && k != "detail-type" {
				t.Errorf("rule %s (%s): pattern has %q, which eventbridge.Rules does not", w.Name, r.inst.addr, k)
			}
		}
		if len(r.targets) != 1 {
			t.Errorf("rule %s (%s): %d targets, want one: the %s queue", w.Name, r.inst.addr, len(r.targets), w.Stage)
			continue
		}
		tg := r.targets[0]
		if tg.id != w.Target.ID {
			t.Errorf("rule %s: target id %q, want %q (eventbridge.Rules)", w.Name, tg.id, w.Target.ID)
		}
		if tg.queue != w.Target.ARN {
			t.Errorf("rule %s: delivers to queue %q, want %q", w.Name, tg.queue, w.Target.ARN)
		}
	}
	for name, r := range onBus {
		if !wantNames[name] {
			t.Errorf("rule %s (%s) on the karma bus is not one eventbridge.Rules derives from pipeline.Routes", name, r.inst.addr)
		}
	}

	// Parameter Store events under the prefix the functions use feed ingest (ssmevent.Classify
	// takes names starting with <prefix>/).
	stages = append(stages, pipeline.StageIngest)
	paramPrefix := d.functions[pipeline.StageIngest].envString(t, "KARMA_PREFIX")
	fed := false
	for _, r := range ssmRules {
		for _, tg := range r.targets {
			if tg.queue != prefix+pipeline.StageIngest {
				continue
			}
			fed = true
			var p struct {
				Detail struct{ Name []struct{ Prefix string } } `json:"detail"`
			}
			b, _ := json.Marshal(r.pattern)
			if json.Unmarshal(b, &p) != nil || len(p.Detail.Name) != 1 || p.Detail.Name[0].Prefix != paramPrefix+"/" {
				t.Errorf("rule %s (%s): pattern %s, want detail.name prefix %q (the ingest function's KARMA_PREFIX + /)", r.name, r.inst.addr, b, paramPrefix+"/")
			}
		}
	}
	if !fed {
		t.Errorf("no rule on the default bus delivers aws.ssm events to the %s queue", prefix+pipeline.StageIngest)
	}

	// Every routed stage (and audit, ingest): a queue with its DLQ, consumed by its function.
	consumers := d.consumers(t)
	sort.Strings(stages)
	for _, stage := range slices.Compact(stages) {
		name := prefix + stage
		q, ok := d.queues[name]
		if !ok {
			t.Errorf("stage %s: no queue %s", stage, name)
			continue
		}
		rp, ok, err := d.m.arg(q, "redrive_policy")
		if err != nil {
			t.Fatal(err)
		}
		var policy struct {
			DeadLetterTargetArn string
			MaxReceiveCount     int
		}
		if s, err := str(rp, q.addr+".redrive_policy"); !ok || err != nil || json.Unmarshal([]byte(s), &policy) != nil {
			t.Errorf("queue %s (%s): no redrive policy (%v)", name, q.addr, err)
		} else {
			dlq, ok := d.follow(t, cty.StringVal(policy.DeadLetterTargetArn), "aws_sqs_queue", "arn", q.addr+" dead-letter target")
			if ok && d.mustString(t, dlq, "name") != sqs.DeadLetterQueueName(name) {
				t.Errorf("queue %s: dead-letter queue %s, want %s", name, d.mustString(t, dlq, "name"), sqs.DeadLetterQueueName(name))
			}
			if policy.MaxReceiveCount != queue.DefaultMaxReceives {
				t.Errorf("queue %s: maxReceiveCount %d, want %d (queue.DefaultMaxReceives)", name, policy.MaxReceiveCount, queue.DefaultMaxReceives)
			}
		}
		fns := consumers[name]
		if len(fns) != 1 {
			t.Errorf("queue %s: consumed by %d functions %v, want one", name, len(fns), fns)
			continue
		}
		fn := d.functions[fns[0]]
		if got := fn.envString(t, "KARMA_STAGE"); got != stage {
			t.Errorf("queue %s is consumed by %s, whose KARMA_STAGE is %q: want %q", name, fn.inst.addr, got, stage)
		}
	}
}

// consumers: SQS name -> the functions an event source mapping feeds from that queue.
func (d *deployment) consumers(t tb) map[string][]string {
	t.Helper()
	maps, err := d.m.allInstances("aws_lambda_event_source_mapping")
	if err != nil {
		t.Fatal(err)
	}
	fnByAddr := map[string]string{}
	for k, f := range d.functions {
		fnByAddr[f.inst.addr] = k
	}
	out := map[string][]string{}
	for _, in := range maps {
		src, _, err := d.m.arg(in, "event_source_arn")
		if err != nil {
			t.Fatal(err)
		}
		q, ok := d.follow(t, src, "aws_sqs_queue", "arn", in.addr+".event_source_arn")
		if !ok {
			continue
		}
		fv, _, err := d.m.arg(in, "function_name")
		if err != nil {
			t.Fatal(err)
		}
		fi, a, ok := d.m.ref(fv)
		if !ok || !strings.HasPrefix(fi.addr, "aws_lambda_function.") || (a != "arn" && a != "function_name") {
			t.Errorf("%s.function_name is %#v: want a function of this module", in.addr, fv)
			continue
		}
		name := d.mustString(t, q, "name")
		out[name] = append(out[name], fnByAddr[fi.addr])
	}
	return out
}
