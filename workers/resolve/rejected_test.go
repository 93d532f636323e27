package resolve_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/trigger"
)

// Two unapproved changes of prod/vpc/core: B waits behind A. Rejecting A skips what is left of
// it — its plan held for review — naming who and why, in the change set and the lineage, and B
// starts.
func TestRejectedChangeIsSkippedAndReleasesWhatWaited(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newChain(t)
	change := func(sha string) string {
		pushed, err := trigger.GitPushed(trigger.Push{SHA: sha, Author: gitActor.Name, Message: "vpc", Branch: "main",
			Files: []trigger.FileChange{{Path: "iac/prod/vpc/core/config.json"}}}, "components", "")
		if err != nil {
			t.Fatalf("trigger: %v", err)
		}
		if err := pipeline.Publish(ctx, c.q, pushed); err != nil {
			t.Fatal(err)
		}
		c.runUntilIdle(t)
		return pushed.CorrelationID // the change the ingest stage made of it
	}
	a, b := change(sha1), change(sha2)
	idA, idB := a+"/prod", b+"/prod"
	csB, err := c.changeSets.Get(ctx, idB)
	if err != nil || len(csB.QueuedBehind) != 1 || csB.QueuedBehind[0] != idA {
		t.Fatalf("B queued behind %v (%v), want A", csB.QueuedBehind, err)
	}

	// The API's part: record the decision, then publish change.rejected.
	by := message.Actor{Kind: "api", Name: "linus"}
	if _, err := c.changeSets.Update(ctx, idA, func(cs *changeset.ChangeSet) error { return cs.Reject(by.Name, "wrong account") }); err != nil {
		t.Fatal(err)
	}
	m, err := message.New(message.TypeChangeRejected, "prod", by, "change.rejected:"+idA, message.ChangeRejected{ChangeSetID: idA, Reason: "wrong account"})
	if err != nil {
		t.Fatal(err)
	}
	m.CorrelationID, m.CausationID = a, a
	wt.Validate(t, m)
	if err := pipeline.Publish(ctx, c.q, m); err != nil {
		t.Fatal(err)
	}
	c.runUntilIdle(t)

	csA, _ := c.changeSets.Get(ctx, idA)
	n := csA.Nodes["prod/vpc/core"]
	if !csA.Done() || n.State != changeset.Skipped || n.Reason != changeset.ReasonRejected || n.Detail != "rejected by linus: wrong account" {
		t.Fatalf("A's vpc/core after the rejection: %s %s %q (A done: %v)", n.State, n.Reason, n.Detail, csA.Done())
	}
	csB, _ = c.changeSets.Get(ctx, idB)
	if nb := csB.Nodes["prod/vpc/core"]; len(csB.QueuedBehind) != 0 || nb.State != changeset.Planned {
		t.Errorf("B after A's rejection: queued behind %v, vpc/core %s; want started and its plan held", csB.QueuedBehind, nb.State)
	}
	if len(c.tf.applies) != 0 {
		t.Errorf("applied: %v", c.tf.applies)
	}
	ds, _ := c.lineage.Deployments(ctx, "prod/vpc/core")
	recorded := false
	for _, d := range ds {
		recorded = recorded || (d.ChangeSetID == idA && d.Status == lineage.StatusSkipped && strings.Contains(d.Detail, "rejected by linus"))
	}
	if !recorded {
		t.Errorf("the lineage of prod/vpc/core does not record A rejected: %+v", ds)
	}
	recs, _ := c.audit.Query(ctx, audit.Query{Correlation: a, Actor: "linus"})
	types := map[string]int{}
	for _, r := range recs {
		types[r.Type]++
	}
	if types[message.TypeChangeRejected] != 1 || types[message.TypeDeploymentSkipped] != 6 {
		t.Errorf("audit records of the rejection by linus: %v, want the change.rejected and A's 6 skips", types)
	}
	for _, name := range stageNames {
		if dead, _ := c.q.ListDead(ctx, name); len(dead) != 0 {
			t.Errorf("%s dead letters: %+v", name, dead)
		}
	}

	// Redelivered, it changes nothing; an approved change set is never rejected.
	again := m
	again.ID = m.ID[:len(m.ID)-1] + "f"
	out, err := c.resolver.Handle(ctx, again)
	if err != nil || len(out) != 0 {
		t.Errorf("redelivered rejection: %d messages, %v", len(out), err)
	}
	c.approve(t, idB, "grace")
	rejectB, _ := message.New(message.TypeChangeRejected, "prod", by, "change.rejected:"+idB, message.ChangeRejected{ChangeSetID: idB, Reason: "late"})
	if _, err := c.resolver.Handle(ctx, rejectB); pipeline.Classify(err) != pipeline.DeadLetter || !errors.Is(err, changeset.ErrCannotReject) {
		t.Errorf("rejecting an approved change set: %v, want it dead-lettered (ErrCannotReject)", err)
	}
}
