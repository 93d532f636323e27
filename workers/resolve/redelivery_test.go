package resolve_test

import (
	"context"
	"errors"
	"testing"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/workers/resolve"
)

// A redelivered change.detected builds its change set again before finding it created. When
// that build now fails where the first delivery's did not — the parameter it names is gone, the
// repository cannot be read — the change set created already is announced all the same: left
// unannounced, it would never finish, and every later change set sharing a component would
// queue behind it. (Found by review: the first deliveries below are handled outside the
// runtime, as if the process died before marking their decisions announced.)
func TestRedeliveryAnnouncesItsChangeSetWhenBuildingItAgainFails(t *testing.T) {
	ctx := context.Background()

	t.Run("the parameter is gone", func(t *testing.T) {
		cfg := configs{"prod/vpc/core": `{"cidr":"10.77.0.0/16","az_count":2}`}
		s := newStage(t, wt.ExamplesDir, cfg)
		p := message.ChangeDetected{ChangeSetID: wt.FixedID(31), Source: message.SourceParameter, Components: []message.ComponentRef{{Type: "vpc", Nickname: "core"}},
			Parameter: &message.ParameterWrite{Name: "/iac/vpc/core/config", Version: 12}}
		in := wt.FixedRoot(t, 31, message.TypeChangeDetected, "prod", iamActor, "parameter:/iac/vpc/core/config@12", p)
		first, err := s.w.Handle(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		delete(cfg, "prod/vpc/core")
		again, err := s.w.Handle(ctx, in)
		if err != nil {
			t.Fatalf("redelivery: %v; want the change set created already announced", err)
		}
		if len(again) != len(first) {
			t.Errorf("redelivery announced %v, the first delivery %v", types(again), types(first))
		}
	})

	t.Run("the repository cannot be read", func(t *testing.T) {
		s := newStage(t, wt.ExamplesDir, nil)
		g := &failingGraphs{Graphs: s.w.Graphs}
		s.w.Graphs = g
		p := message.ChangeDetected{ChangeSetID: wt.FixedID(30), Source: message.SourceRequest, Components: []message.ComponentRef{{Type: "vpc", Nickname: "core"}},
			Request: &message.ChangeRequest{ID: "cr-42", Configs: map[string]string{"vpc/core": `{"cidr":"10.99.0.0/16","az_count":3}`}}, AutoApprove: true}
		in := wt.FixedRoot(t, 30, message.TypeChangeDetected, "prod", message.Actor{Kind: "cli", Name: "ada"}, "request:cr-42", p)
		first, err := s.w.Handle(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		g.fail = true
		again, err := s.w.Handle(ctx, in)
		if err != nil {
			t.Fatalf("redelivery: %v; want the change set created already announced", err)
		}
		if len(again) != len(first) {
			t.Errorf("redelivery announced %v, the first delivery %v", types(again), types(first))
		}
		// A change that was never created still fails as it should.
		p.ChangeSetID, p.Request.ID = wt.FixedID(32), "cr-43"
		other := wt.FixedRoot(t, 32, message.TypeChangeDetected, "prod", in.Actor, "request:cr-43", p)
		if _, err := s.w.Handle(ctx, other); err == nil {
			t.Error("a change whose repository cannot be read was resolved")
		}
	})
}

// failingGraphs is resolve.Graphs failing every build while fail is set.
type failingGraphs struct {
	resolve.Graphs
	fail bool
}

func (g *failingGraphs) Build(ctx context.Context, env, commit string, overrides map[string][]byte) (*model.Result, error) {
	if g.fail {
		return nil, errors.New("reading the tree: connection reset")
	}
	return g.Graphs.Build(ctx, env, commit, overrides)
}
