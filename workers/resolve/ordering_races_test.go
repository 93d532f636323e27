package resolve_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
)

// createdAt handles change n of prod/vpc/core's runtime with the stage's clock reading at (the
// change set's CreatedAt), and returns the message.
func (s *stageEnv) createdAt(t *testing.T, n int, at time.Time) message.Envelope {
	t.Helper()
	s.w.Now = func() time.Time { return at }
	in := runtimeDetected(t, n, "prod", message.ComponentRef{Type: "vpc", Nickname: "core"}, []string{"vpc_id"})
	s.handle(t, in)
	return in
}

// Resolve reads its clock (CreatedAt) before building the graph and looking at the unfinished
// change sets, so where several resolves run at once (DynamoDB, concurrent Lambdas), or after
// a clock step, a change set Y whose clock read EARLIER can be created after X and be queued
// behind it. Here X reads t+2s and Y t+1s. Y's creation time is moved past X's
// (changeset.OrderAfter), so a later Z is queued behind Y — the end of the chain — and X's end
// does not start Y and Z together, both deploying prod/ecs-cluster/core.
func TestCreationTimesFollowTheQueueWhateverTheClocks(t *testing.T) {
	s := newStage(t, wt.ExamplesDir, nil)
	x := s.createdAt(t, 80, wt.FixedTime.Add(2*time.Second))
	s.createdAt(t, 81, wt.FixedTime.Add(1*time.Second))
	s.createdAt(t, 82, wt.FixedTime.Add(3*time.Second))
	idX, idY, idZ := wt.FixedID(80), wt.FixedID(81), wt.FixedID(82)
	if behind, _ := s.state(t, idY); !slices.Equal(behind, []string{idX}) {
		t.Fatalf("Y queued behind %v, want X", behind)
	}
	if zBehind, _ := s.state(t, idZ); !slices.Equal(zBehind, []string{idY}) {
		t.Errorf("Z queued behind %v, want Y (X=%s, Y=%s)", zBehind, idX, idY)
	}
	s.process(t, applied(t, x, 90, "prod", idX, "prod/ecs-cluster/core", []string{}))
	_, yStarted := s.state(t, idY)
	_, zStarted := s.state(t, idZ)
	if yStarted && zStarted {
		t.Fatalf("X's end started both Y and Z: Z deploys prod/ecs-cluster/core while Y, earlier and unfinished, deploys it too")
	}
}

// Ordering a change set again counts only those created before it, which must be those ahead
// of it in the queue, whatever the clocks said. A (t0) runs, B (t1) behind A, X (t3) behind B,
// Y (clock t2, created after X: see above) behind X. B is superseded by X: X is ordered again
// behind A, not behind Y (which waits for X): no two change sets wait for each other, and
// after A ends X starts.
func TestOrderingAgainAfterASupersessionMakesNoCycle(t *testing.T) {
	s := newStage(t, wt.ExamplesDir, nil)
	a := s.createdAt(t, 80, wt.FixedTime)
	b := s.createdAt(t, 81, wt.FixedTime.Add(1*time.Second))
	s.createdAt(t, 82, wt.FixedTime.Add(3*time.Second))
	s.createdAt(t, 83, wt.FixedTime.Add(2*time.Second))
	idA, idB, idX, idY := wt.FixedID(80), wt.FixedID(81), wt.FixedID(82), wt.FixedID(83)
	if behind, _ := s.state(t, idY); !slices.Contains(behind, idX) {
		t.Fatalf("Y queued behind %v, want X", behind)
	}
	sup, err := message.New(message.TypeChangeSuperseded, "prod", message.Actor{Kind: "cli", Name: "ada"}, "change.superseded:"+idB,
		message.ChangeSuperseded{ChangeSetID: idB, SupersededBy: idX})
	if err != nil {
		t.Fatal(err)
	}
	sup.CorrelationID, sup.CausationID = b.CorrelationID, b.ID
	s.process(t, sup)
	s.process(t, applied(t, a, 90, "prod", idA, "prod/ecs-cluster/core", []string{}))
	xBehind, xStarted := s.state(t, idX)
	yBehind, yStarted := s.state(t, idY)
	if !xStarted && !yStarted {
		t.Fatalf("after A's end nothing runs: X queued behind %v, Y queued behind %v (X=%s Y=%s): each waits for the other, forever",
			xBehind, yBehind, idX, idY)
	}
}

// staleUnfinished is the embedded store whose Unfinished, while extra is set, also lists extra:
// what a resolve on DynamoDB reads when extra finishes (and its release runs) between requeue's
// read of the unfinished change sets and its update.
type staleUnfinished struct {
	*embedded.ChangeSets
	extra *changeset.Queued
}

func (s *staleUnfinished) Unfinished(ctx context.Context, env string, components []string) ([]changeset.Queued, error) {
	list, err := s.ChangeSets.Unfinished(ctx, env, components)
	if err == nil && s.extra != nil {
		list = append(list, *s.extra)
	}
	return list, err
}

// A change set that an end orders again and starts records that end as what started it, even
// when the ordering had to look twice: the end's redelivery then announces its decisions.
//
// A runs, B (behind A) and C (behind B). A ends: B starts. B is rejected: C is ordered again;
// requeue reads the unfinished change sets as if A's end were still in flight (A listed),
// queues C behind A, sees A finished, orders again and starts C, started by B's end. The
// handler of the rejection dies before publishing; its redelivery announces C's decisions.
func TestStartedByIsTheEndBeingHandledWhenOrderedTwice(t *testing.T) {
	s, in, id := queuedTrio(t)
	st := &staleUnfinished{ChangeSets: s.cs}
	s.w.ChangeSets = st
	ctx := context.Background()
	s.process(t, applied(t, in[0], 90, "prod", id[0], "prod/ecs-cluster/core", []string{}))
	if _, started := s.state(t, id[1]); !started {
		t.Fatal("B did not start after A's end")
	}
	a, err := s.cs.Get(ctx, id[0])
	if err != nil || !a.Done() {
		t.Fatalf("A: done %v, %v", a != nil && a.Done(), err)
	}
	c, err := s.cs.Get(ctx, id[2])
	if err != nil {
		t.Fatal(err)
	}
	var comps []string
	for k := range c.Nodes {
		comps = append(comps, k)
	}
	slices.Sort(comps)
	st.extra = &changeset.Queued{ID: a.ID, CreatedAt: a.CreatedAt, Components: comps}
	rej, err := message.New(message.TypeChangeRejected, "prod", message.Actor{Kind: "cli", Name: "ada"}, "change.rejected:"+id[1],
		message.ChangeRejected{ChangeSetID: id[1], Reason: "not now"})
	if err != nil {
		t.Fatal(err)
	}
	rej.CorrelationID, rej.CausationID = in[1].CorrelationID, in[1].CorrelationID
	// The first delivery: handled, then the process dies before publishing.
	if _, err := s.w.Handle(ctx, rej); err != nil {
		t.Fatalf("rejecting B: %v", err)
	}
	st.extra = nil
	c, err = s.cs.Get(ctx, id[2])
	if err != nil || !c.Started || len(c.Unannounced()) == 0 {
		t.Fatalf("C after B's rejection: started %v, %d unannounced, %v", c.Started, len(c.Unannounced()), err)
	}
	t.Logf("C started by %s (A=%s, B=%s)", c.StartedBy, id[0], id[1])
	out := s.process(t, rej) // the redelivery
	if !slices.ContainsFunc(out, func(o message.Envelope) bool { return o.CorrelationID == in[2].CorrelationID }) {
		t.Fatalf("the redelivery of B's rejection announced none of C's decisions (C started by %s, %d unannounced): C never deploys", c.StartedBy, len(c.Unannounced()))
	}
}

// failAfterUpdate is staleUnfinished whose Update of change set id, while armed, writes and
// then fails: the process died after the write (or the store's answer was lost), so the
// message is delivered again.
type failAfterUpdate struct {
	*staleUnfinished
	id    string
	armed bool
}

func (s *failAfterUpdate) Update(ctx context.Context, id string, fn func(*changeset.ChangeSet) error) (*changeset.ChangeSet, error) {
	cs, err := s.staleUnfinished.Update(ctx, id, fn)
	if err == nil && s.armed && id == s.id {
		s.armed = false
		return nil, errors.New("connection reset after the write")
	}
	return cs, err
}

// Ordering again queues a change set behind what it read as unfinished; if that finished
// between the read and the update, only requeue's own second look notices, and a process that
// dies right after the update skips it. The redelivered end then looks at the change sets
// queued behind something else (release) and orders again those queued behind a done one, so
// none waits behind a done change set forever.
//
// A runs, B behind A, C behind B. A ends: B starts. B is rejected; requeue of C reads A as
// still unfinished (its end in flight), queues C behind A, and the process dies.
func TestRedeliveredEndOrdersAgainWhatWaitsBehindADoneOne(t *testing.T) {
	s, in, id := queuedTrio(t)
	st := &failAfterUpdate{staleUnfinished: &staleUnfinished{ChangeSets: s.cs}, id: id[2]}
	s.w.ChangeSets = st
	ctx := context.Background()
	s.process(t, applied(t, in[0], 90, "prod", id[0], "prod/ecs-cluster/core", []string{}))
	a, err := s.cs.Get(ctx, id[0])
	if err != nil || !a.Done() {
		t.Fatalf("A: %v", err)
	}
	c, err := s.cs.Get(ctx, id[2])
	if err != nil {
		t.Fatal(err)
	}
	var comps []string
	for k := range c.Nodes {
		comps = append(comps, k)
	}
	slices.Sort(comps)
	st.extra, st.armed = &changeset.Queued{ID: a.ID, CreatedAt: a.CreatedAt, Components: comps}, true
	rej, err := message.New(message.TypeChangeRejected, "prod", message.Actor{Kind: "cli", Name: "ada"}, "change.rejected:"+id[1],
		message.ChangeRejected{ChangeSetID: id[1], Reason: "not now"})
	if err != nil {
		t.Fatal(err)
	}
	rej.CorrelationID, rej.CausationID = in[1].CorrelationID, in[1].CorrelationID
	if _, err := s.w.Handle(ctx, rej); err == nil {
		t.Fatal("the first delivery did not fail")
	}
	st.extra = nil
	s.process(t, rej) // the redelivery
	if behind, started := s.state(t, id[2]); !started {
		t.Fatalf("after the redelivery of B's rejection C is queued behind %v (A=%s, done): nothing will ever release it", behind, id[0])
	}
}

// lookRacer is the embedded store as DynamoDB behaves under concurrent resolves: between, when
// set, runs (once) right after the next look at the unfinished change sets — another resolve's
// whole handling, its create included, coming between that look and the create it orders —
// and CreateAfterLook refuses, as the DynamoDB store's does (shared/dynamo), a change set whose
// look missed one sharing a component with it, created since.
type lookRacer struct {
	*embedded.ChangeSets
	between func()
}

func (s *lookRacer) Unfinished(ctx context.Context, env string, components []string) ([]changeset.Queued, error) {
	list, err := s.ChangeSets.Unfinished(ctx, env, components)
	if run := s.between; run != nil && err == nil {
		s.between = nil
		run()
	}
	return list, err
}

func (s *lookRacer) CreateAfterLook(ctx context.Context, cs *changeset.ChangeSet, looked []string) (bool, error) {
	now, err := s.ChangeSets.Unfinished(ctx, cs.Env, slices.Sorted(maps.Keys(cs.Nodes)))
	if err != nil {
		return false, err
	}
	for _, q := range now {
		if q.ID != cs.ID && !slices.Contains(looked, q.ID) {
			return false, fmt.Errorf("%s created since the look: %w", q.ID, changeset.ErrLookedTooEarly)
		}
	}
	return s.ChangeSets.Create(ctx, cs)
}

// Two resolves of one environment (concurrent Lambdas, queues that are not FIFO) each look at
// the unfinished change sets before either creates: B looks, A is resolved and created, then B
// is created. B's look did not see A; created as it was ordered, B would start beside A, both
// deploying prod/ecs-cluster/core at once. The store refuses B's create
// (changeset.ErrLookedTooEarly), and resolve looks again: B is queued behind A, and A's end
// starts it.
func TestTwoResolvesLookingBeforeEitherCreatesRunOneAfterTheOther(t *testing.T) {
	s := newStage(t, wt.ExamplesDir, nil)
	st := &lookRacer{ChangeSets: s.cs}
	s.w.ChangeSets = st
	ref := message.ComponentRef{Type: "vpc", Nickname: "core"}
	inA := runtimeDetected(t, 80, "prod", ref, []string{"vpc_id"})
	inB := runtimeDetected(t, 81, "prod", ref, []string{"vpc_id"})
	idA, idB := wt.FixedID(80), wt.FixedID(81)
	st.between = func() { s.handle(t, inA) }
	s.handle(t, inB)
	aBehind, aStarted := s.state(t, idA)
	bBehind, bStarted := s.state(t, idB)
	if !aStarted || len(aBehind) > 0 {
		t.Fatalf("A queued behind %v, started %v; want started", aBehind, aStarted)
	}
	if bStarted || !slices.Equal(bBehind, []string{idA}) {
		t.Fatalf("B queued behind %v, started %v; want queued behind A (%s): both deploy prod/ecs-cluster/core at once", bBehind, bStarted, idA)
	}
	s.process(t, applied(t, inA, 90, "prod", idA, "prod/ecs-cluster/core", []string{}))
	if _, started := s.state(t, idB); !started {
		t.Error("A's end did not start B")
	}
}
