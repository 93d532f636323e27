package resolve_test

import (
	"context"
	"slices"
	"testing"
	"time"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

// queuedTrio is three changes of prod/vpc/core's runtime, A, B and C in that order, on a stage
// whose clock moves a second per reading (so that C is later than B, as a supersession needs).
func queuedTrio(t *testing.T) (*stageEnv, [3]message.Envelope, [3]string) {
	t.Helper()
	s := newStage(t, wt.ExamplesDir, nil)
	tick := wt.FixedTime
	s.w.Now = func() time.Time { tick = tick.Add(time.Second); return tick }
	vpc := message.ComponentRef{Type: "vpc", Nickname: "core"}
	var in [3]message.Envelope
	var ids [3]string
	for i := range in {
		in[i] = runtimeDetected(t, 80+i, "prod", vpc, []string{"vpc_id"})
		s.handle(t, in[i])
		ids[i] = wt.FixedID(80 + i)
	}
	return s, in, ids
}

// state is change set id's QueuedBehind and whether it started.
func (s *stageEnv) state(t *testing.T, id string) ([]string, bool) {
	t.Helper()
	cs, err := s.cs.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return cs.QueuedBehind, cs.Started
}

// process handles in as a delivery (its outputs may continue other change sets' stories).
func (s *stageEnv) process(t *testing.T, in message.Envelope) []message.Envelope {
	t.Helper()
	out, action, err := wt.Process(t, s.q, s.w.Handle, in)
	if action != pipeline.Ack || err != nil {
		t.Fatalf("%s: action %v, err %v", in.Type, action, err)
	}
	wt.ValidateAll(t, out)
	return out
}

// A later change set waits directly behind the latest earlier one sharing its component only:
// C behind B, B behind A. A's end starts B and leaves C as it is; B's end starts C. So a change
// set's end updates one change set behind it, not every later one.
func TestQueuedBehindTheLatestEarlierChangeSetOnly(t *testing.T) {
	s, in, id := queuedTrio(t)
	if behind, started := s.state(t, id[1]); !slices.Equal(behind, []string{id[0]}) || started {
		t.Fatalf("B queued behind %v (started %v), want A only", behind, started)
	}
	if behind, started := s.state(t, id[2]); !slices.Equal(behind, []string{id[1]}) || started {
		t.Fatalf("C queued behind %v (started %v), want B only (B waits for A)", behind, started)
	}
	s.process(t, applied(t, in[0], 90, "prod", id[0], "prod/ecs-cluster/core", []string{}))
	if behind, started := s.state(t, id[1]); len(behind) != 0 || !started {
		t.Fatalf("after A's end B is queued behind %v (started %v); want started", behind, started)
	}
	if behind, started := s.state(t, id[2]); !slices.Equal(behind, []string{id[1]}) || started {
		t.Fatalf("after A's end C is queued behind %v (started %v); want still behind B", behind, started)
	}
	out := s.process(t, applied(t, in[1], 91, "prod", id[1], "prod/ecs-cluster/core", []string{}))
	if behind, started := s.state(t, id[2]); len(behind) != 0 || !started {
		t.Fatalf("after B's end C is queued behind %v (started %v); want started", behind, started)
	}
	if !slices.ContainsFunc(out, func(o message.Envelope) bool { return o.CorrelationID == in[2].CorrelationID }) {
		t.Errorf("B's end announced none of C's decisions: %d messages", len(out))
	}
}

// B, queued behind A, is superseded by C, queued behind B: B ends without having run, so C must
// not start while A, ahead of B, is still deploying the same component. C is queued behind A
// instead, and starts when A ends.
func TestSupersededWhileQueuedOrdersAgainWhatWaitedBehindIt(t *testing.T) {
	s, in, id := queuedTrio(t)
	by := message.Actor{Kind: "cli", Name: "ada"}
	sup, err := message.New(message.TypeChangeSuperseded, "prod", by, "change.superseded:"+id[1],
		message.ChangeSuperseded{ChangeSetID: id[1], SupersededBy: id[2]})
	if err != nil {
		t.Fatal(err)
	}
	sup.CorrelationID, sup.CausationID = in[1].CorrelationID, in[1].ID
	s.process(t, sup)
	b, err := s.cs.Get(context.Background(), id[1])
	if err != nil || !b.Done() || b.SupersededBy != id[2] {
		t.Fatalf("B after the supersession: done %v, superseded by %q (%v)", b.Done(), b.SupersededBy, err)
	}
	if behind, started := s.state(t, id[2]); !slices.Equal(behind, []string{id[0]}) || started {
		t.Fatalf("after B was superseded C is queued behind %v (started %v); want behind A, which still deploys", behind, started)
	}
	s.process(t, applied(t, in[0], 92, "prod", id[0], "prod/ecs-cluster/core", []string{}))
	c, err := s.cs.Get(context.Background(), id[2])
	if err != nil || len(c.QueuedBehind) != 0 || !c.Started || c.StartedBy != id[0] {
		t.Fatalf("after A's end C is queued behind %v (started %v by %q, %v); want started by A", c.QueuedBehind, c.Started, c.StartedBy, err)
	}
	if n := c.Nodes["prod/ecs-cluster/core"]; n == nil || n.State == changeset.Pending {
		t.Errorf("C's ecs-cluster/core after its start: %+v; want decided", n)
	}
}
