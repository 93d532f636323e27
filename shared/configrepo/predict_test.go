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
