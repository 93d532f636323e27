package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/terraform"
)

// approveShownRepo is a repository of one component, ingested and planned: its change set holds
// one plan for review. It returns the globals and the change set's id.
func approveShownRepo(t *testing.T) (*globals, string) {
	t.Helper()
	repo := writeFiles(t, map[string]string{"iac/prod/app/a/config.json": `{"size": 1}`,
		"components/app/main.tf": "# terraform.Noop reads no module\n"})
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	commitAs(t, repo, "Ada", "one app")
	g := &globals{paramsBackend: "embedded", repo: repo, stateDir: t.TempDir(), testRunner: &terraform.Noop{}}
	runIn(t, g, 0, "ingest", "commit")
	out := runIn(t, g, 0, "plan")
	m := regexp.MustCompile(`waiting for approval \(karma apply (\S+)\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("plan does not say the change waits for approval:\n%s", out)
	}
	return g, m[1]
}

// karma apply shows each plan it approves, with its hash, and approves exactly those: a plan
// made again by another process after they were shown (here, between the prompt and the
// approval) is not approved unread — exit 1 naming it, nothing approved, nothing applied; run
// again, it shows the new plan and approves that one.
func TestApplyApprovesOnlyThePlansItShowed(t *testing.T) {
	g, id := approveShownRepo(t)
	const other = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	var shownHash string
	g.testBeforeApprove = func(st *stack) {
		cs, err := st.changeSets.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		shownHash = cs.Nodes["prod/app/a"].Plan.PlanHash
		if _, err := st.changeSets.Update(context.Background(), id, func(cs *changeset.ChangeSet) error {
			cs.Nodes["prod/app/a"].Plan.PlanHash = other // another process planned it again
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	out := runIn(t, g, 1, "apply", "--auto-approve", "--as", "grace", id)
	mustContain(t, "apply after the plan changed", out, "prod/app/a", "plan "+shownHash[:12],
		"prod/app/a holds plan "+other[:12]+", not "+shownHash[:12], "nothing approved")
	cs := changeSetOfID(t, g, id)
	if cs.Approved || len(cs.Approvals) != 0 || cs.Nodes["prod/app/a"].State != changeset.Planned {
		t.Fatalf("a plan never shown was approved: approved %v approvals %v state %s", cs.Approved, cs.Approvals, cs.Nodes["prod/app/a"].State)
	}

	g.testBeforeApprove = nil
	out = runIn(t, g, 0, "apply", "--auto-approve", "--as", "grace", id)
	// The plan shown now is approved and released (Noop then finds its forged hash stale and
	// plans again, for another review).
	mustContain(t, "apply again", out, "plan "+other[:12], "the reviewed plan went stale")
}

// The plans shown by karma apply are those the store holds, not only those this process made:
// planned by one process, approved by another (as on AWS, where the functions plan), the plan
// is shown with its hash before it is approved.
func TestApplyShowsPlansItDidNotMake(t *testing.T) {
	g, id := approveShownRepo(t)
	cs := changeSetOfID(t, g, id)
	hash := cs.Nodes["prod/app/a"].Plan.PlanHash
	out := runIn(t, g, 0, "apply", "--auto-approve", "--as", "grace", id)
	mustContain(t, "apply", out, "plans of change "+id, "prod/app/a", "plan "+hash[:12], "1 to add")
	if strings.Index(out, "plan "+hash[:12]) > strings.Index(out, "applied") {
		t.Errorf("the plan is shown after it was applied:\n%s", out)
	}
}

func changeSetOfID(t *testing.T, g *globals, id string) *changeset.ChangeSet {
	t.Helper()
	s, st, err := g.openStack(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	cs, err := st.changeSets.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}
