package resolve_test

import (
	"context"
	"testing"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

// A resolve that dies after releasing the change set queued behind a finished one, before
// publishing what it released, loses nothing: the redelivered deployment.applied announces the
// released change set's decisions (it is no longer queued behind the finished one, so the
// release itself has nothing left to do; the change set records that A's end started it).
func TestRedeliveredFinishAnnouncesWhatItReleased(t *testing.T) {
	ctx := context.Background()
	s := newStage(t, wt.ExamplesDir, nil)
	vpc := message.ComponentRef{Type: "vpc", Nickname: "core"}
	a, b := runtimeDetected(t, 60, "prod", vpc, []string{"vpc_id"}), runtimeDetected(t, 61, "prod", vpc, []string{"vpc_id"})
	s.handle(t, a)
	s.handle(t, b)
	idA, idB := wt.FixedID(60), wt.FixedID(61)
	csB, err := s.cs.Get(ctx, idB)
	if err != nil || len(csB.QueuedBehind) != 1 || csB.QueuedBehind[0] != idA {
		t.Fatalf("B queued behind %v (%v), want A", csB.QueuedBehind, err)
	}
	done := applied(t, a, 62, "prod", idA, "prod/ecs-cluster/core", []string{})

	// The first delivery releases B, then the process dies: nothing it returned is published.
	if _, err := s.w.Handle(ctx, done); err != nil {
		t.Fatal(err)
	}
	if csB, _ = s.cs.Get(ctx, idB); csB.StartedBy != idA {
		t.Errorf("B started by %q, want A (%s)", csB.StartedBy, idA)
	}
	if len(csB.QueuedBehind) != 0 || len(csB.Unannounced()) == 0 {
		t.Fatalf("after the first delivery B is queued behind %v with %d decisions unannounced; want released, unannounced",
			csB.QueuedBehind, len(csB.Unannounced()))
	}
	out, action, err := wt.Process(t, s.q, s.w.Handle, done)
	if action != pipeline.Ack || err != nil {
		t.Fatalf("redelivery: %v %v", action, err)
	}
	wt.ValidateAll(t, out)
	scheduled := false
	for _, o := range out {
		var p message.DeploymentScheduled
		if o.Type == message.TypeDeploymentScheduled && message.Decode(o, &p) == nil && p.ChangeSetID == idB {
			scheduled = true
			if o.CorrelationID != b.CorrelationID {
				t.Errorf("B's decision has correlation %s, want B's %s", o.CorrelationID, b.CorrelationID)
			}
		}
	}
	if !scheduled {
		t.Fatalf("the redelivery did not announce B's decisions: %d outputs", len(out))
	}
	if csB, _ = s.cs.Get(ctx, idB); len(csB.Unannounced()) != 0 {
		t.Errorf("B still has %d decisions unannounced", len(csB.Unannounced()))
	}
}
