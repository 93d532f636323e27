package terraform

// iam_test.go: what each function's role may do to the records Karma keeps — the lineage in
// Neptune and the audit log — is no more than what its code does to them.

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/eventbridge"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
)

// statement is one statement of a function's inline policy, as the plan evaluates it.
type statement struct {
	sid, effect string
	actions     []string
	resources   []string
	conditions  map[string][]string // "test variable" -> values
}

// policyStatements evaluates the statements of fn's role: its inline policy
// (data.aws_iam_policy_document.function[fn]: the static statements and each dynamic one whose
// for_each is not empty for fn) and those of every managed policy of this module attached to
// it (aws_iam_role_policy_attachment of an aws_iam_policy made of a policy document here).
func policyStatements(t tb, m *module, fn string) []statement {
	t.Helper()
	sts := documentStatements(t, m, "data.aws_iam_policy_document.function", fn)
	atts, err := m.allInstances("aws_iam_role_policy_attachment")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range atts {
		rv, _, err := m.arg(a, "role")
		if err != nil {
			t.Fatal(err)
		}
		if role, _, ok := m.ref(rv); !ok || role.addr != fmt.Sprintf("aws_iam_role.function[%q]", fn) {
			continue
		}
		pv, _, err := m.arg(a, "policy_arn")
		if err != nil {
			t.Fatal(err)
		}
		p, attr, ok := m.ref(pv)
		if !ok || !strings.HasPrefix(p.addr, "aws_iam_policy.") || attr != "arn" {
			continue // a policy from outside (plan_policy_arns, apply_policy_arns)
		}
		dv, _, err := m.arg(p, "policy")
		if err != nil {
			t.Fatal(err)
		}
		doc, attr, ok := m.ref(dv)
		if !ok || !strings.HasPrefix(doc.addr, "data.aws_iam_policy_document.") || attr != "json" {
			t.Fatalf("%s.policy is %#v: want the json of a policy document", p.addr, dv)
		}
		key := doc.addr[:strings.IndexByte(doc.addr+"[", '[')]
		sts = append(sts, documentStatements(t, m, key, doc.key)...)
	}
	return sts
}

// documentStatements evaluates the statements of the instance key of the policy document
// block doc ("" for a single instance).
func documentStatements(t tb, m *module, doc, key string) []statement {
	t.Helper()
	docs, err := m.instances(doc)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(docs, func(in instance) bool { return in.key == key })
	if i < 0 {
		t.Fatalf("no %s[%q]", doc, key)
	}
	in := docs[i]
	strs := func(b *hclsyntax.Body, name string) []string {
		a := b.Attributes[name]
		if a == nil {
			return nil
		}
		v, err := m.eval(a.Expr, &in)
		if err != nil {
			t.Fatalf("%s: %s: %v", in.addr, name, err)
		}
		if !v.IsWhollyKnown() || v.IsNull() {
			t.Fatalf("%s: %s is %#v, want a known list", in.addr, name, v)
		}
		var out []string
		if v.Type() == cty.String {
			return []string{v.AsString()}
		}
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			s, err := str(e, in.addr+" "+name)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	one := func(b *hclsyntax.Body) statement {
		st := statement{effect: "Allow", actions: strs(b, "actions"), resources: strs(b, "resources"), conditions: map[string][]string{}}
		for _, c := range b.Blocks {
			if c.Type == "condition" {
				test, variable := strs(c.Body, "test"), strs(c.Body, "variable")
				if len(test) == 1 && len(variable) == 1 {
					st.conditions[test[0]+" "+variable[0]] = strs(c.Body, "values")
				}
			}
		}
		if s := strs(b, "sid"); len(s) == 1 {
			st.sid = s[0]
		}
		if e := strs(b, "effect"); len(e) == 1 {
			st.effect = e[0]
		}
		return st
	}
	var out []statement
	for _, blk := range in.block.Body.Blocks {
		switch {
		case blk.Type == "statement":
			out = append(out, one(blk.Body))
		case blk.Type == "dynamic" && len(blk.Labels) == 1 && blk.Labels[0] == "statement":
			fe := blk.Body.Attributes["for_each"]
			v, err := m.eval(fe.Expr, &in)
			if err != nil {
				t.Fatalf("%s: dynamic statement: for_each: %v", in.addr, err)
			}
			if !v.IsWhollyKnown() {
				t.Fatalf("%s: dynamic statement: for_each is unknown at plan time", in.addr)
			}
			for range v.LengthInt() {
				for _, c := range blk.Body.Blocks {
					if c.Type == "content" {
						out = append(out, one(c.Body))
					}
				}
			}
		}
	}
	return out
}

// allowed lists the actions of Allow statements of sts that start with prefix.
func allowed(sts []statement, prefix string) []string {
	var out []string
	for _, st := range sts {
		if st.effect != "Allow" {
			continue
		}
		for _, a := range st.actions {
			if strings.HasPrefix(a, prefix) && !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestOnlyGraphWriteWritesTheLineage: graph-write records the graph and the lineage in
// Neptune; the API function only reads the lineage (shared/api.Lineage: Change, Deployment,
// Deployments), so its role must not be able to write or drop any of it (nor cancel
// graph-write's queries): a compromised or buggy API would rewrite "how did we get here".
func TestOnlyGraphWriteWritesTheLineage(t *testing.T) {
	d := load(t, moduleDir())
	checkNeptuneAccess(t, d)
}

func checkNeptuneAccess(t tb, d *deployment) {
	t.Helper()
	writes := []string{"neptune-db:CancelQuery", "neptune-db:DeleteDataViaQuery", "neptune-db:WriteDataViaQuery", "neptune-db:*"}
	read := []string{"neptune-db:GetQueryStatus", "neptune-db:ReadDataViaQuery", "neptune-db:connect"}
	for _, fn := range slices.Sorted(maps.Keys(d.functions)) {
		got := allowed(policyStatements(t, d.m, fn), "neptune-db:")
		switch fn {
		case "graph-write":
			for _, a := range append(slices.Clone(read), "neptune-db:WriteDataViaQuery", "neptune-db:DeleteDataViaQuery") {
				if !slices.Contains(got, a) {
					t.Errorf("function %s: its role lacks %s (it records the graph and lineage): has %v", fn, a, got)
				}
			}
		case "api":
			if !slices.Equal(got, read) {
				t.Errorf("function %s: its role may do %v in Neptune, want only %v: the API reads the lineage, never writes it", fn, got, read)
			}
		default:
			for _, a := range got {
				if slices.Contains(writes, a) {
					t.Errorf("function %s: its role may do %s in Neptune, which its code never does", fn, a)
				}
			}
		}
	}
}

// TestAuditLogIsAppendOnly: the audit log is never lost or hidden. Every function's role
// denies, explicitly (so that no attached policy — plan_policy_arns, apply_policy_arns, e.g.
// PowerUserAccess — can lift it), every call that deletes, changes or overwrites a record of
// the audit table or removes its protections; the functions that do not use the audit log
// (no KARMA_AUDIT_TABLE) cannot put items in it either, and the ones that do can still
// append (PutItem, which TransactWriteItems' Puts need).
func TestAuditLogIsAppendOnly(t *testing.T) {
	d := load(t, moduleDir())
	checkAuditAppendOnly(t, d)
}

// auditErasing are the calls that would lose or hide a record of the audit table.
var auditErasing = []string{
	"dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:DeleteTable", "dynamodb:PartiQLDelete", "dynamodb:PartiQLUpdate",
	"dynamodb:UpdateContinuousBackups", "dynamodb:UpdateItem", "dynamodb:UpdateTable", "dynamodb:UpdateTimeToLive",
}

func checkAuditAppendOnly(t tb, d *deployment) {
	t.Helper()
	checkTableNotErased(t, d, "aws_dynamodb_table.audit.arn", "KARMA_AUDIT_TABLE", "the audit log")
}

// TestChangeSetsAreNotErased: the change sets, every change's state and history, are never
// deleted (shared/dynamo's ChangeSets has no delete; an update is a conditional PutItem): the
// same explicit Deny as the audit log's, and no PutItem for the functions that do not use them.
func TestChangeSetsAreNotErased(t *testing.T) {
	d := load(t, moduleDir())
	checkTableNotErased(t, d, "aws_dynamodb_table.change_sets.arn", "KARMA_CHANGE_SET_TABLE", "the change sets")
}

// checkTableNotErased checks every function's denies on table (as the policies name it): the
// erasing calls always, PutItem for the functions without the variable env (the table's name
// in the functions that use it), and that those that use it can still put items.
func checkTableNotErased(t tb, d *deployment, table, env, what string) {
	t.Helper()
	for _, fn := range slices.Sorted(maps.Keys(d.functions)) {
		uses := d.functions[fn].envString(t, env) != ""
		var denied, allowedHere []string
		for _, st := range policyStatements(t, d.m, fn) {
			onTable := slices.ContainsFunc(st.resources, func(r string) bool { return r == table || r == "*" })
			if !onTable {
				continue
			}
			for _, a := range st.actions {
				if st.effect == "Deny" {
					denied = append(denied, a)
				} else {
					allowedHere = append(allowedHere, a)
				}
			}
		}
		want := slices.Clone(auditErasing)
		if !uses {
			want = append(want, "dynamodb:PutItem")
		}
		for _, a := range want {
			if !slices.Contains(denied, a) && !slices.Contains(denied, "dynamodb:*") {
				t.Errorf("function %s: its role does not deny %s on %s: an attached policy could lose or hide records", fn, a, what)
			}
			if slices.Contains(allowedHere, a) {
				t.Errorf("function %s: its role allows %s on %s", fn, a, what)
			}
		}
		if uses && (slices.Contains(denied, "dynamodb:PutItem") || !slices.Contains(allowedHere, "dynamodb:PutItem")) {
			t.Errorf("function %s uses %s (%s) but cannot put items: allowed %v, denied %v", fn, what, env, allowedHere, denied)
		}
	}
}

// TestLineageIsNotErased: whatever else a role is given (plan_policy_arns, apply_policy_arns:
// PowerUserAccess allows neptune-db:*, and plan, apply and drift reach the cluster through the
// same security groups), an explicit Deny keeps every function but graph-write from writing or
// deleting the graph and lineage, and every function, graph-write included, from resetting the
// database — on the cluster the functions' own statements name.
func TestLineageIsNotErased(t *testing.T) {
	d := load(t, moduleDir())
	checkLineageDeny(t, d)
}

func checkLineageDeny(t tb, d *deployment) {
	t.Helper()
	var cluster string
	for _, st := range policyStatements(t, d.m, "graph-write") {
		if st.sid == "NeptuneData" && len(st.resources) == 1 {
			cluster = st.resources[0]
		}
	}
	if cluster == "" {
		t.Fatal("graph-write's role has no NeptuneData statement on one cluster")
	}
	for _, fn := range slices.Sorted(maps.Keys(d.functions)) {
		want := []string{"neptune-db:ResetDatabase"}
		if fn != "graph-write" {
			want = append(want, "neptune-db:WriteDataViaQuery", "neptune-db:DeleteDataViaQuery")
		}
		var denied []string
		for _, st := range policyStatements(t, d.m, fn) {
			if st.effect == "Deny" && slices.Contains(st.resources, cluster) {
				denied = append(denied, st.actions...)
			}
		}
		for _, a := range want {
			if !slices.Contains(denied, a) && !slices.Contains(denied, "neptune-db:*") {
				t.Errorf("function %s: its role does not deny %s on %s: an attached policy could erase the lineage", fn, a, cluster)
			}
		}
		if fn == "graph-write" && slices.ContainsFunc(denied, func(a string) bool { return a != "neptune-db:ResetDatabase" }) {
			t.Errorf("function graph-write: its role denies %v: it records the graph and lineage", denied)
		}
	}
}

// TestQueuesCarryOnlyWhatTheBusSends: every function's role denies, explicitly (no attached
// policy can lift it), sending to any stage queue (a message sent there directly, not through
// the bus, would be acted on with no copy in the audit queue) or to any dead-letter queue but
// its own (one put there and redriven would be too), receiving or deleting from any
// Karma queue but the one its event source mapping consumes (audit copies and dead letters
// would be lost), and purging, deleting or reconfiguring any of them; and none of these denies
// takes away what the role is granted.
func TestQueuesCarryOnlyWhatTheBusSends(t *testing.T) {
	d := load(t, moduleDir())
	checkQueueDenies(t, d)
}

func checkQueueDenies(t tb, d *deployment) {
	t.Helper()
	type grant struct{ action, resource string }
	var stages, all []string // queue ARNs, as the policies name them
	for _, name := range slices.Sorted(maps.Keys(d.queues)) {
		q := d.queues[name]
		arn := q.addr + ".arn"
		all = append(all, arn)
		if strings.HasPrefix(q.addr, "aws_sqs_queue.stage[") {
			stages = append(stages, arn)
		}
	}
	if len(stages) == 0 || len(stages) == len(all) {
		t.Fatalf("want stage queues and dead-letter queues, have %v", all)
	}
	for _, fn := range slices.Sorted(maps.Keys(d.functions)) {
		allow, deny := map[grant]bool{}, map[grant]bool{} // deny: unconditional Denies only
		for _, st := range policyStatements(t, d.m, fn) {
			if st.effect == "Deny" && len(st.conditions) > 0 {
				continue // denies some requests only (e.g. events of another detail-type)
			}
			for _, a := range st.actions {
				for _, r := range st.resources {
					if st.effect == "Deny" {
						deny[grant{a, r}] = true
					} else {
						allow[grant{a, r}] = true
					}
				}
			}
		}
		for g := range allow {
			if deny[g] {
				t.Errorf("function %s: its role both allows and denies %s on %s", fn, g.action, g.resource)
			}
		}
		consumed := 0
		for _, q := range all {
			if allow[grant{"sqs:ReceiveMessage", q}] {
				consumed++
				continue
			}
			for _, a := range []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"} {
				if !deny[grant{a, q}] {
					t.Errorf("function %s: its role does not deny %s on %s, which it does not consume", fn, a, q)
				}
			}
		}
		if consumed > 1 {
			t.Errorf("function %s: its role may receive from %d queues, want at most its own", fn, consumed)
		}
		for _, q := range stages {
			if !deny[grant{"sqs:SendMessage", q}] {
				t.Errorf("function %s: its role does not deny sqs:SendMessage on %s: only the bus feeds a stage queue", fn, q)
			}
		}
		sends := 0
		for _, q := range all {
			switch {
			case allow[grant{"sqs:SendMessage", q}]:
				sends++
			case !deny[grant{"sqs:SendMessage", q}]:
				t.Errorf("function %s: its role does not deny sqs:SendMessage on %s: a message put there and redriven would never have passed the bus", fn, q)
			}
		}
		if sends > 1 {
			t.Errorf("function %s: its role may send to %d queues, want at most its own dead-letter queue", fn, sends)
		}
		for _, q := range all {
			for _, a := range []string{"sqs:PurgeQueue", "sqs:DeleteQueue", "sqs:SetQueueAttributes"} {
				if !deny[grant{a, q}] {
					t.Errorf("function %s: its role does not deny %s on %s", fn, a, q)
				}
			}
		}
	}
}

// TestKarmaIsNotRewiredByItsFunctions: whatever an attached policy allows (PowerUserAccess:
// lambda:*, events:*), no Karma function can replace or reconfigure a Karma function (its code
// is what deploys and what records), invoke one with an event of its making (a stage would act
// on a message that never passed the bus, the API on a caller the event names), move its event
// source mapping or its asynchronous invocations' retries, change the rules that route each
// message to its stage and a copy to the audit queue, or delete, silence or rewrite the alarms
// that say something went wrong: a managed policy of explicit Denies is attached to every
// function's role.
func TestKarmaIsNotRewiredByItsFunctions(t *testing.T) {
	d := load(t, moduleDir())
	checkGuard(t, d)
}

func checkGuard(t tb, d *deployment) {
	t.Helper()
	const doc = "data.aws_iam_policy_document.guard"
	attached := map[string]bool{}
	atts, err := d.m.allInstances("aws_iam_role_policy_attachment")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range atts {
		pv, _, err := d.m.arg(a, "policy_arn")
		if err != nil {
			t.Fatal(err)
		}
		p, attr, ok := d.m.ref(pv)
		if !ok || p.addr != "aws_iam_policy.guard" || attr != "arn" {
			continue
		}
		if r, ok := d.follow(t, mustArg(t, d, a, "role"), "aws_iam_role", "name", a.addr+".role"); ok {
			attached[r.key] = true
		}
	}
	guard, err := d.m.instances("aws_iam_policy.guard")
	if err != nil {
		t.Fatal(err)
	}
	if in, ok := d.follow(t, mustArg(t, d, guard[0], "policy"), "data.aws_iam_policy_document", "json", "aws_iam_policy.guard.policy"); ok && in.addr != doc {
		t.Errorf("aws_iam_policy.guard.policy is the json of %s, want %s", in.addr, doc)
	}
	sts := documentStatements(t, d.m, doc, "")
	// denied: a Deny of action whose resources match arn (IAM's * and ? wildcards).
	denied := func(action, arn string) bool {
		for _, st := range sts {
			if st.effect == "Deny" && slices.Contains(st.actions, action) && slices.ContainsFunc(st.resources, func(r string) bool { return arnLike(r, arn) }) {
				return true
			}
		}
		return false
	}
	deniedWhen := func(action, variable, value string) bool {
		for _, st := range sts {
			if st.effect == "Deny" && slices.Contains(st.actions, action) && slices.Contains(st.resources, "*") &&
				slices.ContainsFunc(st.conditions["ArnLike "+variable], func(r string) bool { return arnLike(r, value) }) {
				return true
			}
		}
		return false
	}
	local := func(name string) string {
		v, err := d.m.local(name)
		if err != nil {
			t.Fatal(err)
		}
		s, err := str(v, "local."+name)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	arn := func(service, resource string) string {
		return "arn:" + local("partition") + ":" + service + ":" + local("region") + ":" + local("account") + ":" + resource
	}
	for _, fn := range slices.Sorted(maps.Keys(d.functions)) {
		if !attached[fn] {
			t.Errorf("function %s: aws_iam_policy.guard is not attached to its role", fn)
		}
		name := d.mustString(t, d.functions[fn].inst, "function_name")
		for _, a := range []string{"function:" + name, "function:" + name + ":live"} {
			fa := arn("lambda", a)
			for _, act := range []string{"lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration", "lambda:DeleteFunction", "lambda:PutFunctionConcurrency", "lambda:UpdateAlias",
				"lambda:InvokeFunction", "lambda:InvokeAsync", "lambda:InvokeFunctionUrl",
				"lambda:PutFunctionEventInvokeConfig", "lambda:UpdateFunctionEventInvokeConfig", "lambda:DeleteFunctionEventInvokeConfig"} {
				if !denied(act, fa) {
					t.Errorf("function %s: %s does not deny %s on %s", fn, doc, act, fa)
				}
			}
			for _, act := range []string{"lambda:CreateEventSourceMapping", "lambda:UpdateEventSourceMapping", "lambda:DeleteEventSourceMapping"} {
				if !deniedWhen(act, "lambda:FunctionArn", fa) {
					t.Errorf("function %s: %s does not deny %s for %s (lambda:FunctionArn)", fn, doc, act, fa)
				}
			}
		}
	}
	rules, err := d.m.allInstances("aws_cloudwatch_event_rule")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		res := "rule/" + d.mustString(t, r, "name")
		if bus, ok, err := d.m.arg(r, "event_bus_name"); err != nil {
			t.Fatal(err)
		} else if ok {
			b, err := str(bus, r.addr+".event_bus_name")
			if err != nil {
				t.Fatal(err)
			}
			if b != "default" {
				res = "rule/" + b + "/" + d.mustString(t, r, "name")
			}
		}
		for _, a := range []string{"events:PutRule", "events:DeleteRule", "events:DisableRule", "events:PutTargets", "events:RemoveTargets"} {
			if !denied(a, arn("events", res)) {
				t.Errorf("rule %s: %s does not deny %s on %s", r.addr, doc, a, arn("events", res))
			}
		}
	}
	// The alarms that say a stage stalled, a message was dead-lettered or a scheduled run failed
	// are not deleted, silenced or rewritten.
	alarms, err := d.m.allInstances("aws_cloudwatch_metric_alarm")
	if err != nil {
		t.Fatal(err)
	}
	if len(alarms) == 0 {
		t.Fatal("no alarm")
	}
	for _, al := range alarms {
		aa := arn("cloudwatch", "alarm:"+d.mustString(t, al, "alarm_name"))
		for _, a := range []string{"cloudwatch:DeleteAlarms", "cloudwatch:DisableAlarmActions", "cloudwatch:PutMetricAlarm"} {
			if !denied(a, aa) {
				t.Errorf("alarm %s: %s does not deny %s on %s", al.addr, doc, a, aa)
			}
		}
	}
	// The patterns name Karma's own only: nothing of a component named otherwise.
	for _, other := range []string{arn("lambda", "function:my-app"), arn("events", "rule/my-app-nightly"), arn("cloudwatch", "alarm:my-app-errors")} {
		for _, a := range []string{"lambda:UpdateFunctionCode", "lambda:InvokeFunction", "events:PutRule", "cloudwatch:DeleteAlarms", "lambda:PutFunctionEventInvokeConfig"} {
			if denied(a, other) {
				t.Errorf("%s denies %s on %s, which is not Karma's", doc, a, other)
			}
		}
	}
}

// arnLike is IAM's ArnLike/resource matching of arn by pattern: * any characters, ? one.
func arnLike(pattern, arn string) bool {
	var b strings.Builder
	b.WriteString("^")
	for _, r := range pattern {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String()).MatchString(arn)
}

func mustArg(t tb, d *deployment, in instance, name string) cty.Value {
	t.Helper()
	v, ok, err := d.m.arg(in, name)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("%s: %s is not set", in.addr, name)
	}
	return v
}

// TestParametersKeepTheirHistory: apply writes only what workers/apply writes — each
// component's runtime and config parameters (model.RuntimeParam, model.ConfigParam) — not the
// account's environment binding (model.EnvironmentParam) nor anything else under the prefix;
// and no function, whatever an attached policy allows, deletes a parameter under the prefix
// (SSM deletes its history, which the lineage names) or rebinds the environment.
func TestParametersKeepTheirHistory(t *testing.T) {
	d := load(t, moduleDir())
	checkParameterWrites(t, d)
}

func checkParameterWrites(t tb, d *deployment) {
	t.Helper()
	var prefix string // the parameter ARN of param_prefix, as the policies name it
	for _, st := range policyStatements(t, d.m, "apply") {
		if st.sid == "ReadParameters" && len(st.resources) > 0 {
			prefix = st.resources[0]
		}
	}
	if prefix == "" {
		t.Fatal("apply's role has no ReadParameters statement")
	}
	want := []string{model.ConfigParam(prefix, "*", "*"), model.RuntimeParam(prefix, "*", "*")}
	for _, fn := range slices.Sorted(maps.Keys(d.functions)) {
		var got []string
		for _, st := range policyStatements(t, d.m, fn) {
			if st.effect == "Allow" && (slices.Contains(st.actions, "ssm:PutParameter") || slices.Contains(st.actions, "ssm:*")) {
				got = append(got, st.resources...)
			}
		}
		slices.Sort(got)
		if fn == "apply" {
			if !slices.Equal(got, want) {
				t.Errorf("function apply may put parameters %v, want exactly %v (workers/apply writes these only)", got, want)
			}
		} else if len(got) > 0 {
			t.Errorf("function %s may put parameters %v: it writes none", fn, got)
		}
	}
	sts := documentStatements(t, d.m, "data.aws_iam_policy_document.guard", "")
	denies := func(action, resource string) bool {
		for _, st := range sts {
			if st.effect == "Deny" && slices.Contains(st.actions, action) && slices.Contains(st.resources, resource) {
				return true
			}
		}
		return false
	}
	for _, a := range []string{"ssm:DeleteParameter", "ssm:DeleteParameters"} {
		for _, r := range []string{prefix, prefix + "/*"} {
			if !denies(a, r) {
				t.Errorf("the guard policy does not deny %s on %s: a parameter's history would go with it", a, r)
			}
		}
	}
	if env := model.EnvironmentParam(prefix); !denies("ssm:PutParameter", env) {
		t.Errorf("the guard policy does not deny ssm:PutParameter on %s, the account's environment binding", env)
	}
}

// published is what each function's code publishes to the bus, stated by hand from cmd/lambda
// and what it calls: each message type with a file that builds it (checked below: the file
// passes the type's constant to message.New, Derive, MustDerive or the triggers' newTrigger).
var published = map[string]map[string]string{
	"ingest": {
		"change.detected":   "workers/ingest/ingest.go",    // the stage's output
		"parameter.changed": "shared/trigger/parameter.go", // a Parameter Store event (shared/lambda/parameterevents.go)
	},
	"resolve": {
		"change.resolved":      "workers/resolve/roots.go",
		"deployment.scheduled": "workers/resolve/roots.go",
		"deployment.skipped":   "workers/resolve/roots.go",
		"change.detected":      "shared/promotion/promotion.go", // the next environment (workers/resolve/promotion.go)
	},
	"graph-write": {"deployment.recorded": "workers/graphwrite/graphwrite.go"},
	"plan":        {"deployment.planned": "workers/plan/plan.go", "deployment.failed": "workers/plan/plan.go"},
	"apply": {
		"deployment.applied": "workers/apply/apply.go",
		"deployment.failed":  "workers/apply/apply.go",
		"deployment.planned": "workers/apply/stale.go", // a stale plan planned again
	},
	"audit":     {},
	"reconcile": {"parameter.changed": "shared/trigger/parameter.go"}, // trigger.Reconciler
	"drift":     {"drift.detected": "shared/drift/record.go", "change.detected": "shared/drift/record.go"},
	"promote":   {"change.detected": "shared/promotion/promotion.go"},
	"webhook":   {"git.pushed": "shared/trigger/push.go"}, // shared/httpapi/webhook.go, trigger.Commits
	"api": {
		"change.detected":     "shared/trigger/trigger.go",   // request-change, rollback (trigger.FromRequest, FromRollback); promote (shared/promotion)
		"deployment.approved": "shared/changeset/approve.go", // approve
		"change.rejected":     "shared/changeset/reject.go",  // reject
	},
}

// builtOffAWS: the message types the code builds that no function publishes, and why.
var builtOffAWS = map[string]string{
	"change.expired": "changeset.Sweep runs in the CLI (karma expire, karma plan/apply) and karma serve only (docs/pipeline.md, Expiry)",
}

// TestFunctionsPublishOnlyTheirOwnTypes: each function's role may put on the karma bus only
// events of source "karma" (eventbridge.Source) and the detail-types its code publishes
// (published), and explicitly denies every other, so that no attached policy (PowerUserAccess
// allows events:*) lifts it: a webhook or API function that could publish any type could forge
// a deployment.applied or a parameter.changed, which the stages would act on and the audit log
// record. The audit function publishes nothing. Every type the code builds is published by some
// function or named in builtOffAWS.
func TestFunctionsPublishOnlyTheirOwnTypes(t *testing.T) {
	built, err := builtMessageTypes(filepath.Join(moduleDir(), ".."))
	if err != nil {
		t.Fatal(err)
	}
	checkPublishing(t, load(t, moduleDir()), built)
}

func checkPublishing(t tb, d *deployment, built map[string][]string) {
	t.Helper()
	const bus = "aws_cloudwatch_event_bus.karma.arn"
	source := []string{eventbridge.Source}
	publishedSomewhere := map[string]bool{}
	for fn, types := range published {
		for typ, file := range types {
			publishedSomewhere[typ] = true
			if _, ok := message.Latest[typ]; !ok {
				t.Errorf("published[%s]: %s is no message type", fn, typ)
			}
			if !slices.Contains(built[typ], file) {
				t.Errorf("published[%s]: %s does not build %s (built in %v)", fn, file, typ, built[typ])
			}
		}
	}
	for _, typ := range slices.Sorted(maps.Keys(built)) {
		if _, ok := builtOffAWS[typ]; !publishedSomewhere[typ] && !ok {
			t.Errorf("the code builds %s (%v), which no function publishes: add it to published, or say why in builtOffAWS", typ, built[typ])
		}
	}
	for _, typ := range slices.Sorted(maps.Keys(builtOffAWS)) {
		switch {
		case publishedSomewhere[typ]:
			t.Errorf("builtOffAWS lists %s, which published has", typ)
		case len(built[typ]) == 0:
			t.Errorf("builtOffAWS lists %s, which the code does not build", typ)
		}
	}
	for _, fn := range slices.Sorted(maps.Keys(d.functions)) {
		types, ok := published[fn]
		if !ok {
			t.Errorf("function %s: published does not say what it publishes", fn)
			continue
		}
		want := slices.Sorted(maps.Keys(types))
		var allows, denyTypes, denySources, denyAll int
		for _, st := range policyStatements(t, d.m, fn) {
			if !slices.Contains(st.actions, "events:PutEvents") && !slices.Contains(st.actions, "events:*") {
				continue
			}
			onBus := slices.Contains(st.resources, bus) || slices.Contains(st.resources, "*")
			if st.effect == "Allow" {
				allows++
				got := slices.Sorted(slices.Values(st.conditions["StringEquals events:detail-type"]))
				if len(want) == 0 {
					t.Errorf("function %s publishes nothing, but its role allows events:PutEvents (statement %q)", fn, st.sid)
				} else if !slices.Equal(got, want) {
					t.Errorf("function %s: its role may put events of detail-type %v on the bus, want exactly %v: the types its code publishes", fn, got, want)
				}
				if got := st.conditions["StringEquals events:source"]; !slices.Equal(got, source) {
					t.Errorf("function %s: its role may put events of source %v, want %v", fn, got, source)
				}
				continue
			}
			if !onBus {
				continue
			}
			switch {
			case len(st.conditions) == 0:
				denyAll++
			case len(st.conditions) == 1 && slices.Equal(slices.Sorted(slices.Values(st.conditions["StringNotEquals events:detail-type"])), want):
				denyTypes++
			case len(st.conditions) == 1 && slices.Equal(st.conditions["StringNotEquals events:source"], source):
				denySources++
			}
		}
		switch {
		case len(want) == 0 && denyAll == 0:
			t.Errorf("function %s publishes nothing, but its role does not deny events:PutEvents on the bus: an attached policy could let it publish", fn)
		case len(want) > 0 && allows != 1:
			t.Errorf("function %s: %d statements allow events:PutEvents, want 1", fn, allows)
		case len(want) > 0 && (denyTypes == 0 || denySources == 0):
			t.Errorf("function %s: its role does not deny, explicitly, putting events on the bus of a detail-type other than %v (%d) or a source other than %v (%d): an attached policy (events:*) could let it forge any", fn, want, denyTypes, source, denySources)
		}
	}
}

// builtMessageTypes returns, for each message type, the files (relative to root, sorted) of the
// non-test Go code under shared/ and workers/ — not cmd/karma, the CLI, nor the test helper
// packages (*test) — that pass its constant first to message.New, Derive, MustDerive or
// newTrigger: the messages the code builds.
func builtMessageTypes(root string) (map[string][]string, error) {
	fset := token.NewFileSet()
	msg, err := parseDir(fset, filepath.Join(root, "shared", "message"))
	if err != nil {
		return nil, err
	}
	consts := stringConsts(msg, "message.", nil)
	out := map[string][]string{}
	for _, top := range []string{"shared", "workers"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() {
				if strings.HasSuffix(e.Name(), "test") || e.Name() == "testdata" || path == filepath.Join(root, "shared", "message") {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || len(call.Args) == 0 {
					return true
				}
				var name string
				switch fn := call.Fun.(type) {
				case *ast.Ident:
					name = fn.Name
				case *ast.SelectorExpr:
					name = fn.Sel.Name
				}
				if name != "New" && name != "Derive" && name != "MustDerive" && name != "newTrigger" {
					return true
				}
				sel, ok := call.Args[0].(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "message" {
					if typ, ok := consts["message."+sel.Sel.Name]; ok && !slices.Contains(out[typ], rel) {
						out[typ] = append(out[typ], rel)
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for typ := range out {
		slices.Sort(out[typ])
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no message built under %s: the scan lost track of the code", root)
	}
	return out, nil
}

// ownChains: the audit chains the webhook and the API append to (examples of each kind their
// code writes), and chains they must not be able to append to. The audit function appends to
// every chain: a message's component's ("<env>/<type>/<nickname>") or its change's.
var ownChains = map[string]struct{ writes, not []string }{
	"webhook": { // shared/httpapi/webhook.go: ignored pushes, refused deliveries
		writes: []string{audit.SpreadChain("triggers", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"), audit.SpreadChain("security", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c")},
		not:    []string{message.ComponentRef{Type: "network", Nickname: "core"}.ID("prod"), "change/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", audit.CheckpointChain},
	},
	"api": { // shared/api/audit.go: accepted writes beside their change's messages, refused requests
		writes: []string{"change/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", audit.SpreadChain("security", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c")},
		not:    []string{message.ComponentRef{Type: "network", Nickname: "core"}.ID("prod"), audit.SpreadChain("triggers", "x"), audit.CheckpointChain},
	},
}

// TestWebhookAndAPIAppendOnlyToTheirOwnChains: the audit log records a deployment in its
// component's chain, hash-chained; a function that can put any item in the audit table and read
// the chain's head can append a record of a deployment that did not happen, with a valid hash.
// The webhook and the API append their own entries only: their roles may put items only under
// the partition keys shared/dynamo gives their chains (CHAIN#<chain>), a message id marker
// (MSG#), the chain and day directories (CHAINS, DAYS) — not a component's chain.
func TestWebhookAndAPIAppendOnlyToTheirOwnChains(t *testing.T) {
	keys, err := auditKeys(filepath.Join(moduleDir(), ".."))
	if err != nil {
		t.Fatal(err)
	}
	checkAuditAppends(t, load(t, moduleDir()), keys)
}

// auditKeyNames are the partition keys shared/dynamo's AuditLog puts when it appends.
type auditKeyNames struct{ chainPrefix, msgPrefix, chains, days string }

// auditKeys reads them from shared/dynamo's constants.
func auditKeys(root string) (auditKeyNames, error) {
	files, err := parseDir(token.NewFileSet(), filepath.Join(root, "shared", "dynamo"))
	if err != nil {
		return auditKeyNames{}, err
	}
	c := stringConsts(files, "", nil)
	k := auditKeyNames{c["chainPrefix"], c["msgPrefix"], c["chainsPK"], c["daysPK"]}
	if k.chainPrefix == "" || k.msgPrefix == "" || k.chains == "" || k.days == "" {
		return k, fmt.Errorf("shared/dynamo: the audit log's key constants (chainPrefix, msgPrefix, chainsPK, daysPK) are not all there: %+v", k)
	}
	return k, nil
}

func checkAuditAppends(t tb, d *deployment, k auditKeyNames) {
	t.Helper()
	const table = "aws_dynamodb_table.audit.arn"
	for _, fn := range slices.Sorted(maps.Keys(d.functions)) {
		var puts []statement
		for _, st := range policyStatements(t, d.m, fn) {
			if st.effect == "Allow" && slices.Contains(st.resources, table) &&
				(slices.Contains(st.actions, "dynamodb:PutItem") || slices.Contains(st.actions, "dynamodb:*")) {
				puts = append(puts, st)
			}
		}
		own, limited := ownChains[fn]
		if !limited {
			continue // audit appends to every chain; the others put nothing (TestAuditLogIsAppendOnly)
		}
		if len(puts) == 0 {
			t.Errorf("function %s appends to the audit log but its role cannot put items in it", fn)
			continue
		}
		// may: some statement lets fn put an item with partition key pk.
		may := func(pk string) bool {
			for _, st := range puts {
				if len(st.conditions) == 0 {
					return true
				}
				if len(st.conditions) == 1 && slices.ContainsFunc(st.conditions["ForAllValues:StringLike dynamodb:LeadingKeys"], func(p string) bool { return arnLike(p, pk) }) {
					return true
				}
			}
			return false
		}
		for _, chain := range own.writes {
			for _, pk := range []string{k.chainPrefix + chain, k.msgPrefix + "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", k.chains, k.days} {
				if !may(pk) {
					t.Errorf("function %s appends to chain %s but its role cannot put an item with partition key %s: its entries would be lost", fn, chain, pk)
				}
			}
		}
		for _, chain := range own.not {
			if pk := k.chainPrefix + chain; may(pk) {
				t.Errorf("function %s may put items with partition key %s: it could append to chain %s, which its code never writes (a forged record)", fn, pk, chain)
			}
		}
	}
}
