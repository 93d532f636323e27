package configrepo_test

import (
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"

	"github.com/usekarma/karma/shared/gitrepo/gittest"
	"github.com/usekarma/karma/shared/model"
)

// buildLines renders what callers see of a build: components, edges, diagnostics, orphans.
func buildLines(res *model.Result) []string {
	var out []string
	for _, c := range res.Repo.Components {
		out = append(out, fmt.Sprintf("%s %v %v %s %s %+v", c.ID(), c.Files, c.Broken, c.Hash, c.Resolved, c.References))
	}
	out = append(out, fmt.Sprintf("%+v", res.Graph.Components), fmt.Sprintf("%+v", res.Graph.Edges), fmt.Sprint(res.Orphans))
	var ds []string
	for _, d := range res.Diagnostics {
		ds = append(ds, fmt.Sprintf("%+v", d))
	}
	sort.Strings(ds)
	return append(out, ds...)
}

// TestBuildWithOverridesEqualsFullBuild: a build with overrides, derived from the cached build of
// the commit, equals a full build of the commit's tree with the same overrides — also when many
// are built at once from the one cached build, which none of them changes.
func TestBuildWithOverridesEqualsFullBuild(t *testing.T) {
	o := gittest.OriginFrom(t, "config.git", "../../examples")
	sha := o.Head(t)
	src := newSource(t, o.Bare)
	sets := []map[string][]byte{
		{"iac/prod/serverless-site/www/config.json": []byte(`{"karma": {"extends": "serverless-site/site-defaults"}, "site_name": "w2", "route53_zone_nickname": "main"}`)},
		{"iac/prod/serverless-site/www/config.json": []byte(`{"broken": `)},
		{"iac/_base/serverless-site/site-defaults/config.json": []byte(`{"price_class": "PriceClass_All"}`)},
		{"iac/prod/vpc/core/config.json": []byte(`{"karma": {"depends_on": ["nope/missing"]}}`)},
		{"iac/prod/vpc/core/config.json": []byte(`{}`), "iac/prod/ecs-cluster/core/config.json": []byte(`{"vpc_nickname": "core"}`)},
		{"iac/prod/new/thing/config.json": []byte(`{}`)},
		{"karma.json": []byte(`{"prefix": "/elsewhere"}`)},
	}
	tree, err := src.Repo.Tree(ctx, sha)
	if err != nil {
		t.Fatal(err)
	}
	base, err := src.Build(ctx, "prod", sha, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := buildLines(base)
	want := make([][]string, len(sets))
	for i, over := range sets {
		res, err := model.BuildFS(ctx, tree, tree.String(), model.BuildOptions{LoadOptions: model.LoadOptions{Env: "prod", Overrides: over}})
		if err != nil {
			t.Fatal(err)
		}
		want[i] = buildLines(res)
	}
	var wg sync.WaitGroup
	for round := range 4 {
		for i, over := range sets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := src.Build(ctx, "prod", sha, over)
				if err != nil {
					t.Error(err)
					return
				}
				if got := buildLines(res); !reflect.DeepEqual(got, want[i]) {
					t.Errorf("round %d, set %d: the build with overrides differs from a full one:\n%q\n%q", round, i, got, want[i])
				}
			}()
		}
	}
	wg.Wait()
	if again, _ := src.Build(ctx, "prod", sha, nil); again != base || !reflect.DeepEqual(buildLines(base), before) {
		t.Error("the cached build changed")
	}
}
