package model_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/model"
)

// examplesDir is the example config repository used by `make demo` and documented in
// examples/README.md. These tests pin its exact shape: if you change the examples, update both.
const examplesDir = "../../examples"

func buildExamples(t *testing.T, root string) *model.Result {
	t.Helper()
	res, err := model.Build(context.Background(), root, model.BuildOptions{})
	if err != nil {
		t.Fatalf("Build(%s): %v", root, err)
	}
	return res
}

func exampleComponent(t *testing.T, res *model.Result, id string) *model.Component {
	t.Helper()
	for _, c := range res.Repo.Components {
		if c.ID() == id {
			return c
		}
	}
	t.Fatalf("component %s not found", id)
	return nil
}

func resolvedOf(t *testing.T, c *model.Component) map[string]any {
	t.Helper()
	if c.Broken || c.Resolved == nil {
		t.Fatalf("%s is broken (files %v): no resolved config", c.ID(), c.Files)
	}
	var m map[string]any
	if err := json.Unmarshal(c.Resolved, &m); err != nil {
		t.Fatalf("%s: resolved config: %v", c.ID(), err)
	}
	return m
}

func idsOf(g *graph.Graph, as []graph.Affected) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = g.Components[a.Index].ID
	}
	return out
}

func sorted(s []string) []string {
	out := append([]string{}, s...)
	sort.Strings(out)
	return out
}

func TestExamplesLoadCleanly(t *testing.T) {
	res := buildExamples(t, examplesDir)
	if errs := res.Diagnostics.Errors(); len(errs) > 0 {
		t.Fatalf("error diagnostics:\n%v", errs.Err())
	}
	for _, d := range res.Diagnostics.Warnings() {
		t.Errorf("unexpected warning: %s", d)
	}
	if res.Repo.Settings.Prefix != "/iac" {
		t.Errorf("prefix = %q, want /iac", res.Repo.Settings.Prefix)
	}
	if got, want := res.Repo.Environments, []string{"dev", "prod"}; !reflect.DeepEqual(got, want) {
		t.Errorf("environments = %v, want %v", got, want)
	}
	if len(res.Repo.Accounts) != 2 {
		t.Fatalf("account environments = %d, want 2", len(res.Repo.Accounts))
	}
	for _, a := range res.Repo.Accounts {
		if a.Environment != a.Name {
			t.Errorf("%s: environment %q != name %q", a.File, a.Environment, a.Name)
		}
		for _, k := range []string{"iac_strict", "lambda_strict"} {
			if v, err := a.Bool(k); err != nil || v {
				t.Errorf("%s: %s = %v, %v; want false", a.File, k, v, err)
			}
		}
	}

	var ids []string
	for _, c := range res.Repo.Components {
		ids = append(ids, c.ID())
		if c.Broken {
			t.Errorf("%s is broken (files %v)", c.ID(), c.Files)
		}
	}
	want := []string{
		"dev/ecs-cluster/core",
		"dev/ecs-service/api",
		"dev/s3-bucket/assets",
		"dev/vpc/core",
		"prod/ecs-cluster/core",
		"prod/ecs-service/api",
		"prod/lambda/handlers",
		"prod/route53-zone/main",
		"prod/s3-bucket/assets",
		"prod/serverless-api/public",
		"prod/serverless-site/www",
		"prod/vpc/core",
	}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("components:\n got %v\nwant %v", ids, want)
	}
	if res.Graph.Len() != 12 {
		t.Errorf("graph has %d components, want 12", res.Graph.Len())
	}
}

func TestExamplesReferenceKinds(t *testing.T) {
	res := buildExamples(t, examplesDir)
	g := res.Graph

	type ref struct{ from, to, kind, rule, pointer, keys string }
	var got []ref
	for _, e := range g.Edges {
		for _, s := range e.Sources {
			got = append(got, ref{g.Components[e.From].ID, g.Components[e.To].ID, s.Kind, s.Rule, s.Pointer, strings.Join(s.Keys, ",")})
		}
	}
	sort.Slice(got, func(i, j int) bool {
		a, b := got[i], got[j]
		if a.from != b.from {
			return a.from < b.from
		}
		if a.to != b.to {
			return a.to < b.to
		}
		return a.pointer < b.pointer
	})
	want := []ref{
		{"dev/ecs-cluster/core", "dev/vpc/core", "inferred", "vpc_nickname", "/vpc_nickname", "*"},
		{"dev/ecs-service/api", "dev/ecs-cluster/core", "inferred", "cluster_nickname", "/cluster_nickname", "*"},
		{"dev/ecs-service/api", "dev/vpc/core", "explicit", "depends_on", "/karma/depends_on/0", "*"},
		{"prod/ecs-cluster/core", "prod/vpc/core", "interpolation", "${vpc/core.runtime.vpc_id}", "/service_discovery_vpc_id", "vpc_id"},
		{"prod/ecs-service/api", "prod/ecs-cluster/core", "inferred", "cluster_nickname", "/cluster_nickname", "*"},
		{"prod/ecs-service/api", "prod/vpc/core", "explicit", "depends_on", "/karma/depends_on/0", "private_subnet_ids"},
		{"prod/lambda/handlers", "prod/s3-bucket/assets", "inferred", "s3_bucket_nickname", "/functions/resize-image/s3_bucket_nickname", "*"},
		{"prod/lambda/handlers", "prod/vpc/core", "interpolation", "${vpc/core.runtime.private_subnet_ids}", "/subnet_ids", "private_subnet_ids"},
		{"prod/serverless-api/public", "prod/lambda/handlers", "inferred", "src_type+src_nickname", "/routes/0/integration/src_nickname", "*"},
		{"prod/serverless-api/public", "prod/lambda/handlers", "inferred", "src_type+src_nickname", "/routes/1/integration/src_nickname", "*"},
		{"prod/serverless-api/public", "prod/route53-zone/main", "interpolation", "${route53-zone/main.runtime.zone_id}", "/hosted_zone_id", "zone_id"},
		{"prod/serverless-site/www", "prod/route53-zone/main", "inferred", "route53_zone_nickname", "/route53_zone_nickname", "*"},
		{"prod/serverless-site/www", "prod/serverless-api/public", "interpolation", "${serverless-api/public.runtime.api_domain}", "/api_origin", "api_domain"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("references:\n got %v\nwant %v", got, want)
	}

	// Every kind and rule the examples are meant to show, each at least once.
	kinds, rules := map[string]bool{}, map[string]bool{}
	nestedFunctions, explicitObject, explicitString := false, false, false
	for _, r := range got {
		kinds[r.kind] = true
		rules[r.rule] = true
		if strings.HasPrefix(r.pointer, "/functions/") {
			nestedFunctions = true
		}
		if r.rule == "depends_on" && r.keys == "*" {
			explicitString = true
		}
		if r.rule == "depends_on" && r.keys != "*" {
			explicitObject = true
		}
	}
	for _, k := range []string{model.RefExplicit, model.RefInferred, model.RefInterpolation} {
		if !kinds[k] {
			t.Errorf("no %s reference", k)
		}
	}
	for _, r := range []string{"depends_on", "vpc_nickname", "cluster_nickname", "s3_bucket_nickname", "src_type+src_nickname", "${vpc/core.runtime.vpc_id}"} {
		if !rules[r] {
			t.Errorf("no reference by rule %q", r)
		}
	}
	if !nestedFunctions {
		t.Error("no reference nested under /functions/")
	}
	if !explicitString || !explicitObject {
		t.Errorf("depends_on: string form %v, object form with consumes %v; want both", explicitString, explicitObject)
	}
}

func TestExamplesProdWaves(t *testing.T) {
	res := buildExamples(t, examplesDir)
	g := res.Graph
	var prod []int32
	for i, c := range g.Components {
		if c.Env == "prod" {
			prod = append(prod, int32(i))
		}
	}
	waves, err := g.WavesOf(prod)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]string
	for _, w := range waves {
		got = append(got, g.IDs(w))
	}
	want := [][]string{
		{"prod/route53-zone/main", "prod/s3-bucket/assets", "prod/vpc/core"},
		{"prod/ecs-cluster/core", "prod/lambda/handlers"},
		{"prod/ecs-service/api", "prod/serverless-api/public"},
		{"prod/serverless-site/www"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("prod waves:\n got %v\nwant %v", got, want)
	}

	var dev []int32
	for i, c := range g.Components {
		if c.Env == "dev" {
			dev = append(dev, int32(i))
		}
	}
	waves, err = g.WavesOf(dev)
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, w := range waves {
		got = append(got, g.IDs(w))
	}
	wantDev := [][]string{
		{"dev/s3-bucket/assets", "dev/vpc/core"},
		{"dev/ecs-cluster/core"},
		{"dev/ecs-service/api"},
	}
	if !reflect.DeepEqual(got, wantDev) {
		t.Errorf("dev waves:\n got %v\nwant %v", got, wantDev)
	}
}

func TestExamplesLayers(t *testing.T) {
	res := buildExamples(t, examplesDir)

	// extends: serverless-site/www extends the base-only template serverless-site/site-defaults.
	www := exampleComponent(t, res, "prod/serverless-site/www")
	if got, want := www.Files, []string{
		"iac/_base/serverless-site/site-defaults/config.json",
		"iac/prod/serverless-site/www/config.json",
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("www files = %v, want %v", got, want)
	}
	site := resolvedOf(t, www)
	if site["index_document"] != "index.html" || site["price_class"] != "PriceClass_100" {
		t.Errorf("www lacks the template's values: %v", site)
	}
	if site["site_name"] != "www.example.com" {
		t.Errorf("www site_name = %v", site["site_name"])
	}
	if tags, _ := site["tags"].(map[string]any); tags["Owner"] != "web-team" || tags["Environment"] != "prod" {
		t.Errorf("www tags = %v, want the template's Owner merged with the env's Environment", site["tags"])
	}
	if _, ok := site["karma"]; ok {
		t.Error("the reserved karma block is in the resolved config")
	}

	// base layer + JSON Merge Patch: prod overrides cidr and az_count, deletes single_nat_gateway
	// with null, merges into flow_logs and tags.
	prodVPC := resolvedOf(t, exampleComponent(t, res, "prod/vpc/core"))
	devVPC := resolvedOf(t, exampleComponent(t, res, "dev/vpc/core"))
	if _, ok := prodVPC["single_nat_gateway"]; ok {
		t.Errorf("prod vpc/core: single_nat_gateway = %v, want it deleted by null", prodVPC["single_nat_gateway"])
	}
	if devVPC["single_nat_gateway"] != true {
		t.Errorf("dev vpc/core: single_nat_gateway = %v, want true from the base layer", devVPC["single_nat_gateway"])
	}
	if prodVPC["cidr"] != "10.20.0.0/16" || devVPC["cidr"] != "10.10.0.0/16" {
		t.Errorf("cidr prod %v dev %v", prodVPC["cidr"], devVPC["cidr"])
	}
	if got, want := prodVPC["flow_logs"], map[string]any{"enabled": true, "retention_days": 90.0}; !reflect.DeepEqual(got, want) {
		t.Errorf("prod flow_logs = %v, want %v", got, want)
	}
	wantTags := map[string]any{"Project": "karma-examples", "Owner": "platform", "CostCenter": "cc-4100", "Environment": "prod"}
	if !reflect.DeepEqual(prodVPC["tags"], wantTags) {
		t.Errorf("prod vpc tags = %v, want %v", prodVPC["tags"], wantTags)
	}
	if f := exampleComponent(t, res, "prod/vpc/core").Files; !reflect.DeepEqual(f, []string{"iac/_base/vpc/core/config.json", "iac/prod/vpc/core/config.json"}) {
		t.Errorf("prod vpc/core files = %v", f)
	}

	// a reference carried by the base layer (cluster_nickname) reaches both environments.
	for _, id := range []string{"dev/ecs-service/api", "prod/ecs-service/api"} {
		if r := resolvedOf(t, exampleComponent(t, res, id)); r["cluster_nickname"] != "core" {
			t.Errorf("%s: cluster_nickname = %v, want core from the base layer", id, r["cluster_nickname"])
		}
	}
}

func TestExamplesImpactOfProdVPC(t *testing.T) {
	res := buildExamples(t, examplesDir)
	g := res.Graph
	vpc, ok := g.Index("prod/vpc/core")
	if !ok {
		t.Fatal("prod/vpc/core not in graph")
	}

	// No dependent of prod vpc/core reads all of its runtime: they consume exact keys, and none
	// consumes flow_log_group.
	var consumed []string
	for _, ei := range g.Dependents(vpc) {
		consumed = append(consumed, g.Edges[ei].Consumes...)
	}
	if got, want := sorted(consumed), []string{"private_subnet_ids", "private_subnet_ids", "vpc_id"}; !reflect.DeepEqual(got, want) {
		t.Errorf("keys consumed from prod/vpc/core = %v, want %v", got, want)
	}

	cases := []struct {
		name     string
		changed  []string
		affected []string
		waves    [][]string
	}{
		{"any change", nil,
			[]string{"prod/vpc/core", "prod/ecs-cluster/core", "prod/ecs-service/api", "prod/lambda/handlers", "prod/serverless-api/public", "prod/serverless-site/www"},
			[][]string{{"prod/vpc/core"}, {"prod/ecs-cluster/core", "prod/lambda/handlers"}, {"prod/ecs-service/api", "prod/serverless-api/public"}, {"prod/serverless-site/www"}}},
		{"flow_log_group only", []string{"flow_log_group"},
			[]string{"prod/vpc/core"},
			[][]string{{"prod/vpc/core"}}},
		{"vpc_id", []string{"vpc_id"},
			[]string{"prod/vpc/core", "prod/ecs-cluster/core", "prod/ecs-service/api"},
			[][]string{{"prod/vpc/core"}, {"prod/ecs-cluster/core"}, {"prod/ecs-service/api"}}},
		{"private_subnet_ids", []string{"private_subnet_ids"},
			[]string{"prod/vpc/core", "prod/ecs-service/api", "prod/lambda/handlers", "prod/serverless-api/public", "prod/serverless-site/www"},
			[][]string{{"prod/vpc/core"}, {"prod/ecs-service/api", "prod/lambda/handlers"}, {"prod/serverless-api/public"}, {"prod/serverless-site/www"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			imp, err := g.Downstream([]int32{vpc}, graph.ImpactOptions{ChangedKeys: tc.changed})
			if err != nil {
				t.Fatal(err)
			}
			if got := idsOf(g, imp.Affected); !reflect.DeepEqual(got, tc.affected) {
				t.Errorf("affected:\n got %v\nwant %v", got, tc.affected)
			}
			var waves [][]string
			for _, w := range imp.Waves {
				waves = append(waves, g.IDs(w))
			}
			if !reflect.DeepEqual(waves, tc.waves) {
				t.Errorf("waves:\n got %v\nwant %v", waves, tc.waves)
			}
		})
	}

	// The reason chain of the deepest component goes through the lambda and the API.
	www, _ := g.Index("prod/serverless-site/www")
	imp, err := g.Downstream([]int32{vpc}, graph.ImpactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var chain []string
	for _, a := range imp.Chain(www) {
		chain = append(chain, g.Components[a.Index].ID)
	}
	if want := []string{"prod/lambda/handlers", "prod/serverless-api/public", "prod/serverless-site/www"}; !reflect.DeepEqual(chain, want) {
		t.Errorf("chain to www = %v, want %v", chain, want)
	}
}

// TestExamplesSchemasApply proves the example schemas are in force: a copy of the examples with
// a bad CIDR and a bucket without a name fails with schema diagnostics at those places.
func TestExamplesSchemasApply(t *testing.T) {
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(examplesDir)); err != nil {
		t.Fatal(err)
	}
	write := func(rel, body string) {
		if err := os.WriteFile(filepath.Join(root, filepath.FromSlash(rel)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("iac/prod/vpc/core/config.json", `{"cidr": "10.20.0.0"}`)
	write("iac/dev/s3-bucket/assets/config.json", `{"tags": {"Environment": "dev"}}`)

	res := buildExamples(t, root)
	type loc struct{ component, pointer string }
	var got []loc
	for _, d := range res.Diagnostics.Errors() {
		if d.Code != model.CodeSchema {
			t.Errorf("unexpected error: %s", d)
			continue
		}
		got = append(got, loc{d.Component, d.Pointer})
	}
	want := []loc{{"dev/s3-bucket/assets", "/"}, {"prod/vpc/core", "/cidr"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("schema errors at %v, want %v\n%v", got, want, res.Diagnostics.Err())
	}
}
