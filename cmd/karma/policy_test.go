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

// The example policies (examples/policies, read from each change's commit) on real deployments:
// Bob may not change prod's web site (skipped: policy-denied, with the reason, in the change set,
// the lineage and the audit log); his change of the VPC's address range asked for auto-approve
// and waits for an approval instead, then deploys once approved; www, decided when its
// upstreams are done, is denied.
func TestExamplePoliciesDecideChanges(t *testing.T) {
	needTerraform(t)
	repo, state := demoRepo(t)
	g := &globals{paramsBackend: "embedded"}
	base := []string{"--repo", repo, "--state-dir", state}
	karmaOK(t, g, append([]string{"ingest", "commit", "--auto-approve"}, base...)...)
	karmaOK(t, g, append([]string{"apply", "--auto-approve"}, base...)...) // Ada's commit: allowed

	editJSON(t, filepath.Join(repo, "iac", "prod", "serverless-site", "www", "config.json"), func(d map[string]any) {
		d["tags"].(map[string]any)["Owner"] = "bob"
	})
	editJSON(t, filepath.Join(repo, "iac", "prod", "vpc", "core", "config.json"), func(d map[string]any) { d["cidr"] = "10.30.0.0/16" })
	bob := commitAs(t, repo, "Bob", "site owner, wider range")
	karmaOK(t, g, append([]string{"ingest", "commit", "--auto-approve"}, base...)...)
	out := karmaOK(t, g, append([]string{"plan"}, base...)...)
	cs := changeSetOf(t, state, bob, "prod")
	if cs.Approved || !strings.Contains(cs.AutoApproveRefused, "policy requires an approval: prod/vpc/core: cidr change (was 10.20.0.0/16) is reviewed by people") {
		t.Fatalf("the VPC change: approved %v, %q\n%s", cs.Approved, cs.AutoApproveRefused, out)
	}
	if n := cs.Nodes["prod/vpc/core"]; n.State != changeset.Planned {
		t.Errorf("vpc/core %s, want its plan held", n.State)
	}
	karmaOK(t, g, append([]string{"apply", "--auto-approve", "--as", "grace", cs.ID}, base...)...)
	if cs = changeSetOf(t, state, bob, "prod"); cs.Nodes["prod/vpc/core"].State != changeset.Applied {
		t.Errorf("vpc/core after approval: %s", cs.Nodes["prod/vpc/core"].State)
	}
	// www waited for its upstreams (below the VPC), then was put to the policies.
	site := cs.Nodes["prod/serverless-site/www"]
	if site.State != changeset.Skipped || site.Reason != changeset.ReasonPolicyDenied ||
		site.Detail != "denied by policy: prod/serverless-site/www belongs to the web team (ada@example.com): Bob <bob@example.com> may not change it" {
		t.Errorf("www: %s %s %q", site.State, site.Reason, site.Detail)
	}

	l, a, _ := stores(t, state)
	ctx := context.Background()
	ds, _ := l.Deployments(ctx, "prod/serverless-site/www")
	recorded := false
	for _, d := range ds {
		recorded = recorded || (d.ChangeSetID == cs.ID && strings.Contains(d.Detail, "belongs to the web team"))
	}
	if !recorded {
		t.Errorf("the lineage of www does not record the denial: %+v", ds)
	}
	recs, err := a.Query(ctx, audit.Query{Component: "prod/serverless-site/www"})
	if err != nil {
		t.Fatal(err)
	}
	audited := false
	for _, r := range recs {
		audited = audited || (r.Type == message.TypeDeploymentSkipped && strings.Contains(string(r.Body), `"reason":"policy-denied"`))
	}
	if !audited {
		t.Error("the audit log has no deployment.skipped with reason policy-denied for www")
	}

	// Carol changes the API's domain: www, which consumes it, is redeployed for its upstream —
	// from her commit's tree, which still holds Bob's change of www. Before, a redeploy passed
	// the ownership policy whatever it deployed, and Bob's change went out under Carol's.
	editJSON(t, filepath.Join(repo, "iac", "prod", "serverless-api", "public", "config.json"), func(d map[string]any) {
		d["domain_name"] = "api2.example.com"
	})
	carol := commitAs(t, repo, "Carol", "api: new domain")
	karmaOK(t, g, append([]string{"ingest", "commit", "--auto-approve"}, base...)...)
	out = karmaOK(t, g, append([]string{"apply", "--auto-approve"}, base...)...)
	cs = changeSetOf(t, state, carol, "prod")
	if n := cs.Nodes["prod/serverless-api/public"]; n == nil || n.State != changeset.Applied {
		t.Fatalf("the API: %+v\n%s", n, out)
	}
	site = cs.Nodes["prod/serverless-site/www"]
	if site == nil || site.State != changeset.Skipped || site.Reason != changeset.ReasonPolicyDenied || !strings.Contains(site.Detail, "a change of its config not deployed before (tags)") {
		t.Errorf("www redeployed for the API: %+v; want it denied, Bob's change not deployed under Carol's", site)
	}
}
