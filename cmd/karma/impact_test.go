package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/graph"
)

// TestImpactOfAFunctionRuntime: lambda/<function> names the runtime a lambda component writes
// for that function; the impact follows only the components reading it.
func TestImpactOfAFunctionRuntime(t *testing.T) {
	repo, err := filepath.Abs(filepath.Join("..", "..", "shared", "model", "testdata", "rules"))
	if err != nil {
		t.Fatal(err)
	}
	flags := []string{"--repo", repo, "--state-dir", t.TempDir(), "--env", "prod", "--json"}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"lambda/cart"}, "prod/lambda/shop,prod/ecs-service/audit,prod/serverless-api/shop"},
		{[]string{"lambda/cart", "--keys", "function_name"}, "prod/lambda/shop"},
		{[]string{"lambda/checkout", "--keys", "function_name"}, "prod/lambda/shop,prod/ecs-service/audit"},
		{[]string{"lambda/shop", "--keys", "function_name"}, "prod/lambda/shop,prod/ecs-service/audit"},
	}
	for _, c := range cases {
		code, out, stderr := karma(t, append(append([]string{"impact"}, c.args...), flags...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", c.args, code, stderr)
		}
		var d graph.ImpactReport
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range d.Affected {
			got = append(got, a.ID)
		}
		if strings.Join(got, ",") != c.want {
			t.Errorf("impact %v: %v, want %s", c.args, got, c.want)
		}
	}
	code, _, stderr := karma(t, append([]string{"impact", "lambda/cart", "vpc/core"}, flags...)...)
	if code != 2 || !strings.Contains(stderr, "lambda/cart is a runtime prod/lambda/shop writes (/iac/lambda/cart/runtime): name it alone") {
		t.Errorf("two names, one a function runtime: exit %d: %s", code, stderr)
	}
}

// A --type no component has (a misspelling) is refused with the types there are, exit 2, as
// GET /impact?type= answers 404 — not an impact of nothing. A type that is there still filters.
func TestImpactOfAnUnknownType(t *testing.T) {
	examples, err := filepath.Abs(filepath.Join("..", "..", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	flags := []string{"--repo", examples, "--state-dir", t.TempDir(), "--env", "prod"}
	code, _, stderr := karma(t, append([]string{"impact", "vpc/core", "--type", "ecs_service"}, flags...)...)
	if code != 2 || !strings.Contains(stderr, `--type "ecs_service": no component of that type`) || !strings.Contains(stderr, "ecs-service") {
		t.Errorf("a misspelt type: exit %d: %s", code, stderr)
	}
	code, out, stderr := karma(t, append([]string{"impact", "vpc/core", "--type", "ecs-service"}, flags...)...)
	if code != 0 || !strings.Contains(out, "prod/ecs-service/api") {
		t.Errorf("a type there is: exit %d: %s%s", code, out, stderr)
	}
}
