package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
)

// governedRepo is the demo repository with prod protected (two approvals) and Ada's CLI name
// mapped to her Git identity; approvalExpiry is prod's approval_expiry.
func governedRepo(t *testing.T, approvalExpiry string) (repo, state string) {
	t.Helper()
	repo, state = demoRepo(t)
	settings := `{"prefix": "/iac", "modules_dir": "components",
  "environments": {"prod": {"protected": true, "approvals": 2, "approval_expiry": "` + approvalExpiry + `"}},
  "identities": {"ada": ["Ada <ada@example.com>", "ada-cli"]}}`
	if err := os.WriteFile(filepath.Join(repo, "karma.json"), []byte(settings), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "-c", "user.name=Ada", "-c", "user.email=ada@example.com", "commit", "-qa", "--amend", "--no-edit")
	return repo, state
}

// A protected environment from the command line: --auto-approve is downgraded for prod (dev,
// unprotected, deploys at once); the commit's author (by her CLI name) is refused with exit 1,
// audited; two distinct approvers deploy it, with real terraform; the audit log names them.
func TestProtectedEnvironmentFromTheCLI(t *testing.T) {
	needTerraform(t)
	repo, state := governedRepo(t, "72h")
	g := &globals{paramsBackend: "embedded"}
	base := []string{"--repo", repo, "--state-dir", state}
	sha := git(t, repo, "rev-parse", "HEAD")
	karmaOK(t, g, append([]string{"ingest", "commit", "--auto-approve"}, base...)...)
	out := karmaOK(t, g, append([]string{"apply", "--auto-approve", "--as", "grace"}, base...)...)
	prod, dev := changeSetOf(t, state, sha, "prod"), changeSetOf(t, state, sha, "dev")
	if !dev.Done() || !dev.AutoApprove || prod.AutoApprove || !strings.Contains(prod.AutoApproveRefused, "environment prod is protected") {
		t.Fatalf("dev done %v auto %v; prod auto %v refused %q", dev.Done(), dev.AutoApprove, prod.AutoApprove, prod.AutoApproveRefused)
	}
	if !strings.Contains(out, "approval by grace recorded (1 of 2)") || !strings.Contains(out, "waiting for approval: 1 of 2") {
		t.Errorf("apply output does not say prod waits for a second approval:\n%s", out)
	}

	code, _, errOut := karmaWith(t, g, append([]string{"apply", "--auto-approve", "--as", "ada-cli", prod.ID}, base...)...)
	if code != 1 || !strings.Contains(errOut, "ada-cli may not approve change set "+prod.ID+": Ada <ada@example.com> requested it") {
		t.Errorf("the author approving: exit %d\n%s", code, errOut)
	}
	karmaOK(t, g, append([]string{"apply", "--auto-approve", "--as", "grace", prod.ID}, base...)...) // counted once
	if cs := changeSetOf(t, state, sha, "prod"); cs.Approved || len(cs.Approvals) != 1 {
		t.Fatalf("grace approving twice: approved %v, %d approvals", cs.Approved, len(cs.Approvals))
	}
	karmaOK(t, g, append([]string{"apply", "--auto-approve", "--as", "linus", prod.ID}, base...)...)
	prod = changeSetOf(t, state, sha, "prod")
	if !prod.Done() || !prod.Approved || prod.ApprovedBy != "grace, linus" || prod.Nodes["prod/vpc/core"].State != changeset.Applied {
		t.Fatalf("prod after two approvals: done %v approved by %q", prod.Done(), prod.ApprovedBy)
	}

	_, a, _ := stores(t, state)
	recs, err := a.Query(context.Background(), audit.Query{Correlation: prod.CorrelationID})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, r := range recs {
		switch r.Type {
		case EntryCLIApproved, EntryCLIApprovalRefused:
			got[r.Type] = append(got[r.Type], r.Actor)
		case message.TypeDeploymentApproved:
			if !strings.Contains(string(r.Body), `"approved_by":"grace, linus"`) {
				t.Errorf("deployment.approved: %s", r.Body)
			}
		}
	}
	if strings.Join(got[EntryCLIApprovalRefused], ",") != "ada-cli" || strings.Join(got[EntryCLIApproved], ",") != "grace,grace,linus" {
		t.Errorf("CLI decisions audited: %v", got)
	}
}

// Rejection and expiry from the command line: a rejected change's plans are skipped (reason
// rejected); a change not approved within prod's approval_expiry is expired by the next run
// (reason expired) and can no longer be approved.
func TestRejectAndExpireFromTheCLI(t *testing.T) {
	needTerraform(t)
	repo, state := governedRepo(t, "1ms")
	g := &globals{paramsBackend: "embedded"}
	base := []string{"--repo", repo, "--state-dir", state}
	sha := git(t, repo, "rev-parse", "HEAD")
	karmaOK(t, g, append([]string{"ingest", "commit"}, base...)...)
	karmaOK(t, g, append([]string{"plan"}, base...)...)
	dev := changeSetOf(t, state, sha, "dev")
	karmaOK(t, g, append([]string{"reject", dev.ID, "--reason", "not today", "--as", "grace"}, base...)...)
	prod := changeSetOf(t, state, sha, "prod") // past its expiry (1ms) by now
	if out := karmaOK(t, g, append([]string{"expire"}, base...)...); !strings.Contains(out, "change "+prod.ID+" expired at") {
		t.Errorf("karma expire:\n%s", out)
	}
	karmaOK(t, g, append([]string{"plan"}, base...)...) // carries out the rejection and the expiry
	dev = changeSetOf(t, state, sha, "dev")
	if n := dev.Nodes["dev/vpc/core"]; !dev.Done() || n.Reason != changeset.ReasonRejected || n.Detail != "rejected by grace: not today" {
		t.Errorf("dev after the rejection: %+v", n)
	}
	prod = changeSetOf(t, state, sha, "prod")
	if n := prod.Nodes["prod/vpc/core"]; !prod.Done() || prod.ExpiredAt.IsZero() || n.Reason != changeset.ReasonExpired {
		t.Errorf("prod after expiry: %+v", n)
	}
	code, _, errOut := karmaWith(t, g, append([]string{"apply", "--auto-approve", "--as", "grace", prod.ID}, base...)...)
	if code != 1 || !strings.Contains(errOut, "expired") {
		t.Errorf("approving an expired change: exit %d\n%s", code, errOut)
	}
}
