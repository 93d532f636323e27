package terraform

// iam_test.go: what each function's role may do to the records Karma keeps — the lineage in
// Neptune and the audit log — is no more than what its code does to them.

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// statement is one statement of a function's inline policy, as the plan evaluates it.
type statement struct {
	sid, effect string
	actions     []string
	resources   []string
}

// policyStatements evaluates the statements of data.aws_iam_policy_document.function[fn]: the
// static ones and each dynamic one whose for_each is not empty for fn.
func policyStatements(t tb, m *module, fn string) []statement {
	t.Helper()
	docs, err := m.instances("data.aws_iam_policy_document.function")
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(docs, func(in instance) bool { return in.key == fn })
	if i < 0 {
		t.Fatalf("no data.aws_iam_policy_document.function[%q]", fn)
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
		st := statement{effect: "Allow", actions: strs(b, "actions"), resources: strs(b, "resources")}
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
// the bus, would be acted on with no copy in the audit queue), receiving or deleting from any
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
		allow, deny := map[grant]bool{}, map[grant]bool{}
		for _, st := range policyStatements(t, d.m, fn) {
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
		for _, q := range all {
			for _, a := range []string{"sqs:PurgeQueue", "sqs:DeleteQueue", "sqs:SetQueueAttributes"} {
				if !deny[grant{a, q}] {
					t.Errorf("function %s: its role does not deny %s on %s", fn, a, q)
				}
			}
		}
	}
}
