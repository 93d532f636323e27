package resolve_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	wt "github.com/usekarma/karma/workers/internal/workertest"
)

// A pushed commit that a force push has since removed from its branch is not deployed, though
// the cache clone still holds it (fetched before the force push): its change is dead-lettered
// naming the commit and the branch, and no change set is made. A commit still on the branch
// (the new tip) deploys. Prepare's answer (read outside the state file's transaction) and
// Handle's own agree.
func TestACommitForcePushedAwayIsNotDeployed(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", map[string]string{
		"iac/prod/vpc/core/config.json": `{"az_count": 3}`,
		"components/vpc/main.tf":        "variable \"config\" {}\n",
	})
	a := o.Head(t)
	b := o.Commit(t, "five", map[string]string{"iac/prod/vpc/core/config.json": `{"az_count": 5}`})
	repo, err := gitrepo.OpenCache(filepath.Join(t.TempDir(), "cache"), gitrepo.Remote{URL: o.Bare, Branch: "main"}, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close() })
	if err := repo.Fetch(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	// main rewound past b (its config was a mistake), and a new commit c on it.
	gittest.Git(t, o.Work, "reset", "-q", "--hard", a)
	if err := os.WriteFile(filepath.Join(o.Work, "iac/prod/vpc/core/config.json"), []byte(`{"az_count": 4}`), 0o644); err != nil {
		t.Fatal(err)
	}
	gittest.Git(t, o.Work, "commit", "-q", "-am", "four")
	gittest.Git(t, o.Work, "push", "-q", "-f", "origin", "HEAD:main")
	c := o.Head(t)

	for _, prepare := range []bool{false, true} {
		s := newStage(t, "", nil)
		src := &configrepo.Source{Repo: repo, ModulesRoot: filepath.Join(t.TempDir(), "modules")}
		s.w.Graphs, s.w.Commits = src, src
		h := s.w.Handle
		if prepare {
			h = func(ctx context.Context, in message.Envelope) (out []message.Envelope, err error) {
				pr, err := s.w.Prepare(ctx, in)
				if err != nil {
					return nil, err
				}
				return s.w.Handle(pipeline.WithPrepared(ctx, pr), in)
			}
		}
		late := commitDetected(t, 1, b, []string{"iac/prod/vpc/core/config.json"})
		_, action, err := wt.Process(t, s.q, h, late)
		if action != pipeline.DeadLetter || err == nil || !strings.Contains(err.Error(), b) || !strings.Contains(err.Error(), "not on branch main") {
			t.Fatalf("prepare %v: the force-pushed-away commit: %v, %v; want dead-lettered naming it and the branch", prepare, action, err)
		}
		if all, _ := s.cs.List(context.Background()); len(all) != 0 {
			t.Fatalf("prepare %v: a change set was made from the commit a force push removed: %+v", prepare, all[0])
		}
		out, action, err := wt.Process(t, s.q, h, commitDetected(t, 3, c, []string{"iac/prod/vpc/core/config.json"}))
		if action != pipeline.Ack || err != nil || len(out) == 0 {
			t.Fatalf("prepare %v: the branch's tip: %v, %v, %d messages", prepare, action, err, len(out))
		}
	}
}
