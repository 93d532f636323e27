package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
)

// rollbackSet is the change set of the rollback to deployment dep.
func rollbackSet(t *testing.T, state, dep string) *changeset.ChangeSet {
	t.Helper()
	for _, cs := range changeSets(t, state) {
		if cs.Rollback != nil && cs.Rollback.DeploymentID == dep {
			return cs
		}
	}
	t.Fatalf("no rollback to %s", dep)
	return nil
}

// The case: prod/vpc/core deployed by the first commit (az_count 3), then by two later
// commits (4, 5). Rolling back to the first deployment shows its plans and waits for an approval;
// approved, it deploys exactly the first commit's config with its module, the dependents that
// consume a changed key (private_subnet_ids) deploy again, the others are skipped, and the
// lineage says it rolled back from B's deployment to the first.
func TestRollbackToTheFirstDeploymentAfterTwoCommits(t *testing.T) {
	needTerraform(t)
	repo, state := demoRepo(t)
	g := &globals{paramsBackend: "embedded", repo: repo, stateDir: state}
	first := git(t, repo, "rev-parse", "HEAD")
	runIn(t, g, 0, "ingest", "commit", "--auto-approve")
	runIn(t, g, 0, "apply", "--auto-approve")
	vpc := filepath.Join(repo, "iac", "prod", "vpc", "core", "config.json")
	editJSON(t, vpc, func(d map[string]any) { d["az_count"] = 4 })
	a := commitAs(t, repo, "Ann", "four AZs")
	editJSON(t, vpc, func(d map[string]any) { d["az_count"] = 5 })
	b := commitAs(t, repo, "Ben", "five AZs")
	runIn(t, g, 0, "ingest", "commit", "--auto-approve", a, b)
	runIn(t, g, 0, "apply", "--auto-approve")
	firstCS, csB := changeSetOf(t, state, first, "prod"), changeSetOf(t, state, b, "prod")
	target, replaced := firstCS.Nodes["prod/vpc/core"], csB.Nodes["prod/vpc/core"]

	// Without --auto-approve the plans are shown and an approval asked for: not given, nothing is
	// applied (stdin is not a terminal, or says nothing).
	out := runIn(t, g, 1, "rollback", target.DeploymentID, "--as", "grace")
	mustContain(t, "rollback output", out,
		"rolling prod/vpc/core back from "+replaced.DeploymentID+" to "+target.DeploymentID+" (the config of commit "+first[:12],
		"plans of change ", "prod/vpc/core", "to add", "(module of commit "+first[:12]+")", "update     module.component.terraform_data.vpc",
		"prod/ecs-service/api             then, if a runtime key it consumes changes")
	if !strings.Contains(out, "apply cancelled") && !strings.Contains(out, "not a terminal: pass --auto-approve") {
		t.Errorf("the rollback did not ask for an approval:\n%s", out)
	}
	rb := rollbackSet(t, state, target.DeploymentID)
	if n := rb.Nodes["prod/vpc/core"]; n.State != changeset.Planned || rb.Approved || n.Commit != first {
		t.Fatalf("before approval: vpc/core %s (commit %.12s), approved %v; want planned, held, the first commit's module", n.State, n.Commit, rb.Approved)
	}
	runIn(t, g, 0, "apply", "--auto-approve", rb.ID)

	rb = rollbackSet(t, state, target.DeploymentID)
	if got := deployedAZs(t, rb); got != 3 {
		t.Errorf("the rollback deployed az_count %v, want the first commit's 3", got)
	}
	if n := rb.Nodes["prod/vpc/core"]; !bytes.Equal(n.Outcome.Config, target.Outcome.Config) || n.ConfigHash != target.ConfigHash {
		t.Errorf("deployed config %s, want exactly the first deployment's %s", n.Outcome.Config, target.Outcome.Config)
	}
	if rb.Source != message.SourceRollback || rb.Rollback.Replaces != replaced.DeploymentID || rb.Commit != b {
		t.Errorf("rollback change set: source %s, replaces %s, built at %.12s (want head %.12s)", rb.Source, rb.Rollback.Replaces, rb.Commit, b)
	}
	for comp, want := range map[string]string{
		"prod/ecs-service/api":  changeset.Applied, // consumes private_subnet_ids, which changed
		"prod/lambda/handlers":  changeset.Applied,
		"prod/ecs-cluster/core": changeset.Skipped, // consumes vpc_id, unchanged
	} {
		if n := rb.Nodes[comp]; n == nil || n.State != want {
			t.Errorf("%s in the rollback: %+v, want %s", comp, n, want)
		}
	}
	if c := rb.Nodes["prod/ecs-service/api"].Causes; len(c) != 1 || c[0].Kind != message.CauseDeployment || c[0].Keys[0] != "private_subnet_ids" {
		t.Errorf("ecs-service/api caused by %+v", c)
	}
	lin := runIn(t, g, 0, "lineage", "vpc/core", "--env", "prod")
	mustContain(t, "lineage", lin, rb.Nodes["prod/vpc/core"].DeploymentID+"  applied",
		"rolled back from "+replaced.DeploymentID+" (change "+csB.ID+") to "+target.DeploymentID+" by grace (cli)",
		target.DeploymentID+"  applied", "root: commit "+first)
	svc := runIn(t, g, 0, "lineage", "ecs-service/api", "--env", "prod")
	mustContain(t, "lineage of a dependent", svc, "because prod/vpc/core changed private_subnet_ids", "rolled back from "+replaced.DeploymentID)
	audit := runIn(t, g, 0, "audit", "log", "--correlation", rb.CorrelationID)
	mustContain(t, "audit log", audit, "rollback to "+target.DeploymentID+" (commit "+first[:12]+")", "approved by")

	// The rollback stands while Git still says five AZs: its /config is not drift, so a drift
	// check that corrects (allow_drift false) does not deploy the head's config back over it.
	rep := driftReport(t, g, 0, "--env", "prod", "--dry-run")
	e, found := findingsOf(rep, "prod")
	if f, ok := found["prod/vpc/core config differs"]; ok {
		t.Errorf("the rolled-back config is reported as drift: %s", f.Detail)
	}
	if len(e.RolledBack) != 1 || e.RolledBack[0].Component != "prod/vpc/core" || e.RolledBack[0].RolledBackTo != target.DeploymentID ||
		e.RolledBack[0].DeploymentID != rb.Nodes["prod/vpc/core"].DeploymentID {
		t.Errorf("rolled back %+v, want prod/vpc/core rolled back to %s by %s", e.RolledBack, target.DeploymentID, rb.Nodes["prod/vpc/core"].DeploymentID)
	}
	mustContain(t, "drift output", runIn(t, g, 0, "drift", "--env", "prod", "--dry-run"), "rolled back: prod/vpc/core holds the config of "+target.DeploymentID)
}

// What cannot be rolled back to is refused with the reason, nothing queued.
func TestRollbackRefusals(t *testing.T) {
	needTerraform(t)
	repo, state := demoRepo(t)
	g := &globals{paramsBackend: "embedded", repo: repo, stateDir: state}
	first := git(t, repo, "rev-parse", "HEAD")
	runIn(t, g, 0, "ingest", "commit", "--auto-approve")
	runIn(t, g, 0, "apply", "--auto-approve")
	vpc := filepath.Join(repo, "iac", "prod", "vpc", "core", "config.json")
	zone := filepath.Join(repo, "iac", "prod", "route53-zone", "main", "config.json")
	editJSON(t, vpc, func(d map[string]any) { d["az_count"] = 4 })
	editJSON(t, zone, func(d map[string]any) { d["comment"] = "example.com, managed by Karma" })
	a := commitAs(t, repo, "Ann", "four AZs, a new comment")
	runIn(t, g, 0, "ingest", "commit", "--auto-approve", a)
	runIn(t, g, 0, "apply", "--auto-approve")
	firstCS, csA := changeSetOf(t, state, first, "prod"), changeSetOf(t, state, a, "prod")
	dep := func(cs *changeset.ChangeSet, comp string) string { return cs.Nodes[comp].DeploymentID }
	refused := func(what string, code int, id string, wants ...string) {
		t.Helper()
		before := len(changeSets(t, state))
		mustContain(t, what, runIn(t, g, code, "rollback", id, "--auto-approve"), wants...)
		if n := len(changeSets(t, state)); n != before {
			t.Errorf("%s: %d change set(s) queued", what, n-before)
		}
	}
	refused("an unknown deployment", 2, "dep-0000000000000000", "rollback: unknown deployment dep-0000000000000000")
	refused("a deployment that never applied", 1, dep(csA, "prod/ecs-cluster/core"),
		"cannot roll back prod/ecs-cluster/core to "+dep(csA, "prod/ecs-cluster/core")+": it never applied (it is skipped, no-consumed-key-changed)")
	refused("what runs now", 1, dep(csA, "prod/vpc/core"), "it is the deployment the component runs now")

	// A change waiting for its approval deploys vpc/core: the rollback would wait behind it.
	editJSON(t, vpc, func(d map[string]any) { d["az_count"] = 6 })
	pending := commitAs(t, repo, "Pat", "six AZs")
	runIn(t, g, 0, "ingest", "commit", pending)
	runIn(t, g, 0, "plan")
	csP := changeSetOf(t, state, pending, "prod")
	refused("a change set not done", 1, dep(firstCS, "prod/vpc/core"), "change sets of prod that are not done deploy some of the same components: "+csP.ID,
		"finish them first (approve or reject them)")
	runIn(t, g, 0, "apply", "--auto-approve", csP.ID)

	// Today's schema refuses three AZs; the zone is removed, and the API no longer reads it.
	schema := filepath.Join(repo, "components", "vpc", "config.schema.json")
	editJSON(t, schema, func(d map[string]any) {
		d["properties"].(map[string]any)["az_count"] = map[string]any{"type": "integer", "minimum": 4, "maximum": 6}
	})
	editJSON(t, filepath.Join(repo, "iac", "_base", "vpc", "core", "config.json"), func(d map[string]any) { d["az_count"] = 4 })
	editJSON(t, filepath.Join(repo, "iac", "prod", "serverless-api", "public", "config.json"), func(d map[string]any) { d["hosted_zone_id"] = "Z0123456789ABC" })
	editJSON(t, filepath.Join(repo, "iac", "prod", "serverless-site", "www", "config.json"), func(d map[string]any) { delete(d, "route53_zone_nickname") })
	git(t, repo, "rm", "-q", zone)
	head := commitAs(t, repo, "Sam", "at least four AZs; no hosted zone")
	runIn(t, g, 0, "ingest", "commit", "--auto-approve", head)
	runIn(t, g, 0, "apply", "--auto-approve")
	refused("a config today's schema refuses", 1, dep(firstCS, "prod/vpc/core"),
		"its config no longer validates against the schema of vpc at the head commit "+head[:12], "/az_count")
	refused("a reference to a component removed since", 1, dep(firstCS, "prod/serverless-api/public"),
		"its config (commit "+first[:12]+") references prod/route53-zone/main, which is no longer defined at the head commit "+head[:12])
	refused("a component removed since", 1, dep(firstCS, "prod/route53-zone/main"),
		"prod/route53-zone/main is no longer defined at the head commit "+head[:12]+" (its config.json was removed)")
	// A's four AZs are still valid: refusals are about the config, not the component.
	mustContain(t, "a valid rollback", runIn(t, g, 0, "rollback", dep(csA, "prod/vpc/core"), "--auto-approve"), "rollback: 3 applied")
	if got := deployedAZs(t, rollbackSet(t, state, dep(csA, "prod/vpc/core"))); got != 4 {
		t.Errorf("rolled back to az_count %v, want 4", got)
	}
	if !strings.Contains(runIn(t, g, 0, "lineage", "vpc/core", "--env", "prod"), "rolled back from") {
		t.Error("the lineage does not say it was rolled back")
	}
}
