package graphwrite_test

import (
	"context"
	"fmt"
	"testing"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

// The change set of a commit removing an environment's last component (resolve: its held
// destroys) names a commit that has no such environment any more: its graph is the empty one,
// written (the components it stored are gone from Git), not a build error retried until the
// message is dead-lettered. Whether built in Prepare or in Handle.
func TestAnEnvironmentGoneFromTheCommitHasTheEmptyGraph(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for i, viaPrepare := range []bool{false, true} {
		t.Run(fmt.Sprintf("prepare=%v", viaPrepare), func(t *testing.T) {
			t.Parallel()
			s := newStage(t)
			b := graph.NewBuilder(1)
			if _, err := b.AddComponent(graph.Component{ID: "sandbox/vpc/core", Env: "sandbox", Type: "vpc", Nickname: "core"}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.graph.WriteAt(ctx, b.Graph(), "sandbox", "0000000000000000000000000000000000000001"); err != nil {
				t.Fatal(err)
			}
			root := wt.FixedRoot(t, 70+i, message.TypeChangeDetected, "", gitActor, "git:"+sha1, message.ChangeDetected{ChangeSetID: wt.FixedID(70 + i),
				Source: message.SourceGit, Components: []message.ComponentRef{}, Files: []string{"iac/sandbox/vpc/core/config.json"},
				Removed: []message.ComponentRef{{Type: "vpc", Nickname: "core"}}, Commit: &message.Commit{SHA: sha1, Author: gitActor.Name}})
			csID := root.ID + "/sandbox"
			in := wt.FixedDerive(t, root, 10, message.TypeChangeResolved, "resolved:"+csID, message.ChangeResolved{ChangeSetID: csID,
				Source: message.SourceGit, Commit: sha1, RootCauses: []message.Cause{{Kind: message.CauseCommit, ID: sha1}},
				Roots: []string{"sandbox/vpc/core"}, Affected: []string{"sandbox/vpc/core"}, Waves: [][]string{{"sandbox/vpc/core"}}})
			in.Env = "sandbox"
			wt.Validate(t, in)
			h := s.w.Handle
			if viaPrepare {
				prepared, err := s.w.Prepare(ctx, in)
				if err != nil {
					t.Fatal(err)
				}
				h = func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
					return s.w.Handle(pipeline.WithPrepared(ctx, prepared), in)
				}
			}
			if _, action, err := wt.Process(t, s.q, h, in); action != pipeline.Ack || err != nil {
				t.Fatalf("action %v, err %v; want an ack", action, err)
			}
			if c, err := s.lineage.Change(ctx, csID); err != nil || c.Commit != sha1 {
				t.Errorf("change %s: %+v, %v", csID, c, err)
			}
			g, err := s.graph.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range g.Components {
				if c.Env == "sandbox" {
					t.Errorf("the graph store still holds %s, which the commit removed", c.ID)
				}
			}
			if got, _ := s.graph.Commit(ctx, "sandbox"); got != sha1 {
				t.Errorf("stored graph's commit = %q, want %s", got, sha1)
			}
		})
	}
}
