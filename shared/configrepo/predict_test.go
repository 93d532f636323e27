package configrepo_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
)

// The example repository's prod/vpc/core: which of its outputs a proposal changes decides
// which dependents would redeploy; the others are skipped, each with its reason.
func TestPredict(t *testing.T) {
	o := gittest.OriginFrom(t, "config.git", filepath.Join("..", "..", "examples"))
	src := newSource(t, o.Bare)
	head := o.Head(t)
	var committed map[string]any
	raw, err := os.ReadFile(filepath.Join("..", "..", "examples", "iac", "prod", "vpc", "core", "config.json"))
	if err != nil || json.Unmarshal(raw, &committed) != nil {
		t.Fatal(err)
	}
	downstream := []string{"prod/ecs-cluster/core", "prod/ecs-service/api", "prod/lambda/handlers", "prod/serverless-api/public", "prod/serverless-site/www"}
	for _, tc := range []struct {
		name          string
		edit          func(map[string]any)
		changedConfig []string
		changedKeys   []string
		redeploy      []string // besides the root
		skipped       map[string]string
	}{
		{"az_count: subnets change, the cluster consumes only vpc_id",
			func(c map[string]any) { c["az_count"] = 4 }, []string{"/az_count"}, []string{"private_subnet_ids"},
			[]string{"prod/ecs-service/api", "prod/lambda/handlers", "prod/serverless-api/public", "prod/serverless-site/www"},
			map[string]string{"prod/ecs-cluster/core": configrepo.SkipNoConsumedKey}},
		{"cidr: every output a dependent consumes",
			func(c map[string]any) { c["cidr"] = "10.30.0.0/16" }, []string{"/cidr"}, []string{"private_subnet_ids", "vpc_id"},
			downstream, map[string]string{}},
		{"retention and tags: no output changes",
			func(c map[string]any) {
				c["flow_logs"] = map[string]any{"retention_days": 30}
				c["tags"].(map[string]any)["Owner"] = "ops"
			}, []string{"/flow_logs/retention_days", "/tags/Owner"}, []string{}, nil,
			map[string]string{"prod/ecs-cluster/core": configrepo.SkipNoConsumedKey, "prod/ecs-service/api": configrepo.SkipNoConsumedKey,
				"prod/lambda/handlers": configrepo.SkipNoConsumedKey, "prod/serverless-api/public": configrepo.SkipUpstreamKept,
				"prod/serverless-site/www": configrepo.SkipUpstreamKept}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg map[string]any
			json.Unmarshal(raw, &cfg)
			tc.edit(cfg)
			data, _ := json.Marshal(cfg)
			chk, err := src.CheckProposal(ctx, head, "prod", "vpc", "core", data)
			if err != nil {
				t.Fatal(err)
			}
			p, err := src.Predict(ctx, chk)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.ChangedConfig, tc.changedConfig) || !reflect.DeepEqual(p.ChangedKeys, tc.changedKeys) || p.Unknown != "" {
				t.Errorf("changed config %v, keys %v (%s); want %v, %v", p.ChangedConfig, p.ChangedKeys, p.Unknown, tc.changedConfig, tc.changedKeys)
			}
			var redeploy []string
			for _, a := range p.Redeploy.Affected[1:] {
				redeploy = append(redeploy, a.ID)
			}
			if p.Redeploy.Affected[0].ID != "prod/vpc/core" || !sameSet(redeploy, tc.redeploy) {
				t.Errorf("redeploy %v, want prod/vpc/core and %v", p.Redeploy.Affected, tc.redeploy)
			}
			got := map[string]string{}
			for _, s := range p.Skipped {
				got[s.ID] = s.Reason
				if s.Detail == "" {
					t.Errorf("%s skipped without a detail", s.ID)
				}
			}
			if !reflect.DeepEqual(got, tc.skipped) {
				t.Errorf("skipped %+v, want %v", p.Skipped, tc.skipped)
			}
			if len(p.Keys) != 3 {
				t.Errorf("keys %+v: want the module's three outputs", p.Keys)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

// A proposal for a component that others extend (at any depth) shows them too: the request
// deploys them with it (resolve makes them roots), so the preview names them as seeds of what
// may redeploy, with what depends on them.
func TestPredictShowsWhatExtendsTheComponent(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", map[string]string{
		"karma.json":                         `{"prefix": "/iac", "modules_dir": "components"}`,
		"iac/dev/app/parent/config.json":     `{"size": "small"}`,
		"iac/dev/app/child/config.json":      `{"karma": {"extends": "app/parent"}, "name": "child"}`,
		"iac/dev/app/grandchild/config.json": `{"karma": {"extends": "app/child"}, "name": "grandchild"}`,
		"iac/dev/app/other/config.json":      `{"name": "other"}`,
		"iac/dev/web/front/config.json":      `{"karma": {"depends_on": ["app/grandchild"]}}`,
		"components/app/main.tf":             `variable "config" {}`,
		"components/web/main.tf":             `variable "config" {}`,
		"account_environments/dev.json":      `{"name": "dev", "environment": "dev"}`,
	})
	src := newSource(t, o.Bare)
	chk, err := src.CheckProposal(ctx, o.Head(t), "dev", "app", "parent", []byte(`{"size": "large"}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"dev/app/child", "dev/app/grandchild"}; !sameSet(chk.Extending, want) {
		t.Errorf("extending %v, want %v", chk.Extending, want)
	}
	var impact []string
	for _, a := range chk.Impact.Affected {
		impact = append(impact, a.ID)
	}
	if want := []string{"dev/app/parent", "dev/app/child", "dev/app/grandchild", "dev/web/front"}; !sameSet(impact, want) {
		t.Errorf("impact %v, want %v", impact, want)
	}
	p, err := src.Predict(ctx, chk)
	if err != nil {
		t.Fatal(err)
	}
	var redeploy []string
	for _, a := range p.Redeploy.Affected {
		redeploy = append(redeploy, a.ID)
	}
	if want := []string{"dev/app/parent", "dev/app/child", "dev/app/grandchild", "dev/web/front"}; !sameSet(redeploy, want) {
		t.Errorf("redeploy %v, want %v", redeploy, want)
	}
}
