package resolve_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/governance"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/trigger"
)

// protectedExamples is the examples repository with prod protected: two approvals within an hour.
func protectedExamples(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "repo")
	if err := os.CopyFS(root, os.DirFS(wt.ExamplesDir)); err != nil {
		t.Fatal(err)
	}
	settings := `{"prefix": "/iac", "modules_dir": "components",
		"environments": {"prod": {"protected": true, "approvals": 2, "approval_expiry": "1h"}}}`
	if err := os.WriteFile(filepath.Join(root, "karma.json"), []byte(settings), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// A commit pushed with auto-approve to a protected environment is downgraded to review (and
// change.resolved says so, with the rules); not approved within the hour, the sweep expires it:
// its held plan is skipped with reason expired, in the change set, the lineage and the audit log.
func TestProtectedEnvironmentDowngradesAutoApproveAndExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newChainAt(t, protectedExamples(t))
	roots, err := pushedCommit(trigger.Push{SHA: sha1, Author: gitActor.Name, Message: "vpc", Branch: "main", AutoApprove: true,
		Files: []trigger.FileChange{{Path: "iac/prod/vpc/core/config.json"}}})
	if err != nil || len(roots) != 1 {
		t.Fatalf("ingest: %d messages, %v", len(roots), err)
	}
	if err := pipeline.Publish(ctx, c.q, roots...); err != nil {
		t.Fatal(err)
	}
	c.runUntilIdle(t)
	id := roots[0].CorrelationID + "/prod"
	cs, err := c.changeSets.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if cs.Approved || cs.AutoApprove || !strings.Contains(cs.AutoApproveRefused, "environment prod is protected") || cs.Author != gitActor.Name {
		t.Errorf("auto-approve in prod: approved %v, refused %q, author %q", cs.Approved, cs.AutoApproveRefused, cs.Author)
	}
	if n := cs.Nodes["prod/vpc/core"]; n.State != changeset.Planned || len(c.tf.applies) != 0 {
		t.Fatalf("vpc/core %s, applies %v: want its plan held for review", n.State, c.tf.applies)
	}
	resolved := wt.PayloadOf[message.ChangeResolved](t, auditedOfType(t, c, message.TypeChangeResolved, roots[0].CorrelationID))
	if a := resolved.Approval; a == nil || !a.Protected || a.Required != 2 || a.ExpiresAt == nil || !a.ExpiresAt.Equal(cs.CreatedAt.Add(time.Hour)) || a.AutoApproveRefused == "" {
		t.Errorf("change.resolved approval = %+v", resolved.Approval)
	}

	// Within the hour, nothing to sweep; after it, change.expired.
	if msgs, err := changeset.Sweep(ctx, c.changeSets, time.Now); err != nil || len(msgs) != 0 {
		t.Fatalf("sweep within the hour: %d, %v", len(msgs), err)
	}
	msgs, err := changeset.Sweep(ctx, c.changeSets, func() time.Time { return time.Now().Add(time.Hour) })
	if err != nil || len(msgs) != 1 {
		t.Fatalf("sweep after the hour: %d, %v", len(msgs), err)
	}
	wt.ValidateAll(t, msgs)
	if err := pipeline.Publish(ctx, c.q, msgs...); err != nil {
		t.Fatal(err)
	}
	c.runUntilIdle(t)
	cs, _ = c.changeSets.Get(ctx, id)
	n := cs.Nodes["prod/vpc/core"]
	if !cs.Done() || cs.ExpiredAt.IsZero() || n.State != changeset.Skipped || n.Reason != changeset.ReasonExpired || !strings.Contains(n.Detail, "not approved within 1h0m0s (0 approvals of 2 needed)") {
		t.Errorf("after expiry: done %v, vpc/core %s %s %q", cs.Done(), n.State, n.Reason, n.Detail)
	}
	if _, err := changeset.Approve(ctx, c.changeSets, id, "grace"); err == nil {
		t.Error("an expired change set was approved")
	}
	ds, _ := c.lineage.Deployments(ctx, "prod/vpc/core")
	recorded := false
	for _, d := range ds {
		recorded = recorded || (d.ChangeSetID == id && d.Status == lineage.StatusSkipped && strings.Contains(d.Detail, "expired: not approved within 1h0m0s"))
	}
	if !recorded {
		t.Errorf("the lineage of prod/vpc/core does not record the expiry: %+v", ds)
	}
	if e := auditedOfType(t, c, message.TypeChangeExpired, roots[0].CorrelationID); e.Actor != changeset.ExpiryActor {
		t.Errorf("change.expired actor %+v", e.Actor)
	}
	if again, _ := changeset.Sweep(ctx, c.changeSets, func() time.Time { return time.Now().Add(2 * time.Hour) }); len(again) != 0 {
		t.Errorf("an expired change set swept again: %d", len(again))
	}
}

// auditedOfType is the one message of typ the audit log holds in the change correlated by root.
func auditedOfType(t *testing.T, c *chain, typ, root string) message.Envelope {
	t.Helper()
	recs, err := c.audit.Query(context.Background(), audit.Query{Correlation: root})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Type == typ {
			e, err := message.Parse(r.Body)
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
	}
	t.Fatalf("no %s in the audit log of %s (%d records)", typ, root, len(recs))
	return message.Envelope{}
}

// The operator's floor (KARMA_GOVERNANCE) holds whatever the commit's karma.json says: a commit
// that unprotects prod (auto_approve: always, no approvals) still waits for two approvals, and
// its requester and author may not give them.
func TestGovernanceFloorHoldsAgainstTheCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "repo")
	if err := os.CopyFS(root, os.DirFS(wt.ExamplesDir)); err != nil {
		t.Fatal(err)
	}
	loosened := `{"prefix": "/iac", "modules_dir": "components", "environments": {"prod": {"auto_approve": "always"}}}`
	if err := os.WriteFile(filepath.Join(root, "karma.json"), []byte(loosened), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newChainAt(t, root)
	c.resolver.Floor = &governance.Settings{Environments: map[string]governance.Environment{"prod": {Protected: true, Approvals: 2}}}
	roots, err := pushedCommit(trigger.Push{SHA: sha1, Author: gitActor.Name, Message: "prod: approve everything", Branch: "main", AutoApprove: true,
		Files: []trigger.FileChange{{Path: "karma.json"}, {Path: "iac/prod/vpc/core/config.json"}}})
	if err != nil || len(roots) != 1 {
		t.Fatalf("ingest: %d messages, %v", len(roots), err)
	}
	if err := pipeline.Publish(ctx, c.q, roots...); err != nil {
		t.Fatal(err)
	}
	c.runUntilIdle(t)
	cs, err := c.changeSets.Get(ctx, roots[0].CorrelationID+"/prod")
	if err != nil {
		t.Fatal(err)
	}
	if cs.Approved || !cs.Rules.Protected || cs.Required() != 2 || !strings.Contains(cs.AutoApproveRefused, "environment prod is protected") {
		t.Errorf("prod under the floor: approved %v (by %q), rules %+v, refused %q", cs.Approved, cs.ApprovedBy, cs.Rules, cs.AutoApproveRefused)
	}
	if len(c.tf.applies) != 0 {
		t.Errorf("applied without approval: %v", c.tf.applies)
	}
	if err := cs.CanBeApprovedBy(gitActor.Name, time.Now()); err == nil {
		t.Error("the commit's author may approve their own change in prod")
	}
}
