package model_test

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
)

// edgeLines renders env's edges one source a line: "from -> to kind rule pointer keys [runtime]".
func edgeLines(g *graph.Graph, env string) []string {
	var out []string
	for _, e := range g.Edges {
		from, to := g.Components[e.From], g.Components[e.To]
		if from.Env != env {
			continue
		}
		for _, s := range e.Sources {
			line := fmt.Sprintf("%s -> %s %s %s %q %s", strings.TrimPrefix(from.ID, env+"/"), strings.TrimPrefix(to.ID, env+"/"),
				s.Kind, s.Rule, s.Pointer, strings.Join(s.Keys, ","))
			if s.Runtime != "" {
				line += " via " + s.Runtime
			}
			out = append(out, line)
		}
	}
	sort.Strings(out)
	return out
}

func diagLines(res *model.Result) []string {
	var out []string
	for _, d := range res.Diagnostics {
		out = append(out, d.String())
	}
	return out
}

// TestRulesFixtureEdges: the default rules find, in testdata/rules, every dependency its modules
// have, each edge naming the rule and key behind it.
func TestRulesFixtureEdges(t *testing.T) {
	t.Parallel()
	res, err := model.Build(context.Background(), filepath.Join("testdata", "rules"), model.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d := diagLines(res); len(d) != 0 {
		t.Fatalf("diagnostics:\n%s", strings.Join(d, "\n"))
	}
	want := []string{
		`clickhouse/core -> vpc/core inferred vpc_nickname "/vpc_nickname" *`,
		`ecs-service/audit -> lambda/shop interpolation ${lambda/cart.runtime.arn} "/environment/CART_FUNCTION_ARN" arn via /iac/lambda/cart/runtime`,
		`ecs-service/audit -> lambda/shop runtime-path runtime-path "/checkout_runtime_path" * via /iac/lambda/checkout/runtime`,
		`grafana/ops -> clickhouse/core runtime-path runtime-path "/clickhouse_runtime_path" *`,
		`grafana/ops -> vpc/core runtime-path runtime-path "/vpc_runtime_path" *`,
		`lambda/shop -> vpc/core inferred vpc_nickname "/functions/checkout/vpc_nickname" *`,
		`serverless-api/shop -> lambda/shop same-nickname api-lambda "" arn`,
		`serverless-api/shop -> route53-zone/example-net attribute route53-zone-by-name "/route53_zone_name" zone_id`,
		`serverless-api/shop -> s3-bucket/shop same-nickname api-openapi-bucket "" bucket_name`,
		`serverless-site/www -> route53-zone/example-org attribute route53-zone-by-name "/route53_zone_name" zone_id`,
	}
	if got := edgeLines(res.Graph, "prod"); !reflect.DeepEqual(got, want) {
		t.Errorf("prod edges:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := edgeLines(res.Graph, "dev"); len(got) != 0 {
		t.Errorf("dev has no custom domain and no zone, so no edge; got:\n%s", strings.Join(got, "\n"))
	}
	i, _ := res.Graph.Index("prod/lambda/shop")
	if got := res.Graph.Components[i].SubRuntimePaths; !reflect.DeepEqual(got, []string{"/iac/lambda/cart/runtime", "/iac/lambda/checkout/runtime"}) {
		t.Errorf("sub-runtime paths of prod/lambda/shop = %v", got)
	}
	for _, path := range []string{"/iac/lambda/cart/runtime", "/iac/lambda/checkout/runtime"} {
		if w, ok := res.Graph.SubRuntimeWriter("prod", path); !ok || w != i {
			t.Errorf("SubRuntimeWriter(prod, %s) = %d, %v; want prod/lambda/shop", path, w, ok)
		}
	}
	if _, ok := res.Graph.SubRuntimeWriter("dev", "/iac/lambda/cart/runtime"); ok {
		t.Error("dev has no lambda, yet a writer of /iac/lambda/cart/runtime was found there")
	}
}

// TestRulesFixtureRuntimeChanges: a change of one function's runtime reaches exactly the
// dependents that read it (impact follows the parameter, not just the component).
func TestRulesFixtureRuntimeChanges(t *testing.T) {
	t.Parallel()
	res, err := model.Build(context.Background(), filepath.Join("testdata", "rules"), model.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g := res.Graph
	shop, _ := g.Index("prod/lambda/shop")
	readers := func(path string, keys ...string) []string {
		var out []string
		for _, ei := range g.Dependents(shop) {
			if e := g.Edges[ei]; e.ConsumesAnyFrom(path, keys) {
				out = append(out, g.Components[e.From].ID)
			}
		}
		sort.Strings(out)
		return out
	}
	cases := []struct {
		path string
		keys []string
		want []string
	}{
		{"/iac/lambda/cart/runtime", []string{"arn"}, []string{"prod/ecs-service/audit", "prod/serverless-api/shop"}},
		{"/iac/lambda/cart/runtime", []string{"function_name"}, nil}, // audit reads only cart's arn, the api only arns
		{"/iac/lambda/checkout/runtime", []string{"function_name"}, []string{"prod/ecs-service/audit"}},
		{"/iac/lambda/shop/runtime", []string{"arn"}, []string{"prod/serverless-api/shop"}}, // audit reads functions only
	}
	for _, c := range cases {
		if got := readers(c.path, c.keys...); !reflect.DeepEqual(got, c.want) {
			t.Errorf("change of %v in %s reaches %v, want %v", c.keys, c.path, got, c.want)
		}
	}
}

// TestSubRuntimeStatus: a lambda's runtime status, keys and hash come from its functions'
// runtimes, which its module writes instead of one document of its own.
func TestSubRuntimeStatus(t *testing.T) {
	t.Parallel()
	store := prodParams(t)
	ctx := context.Background()
	put := func(name, value string) {
		t.Helper()
		if _, err := store.Put(ctx, params.PutInput{Name: name, Value: value}); err != nil {
			t.Fatal(err)
		}
	}
	lambda := func() graph.Component {
		t.Helper()
		res, err := model.Build(ctx, filepath.Join("testdata", "rules"), model.BuildOptions{LoadOptions: model.LoadOptions{Env: "prod"},
			Params: func(string) params.Store { return store }})
		if err != nil {
			t.Fatal(err)
		}
		i, _ := res.Graph.Index("prod/lambda/shop")
		return res.Graph.Components[i]
	}
	put("/iac/lambda/checkout/runtime", `{"arn":"arn:aws:lambda:us-east-1:111122223333:function:checkout"}`)
	if c := lambda(); c.RuntimeStatus != graph.RuntimeMissing {
		t.Errorf("one function runtime of two: status %s, want missing", c.RuntimeStatus)
	}
	put("/iac/lambda/cart/runtime", `{"function_name":"cart","placeholder":true}`)
	placeholder := lambda()
	if placeholder.RuntimeStatus != graph.RuntimePlaceholder || !reflect.DeepEqual(placeholder.RuntimeKeys, []string{"arn", "function_name", "placeholder"}) {
		t.Errorf("with a placeholder function: status %s keys %v", placeholder.RuntimeStatus, placeholder.RuntimeKeys)
	}
	put("/iac/lambda/cart/runtime", `{"arn":"arn:aws:lambda:us-east-1:111122223333:function:cart"}`)
	present := lambda()
	if present.RuntimeStatus != graph.RuntimePresent || !reflect.DeepEqual(present.RuntimeKeys, []string{"arn"}) {
		t.Errorf("every function deployed: status %s keys %v", present.RuntimeStatus, present.RuntimeKeys)
	}
	if present.RuntimeHash == "" || present.RuntimeHash == placeholder.RuntimeHash {
		t.Errorf("runtime hash %q must change when a function's runtime does (was %q)", present.RuntimeHash, placeholder.RuntimeHash)
	}
}

// Refreshed gives a kept build the runtimes published since it was made, and is the build
// itself (same pointer: what was encoded of it stays valid) while nothing changed.
func TestRefreshedFollowsTheParameterStore(t *testing.T) {
	t.Parallel()
	store := prodParams(t)
	ctx := context.Background()
	opts := model.BuildOptions{LoadOptions: model.LoadOptions{Env: "prod"}, Params: func(string) params.Store { return store }}
	built, err := model.Build(ctx, filepath.Join("testdata", "rules"), opts)
	if err != nil {
		t.Fatal(err)
	}
	status := func(res *model.Result) string {
		i, _ := res.Graph.Index("prod/lambda/shop")
		return res.Graph.Components[i].RuntimeStatus
	}
	if same, err := built.Refreshed(ctx, opts); err != nil || same != built {
		t.Fatalf("nothing published: Refreshed = %p (%v), want the build itself %p", same, err, built)
	}
	for _, f := range []string{"checkout", "cart"} {
		if _, err := store.Put(ctx, params.PutInput{Name: "/iac/lambda/" + f + "/runtime", Value: `{"arn":"arn:` + f + `"}`}); err != nil {
			t.Fatal(err)
		}
	}
	fresh, err := built.Refreshed(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if status(built) != graph.RuntimeMissing || status(fresh) != graph.RuntimePresent || fresh.Repo != built.Repo {
		t.Errorf("kept build %s, refreshed %s (same repository: %v); want missing, present, true", status(built), status(fresh), fresh.Repo == built.Repo)
	}
	if again, err := fresh.Refreshed(ctx, opts); err != nil || again != fresh {
		t.Errorf("refreshed again with nothing new: %p (%v), want %p", again, err, fresh)
	}
}

// prodParams is an embedded parameter store for environment prod.
func prodParams(t *testing.T) *embedded.ParamStore {
	t.Helper()
	db, err := embedded.Open(filepath.Join(t.TempDir(), "karma.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store, err := embedded.NewParamStore(db, "prod")
	if err != nil {
		t.Fatal(err)
	}
	return store
}
