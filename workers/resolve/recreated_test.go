package resolve_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/trigger"
	"github.com/usekarma/karma/workers/ingest"
)

// histories is ingest's ParameterReader over one environment's embedded store.
type histories struct{ st *embedded.ParamStore }

func (h histories) History(ctx context.Context, _, name string) ([]params.Parameter, error) {
	return h.st.History(ctx, name)
}

// A change names the version of /config it is about and when that version was written. The
// parameter may be deleted and created again before resolve handles the change (a slow queue,
// a message redriven from the dead-letter queue days later): its versions start again at 1, and
// the version of the number the change names is then another write, with a change of its own.
// Resolve refuses the change for good, naming both writes — it does not deploy the new value
// under a lineage naming the old write. A change made before the time was carried names none:
// the version's number decides, as before.
func TestAChangeOfAParameterCreatedAgainSinceIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const name = "/iac/vpc/core/config"
	s := newStage(t, wt.ExamplesDir, nil)
	ps, err := embedded.NewParamStore(wt.NewDB(t), "prod")
	if err != nil {
		t.Fatal(err)
	}
	s.w.Configs = storeConfigs{ps}
	ing := &ingest.Worker{Parameters: histories{ps}, Prefix: "/iac"}
	// changeOf is the change ingest makes of the version written last.
	changeOf := func(v int64) message.Envelope {
		t.Helper()
		cur, err := ps.Get(ctx, name)
		if err != nil || cur.Version != v {
			t.Fatalf("%s: version %d, %v; want %d", name, cur.Version, err, v)
		}
		tr, err := trigger.ParameterChanged(trigger.ParameterChange{Env: "prod", Name: name, Operation: "Update", Version: v, WrittenAt: cur.LastModified})
		if err != nil {
			t.Fatal(err)
		}
		out, err := ing.Handle(ctx, tr)
		if err != nil || len(out) != 1 {
			t.Fatalf("ingest: %v, %v", out, err)
		}
		return out[0]
	}
	const before, after = `{"cidr":"10.5.0.0/16","az_count":2}`, `{"cidr":"10.6.0.0/16","az_count":3}`
	if _, err := ps.Put(ctx, params.PutInput{Name: name, Value: before, User: "erin"}); err != nil {
		t.Fatal(err)
	}
	old := changeOf(1)
	first, err := ps.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	// Deleted and created again before resolve handles the change, to version 1 again (in
	// another millisecond than the version 1 before it: nearly always at once).
	var now params.Parameter
	for now.LastModified.UnixMilli() == first.LastModified.UnixMilli() || now.Version == 0 {
		if err := ps.Delete(ctx, name); err != nil {
			t.Fatal(err)
		}
		if r, err := ps.Put(ctx, params.PutInput{Name: name, Value: after, User: "mallory"}); err != nil || r.Version != 1 {
			t.Fatalf("put: %+v, %v; want version 1", r, err)
		}
		if now, err = ps.Get(ctx, name); err != nil {
			t.Fatal(err)
		}
	}

	_, action, err := wt.Process(t, s.q, s.w.Handle, old)
	if action != pipeline.DeadLetter || !errors.Is(err, params.ErrRecreated) {
		t.Fatalf("the change of the version 1 deleted since: action %v, err %v; want it dead-lettered as re-created", action, err)
	}
	want := "version 1 of " + name + " was written at " + now.LastModified.UTC().Format("2006-01-02T15:04:05.000Z") +
		", the change names " + first.LastModified.UTC().Format("2006-01-02T15:04:05.000Z") + ": the parameter was re-created since"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q, want it to say %q", err, want)
	}
	if cs, err := s.cs.Get(ctx, old.CorrelationID); !errors.Is(err, changeset.ErrNotFound) {
		t.Errorf("a change set was made of the change of the deleted version: %+v (%v)", cs, err)
	}
	dead, err := s.q.ListDead(ctx, "harness")
	if err != nil || len(dead) != 1 || !strings.Contains(dead[0].Reason, want) {
		t.Errorf("dead letters %+v, %v; want the change with its reason", dead, err)
	}

	// The version 1 written since has its own change, which deploys its value.
	again := changeOf(1)
	if again.IdempotencyKey == old.IdempotencyKey {
		t.Fatalf("both changes are keyed %q", old.IdempotencyKey)
	}
	s.handle(t, again)
	if cs, err := s.cs.Get(ctx, again.CorrelationID); err != nil || cs.Nodes["prod/vpc/core"] == nil || string(cs.Nodes["prod/vpc/core"].Config) != after {
		t.Errorf("the change of the version 1 written since: %+v, %v; want it to deploy %s", cs, err, after)
	}

	// A change made before the time was carried names none: version 1 is version 1.
	p := wt.PayloadOf[message.ChangeDetected](t, old)
	p.ChangeSetID, p.Parameter.WrittenAt = wt.FixedID(77), time.Time{}
	legacy := wt.FixedRoot(t, 77, message.TypeChangeDetected, "prod", iamActor, "parameter:"+name+"@1", p)
	wt.Validate(t, legacy)
	s.handle(t, legacy)
	if cs, err := s.cs.Get(ctx, legacy.ID); err != nil || cs.Nodes["prod/vpc/core"] == nil || string(cs.Nodes["prod/vpc/core"].Config) != after {
		t.Errorf("a change naming no time: %+v, %v; want version 1 as it is, %s", cs, err, after)
	}
}
