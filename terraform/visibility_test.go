package terraform

// visibility_test.go: a message a function was handling when it died (its timeout, a crash) comes
// back after its queue's visibility timeout; by then the function's idempotency claim on it must
// have run out, or the redelivery is put back (InProgress) and spends one of the receives SQS
// allows before it dead-letters the message. So each stage queue's visibility timeout is at
// least its function's timeout plus the claim's lease (cmd/lambda's claimLeaseSeconds).

import (
	"go/ast"
	"go/token"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

// lambdaClaimLease reads claimLeaseSeconds from cmd/lambda's source.
func lambdaClaimLease(t *testing.T) int {
	t.Helper()
	files, err := parseDir(token.NewFileSet(), filepath.Join(moduleDir(), "..", "cmd", "lambda"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		obj := f.Scope.Lookup("claimLeaseSeconds")
		if obj == nil || obj.Kind != ast.Con {
			continue
		}
		vs := obj.Decl.(*ast.ValueSpec)
		for i, n := range vs.Names {
			if n.Name != "claimLeaseSeconds" || i >= len(vs.Values) {
				continue
			}
			if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.INT {
				v, err := strconv.Atoi(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatal("cmd/lambda: no constant claimLeaseSeconds with an integer literal value")
	return 0
}

func TestQueueVisibilityOutlastsTheFunctionAndItsClaim(t *testing.T) {
	lease := lambdaClaimLease(t)
	d := load(t, moduleDir())
	maps, err := d.m.allInstances("aws_lambda_event_source_mapping")
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) == 0 {
		t.Fatal("no event source mapping")
	}
	num := func(in instance, arg string) int {
		t.Helper()
		v, ok, err := d.m.arg(in, arg)
		if err != nil || !ok || !v.IsKnown() || v.IsNull() || v.Type() != cty.Number {
			t.Fatalf("%s.%s = %#v (%v): want a known number", in.addr, arg, v, err)
		}
		n, _ := v.AsBigFloat().Int64()
		return int(n)
	}
	for _, esm := range maps {
		src, _, _ := d.m.arg(esm, "event_source_arn")
		fn, _, _ := d.m.arg(esm, "function_name")
		q, ok := d.follow(t, src, "aws_sqs_queue", "arn", esm.addr+".event_source_arn")
		if !ok {
			continue
		}
		f, ok := d.follow(t, fn, "aws_lambda_function", "arn", esm.addr+".function_name")
		if !ok {
			continue
		}
		vis, timeout := num(q, "visibility_timeout_seconds"), num(f, "timeout")
		if vis < timeout+lease {
			t.Errorf("%s: visibility timeout %d s < the function's timeout %d s + its claim's lease %d s: a message whose function died comes back while the claim still holds it",
				q.addr, vis, timeout, lease)
		}
	}
}
