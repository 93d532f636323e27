package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
)

// An edge trigger where output gating is not enough: prod/serverless-site/www declares that it
// redeploys on any apply of prod/vpc/core, consuming none of its keys. Carol's commit changes
// only the vpc's flow log group, which nobody consumes: the output-gated dependents are skipped,
// www is deployed, and the change set, the lineage, the audit log and `karma lineage` say why.
func TestEdgeTriggerRedeploysOnAnyApply(t *testing.T) {
	needTerraform(t)
	repo, state := demoRepo(t)
	www := filepath.Join(repo, "iac", "prod", "serverless-site", "www", "config.json")
	editJSON(t, www, func(d map[string]any) {
		d["karma"].(map[string]any)["depends_on"] = []any{map[string]any{"ref": "vpc/core", "consumes": []any{}, "redeploy": "on-any-apply"}}
	})
	git(t, repo, "commit", "-qa", "--amend", "--no-edit")
	g := &globals{paramsBackend: "embedded"}
	base := []string{"--repo", repo, "--state-dir", state}
	karmaOK(t, g, append([]string{"ingest", "commit", "--auto-approve"}, base...)...)
	karmaOK(t, g, append([]string{"apply", "--auto-approve"}, base...)...)

	export := karmaOK(t, g, "graph", "export", "--format", "dot", "--env", "prod", "--repo", repo, "--state-dir", state)
	if !strings.Contains(export, `[label=" (on any apply)", style=bold]`) {
		t.Errorf("the DOT export does not show the edge trigger:\n%s", export)
	}

	vpc := filepath.Join(repo, "iac", "prod", "vpc", "core", "config.json")
	editJSON(t, vpc, func(d map[string]any) {
		d["flow_logs"].(map[string]any)["log_group_name"] = "/aws/vpc/prod-core-flows"
	})
	carol := commitAs(t, repo, "Carol", "name the flow log group")
	karmaOK(t, g, append([]string{"ingest", "commit", "--auto-approve"}, base...)...)
	karmaOK(t, g, append([]string{"apply", "--auto-approve"}, base...)...)

	cs := changeSetOf(t, state, carol, "prod")
	vpcDep := cs.Nodes["prod/vpc/core"].DeploymentID
	site := cs.Nodes["prod/serverless-site/www"]
	if site == nil || site.State != changeset.Applied {
		t.Fatalf("www in Carol's change set: %+v", site)
	}
	if c := site.Causes; len(c) != 1 || c[0].ID != vpcDep || c[0].Trigger != message.TriggerOnAnyApply || len(c[0].Keys) != 0 {
		t.Errorf("www's causes = %+v, want vpc's deployment with trigger on-any-apply", c)
	}
	if n := cs.Nodes["prod/ecs-cluster/core"]; n.State != changeset.Skipped || n.Reason != changeset.ReasonNoConsumedKey {
		t.Errorf("an output-gated dependent: %+v, want skipped (no consumed key changed)", n)
	}

	l, a, _ := stores(t, state)
	ctx := context.Background()
	caused, err := l.CausedBy(ctx, message.CauseDeployment, vpcDep)
	if err != nil || len(caused) != 1 || caused[0].Component != "prod/serverless-site/www" || caused[0].CausedBy[0].Trigger != message.TriggerOnAnyApply {
		t.Errorf("the vpc's deployment caused %+v, %v; want www, by the edge trigger", caused, err)
	}
	recs, err := a.Query(ctx, audit.Query{DeploymentID: site.DeploymentID})
	if err != nil {
		t.Fatal(err)
	}
	scheduled := false
	for _, r := range recs {
		if r.Type == message.TypeDeploymentScheduled {
			scheduled = strings.Contains(string(r.Body), `"trigger":"on-any-apply"`)
		}
	}
	if !scheduled {
		t.Errorf("the audit log's deployment.scheduled of www does not record the trigger (%d records)", len(recs))
	}
	out := karmaOK(t, g, "lineage", "serverless-site/www", "--env", "prod", "--state-dir", state)
	if !strings.Contains(out, "because prod/vpc/core was applied (its reference redeploys on any apply") {
		t.Errorf("karma lineage does not say why www was redeployed:\n%s", out)
	}
}
