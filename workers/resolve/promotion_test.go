package resolve_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/promotion"
)

// promotedExamples is the examples repository with a promotion order in its karma.json.
func promotedExamples(t *testing.T, order string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(wt.ExamplesDir)); err != nil {
		t.Fatal(err)
	}
	settings := `{"prefix": "/iac", "modules_dir": "components", "promotion": ` + order + `}`
	if err := os.WriteFile(filepath.Join(dir, "karma.json"), []byte(settings), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// autoCommit is commitDetected, auto-approved.
func autoCommit(t *testing.T, n int, files []string) message.Envelope {
	t.Helper()
	e := commitDetected(t, n, sha1, files)
	p := wt.PayloadOf[message.ChangeDetected](t, e)
	p.AutoApprove = true
	e = wt.FixedRoot(t, n, message.TypeChangeDetected, "", gitActor, "git:"+sha1, p)
	wt.Validate(t, e)
	return e
}

// A commit on the vpc base layer concerns dev and prod; with the order dev (soak 10m) → prod
// (approval), it starts in dev only. Once dev succeeded, the promotion is due after the soak;
// promotion.Start publishes prod's change, which resolve builds as "<change>/prod", promoted
// from dev's change set and waiting for an approval although the commit was auto-approved.
func TestPromotionWaitsForSuccessAndSoak(t *testing.T) {
	t.Parallel()
	repo := promotedExamples(t, `[{"env": "dev", "soak": "10m"}, {"env": "prod", "approval": true}]`)
	s := newStage(t, repo, nil)
	ctx := context.Background()
	root := autoCommit(t, 60, []string{"iac/_base/vpc/core/config.json"})
	out := s.handle(t, root)
	resolved := wt.ByType(out, message.TypeChangeResolved)
	if len(resolved) != 1 || resolved[0].Env != "dev" {
		t.Fatalf("resolved %v, want dev only", types(out))
	}
	wt.CheckGolden(t, "promotion_commit_starts_in_the_first_environment", out, names(root.ID, "root"))
	devID, prodID := root.ID+"/dev", root.ID+"/prod"
	if _, err := s.cs.Get(ctx, prodID); err == nil {
		t.Fatal("prod's change set exists before dev succeeded")
	}
	dev, err := s.cs.Get(ctx, devID)
	if err != nil {
		t.Fatal(err)
	}
	if p := dev.Promotion; p == nil || p.Next != "prod" || p.Soak != 10*time.Minute || !p.AutoApprove || p.Commit.SHA != sha1 ||
		!slices.Equal(p.Files, []string{"iac/_base/vpc/core/config.json"}) || !p.DueAt.IsZero() {
		t.Fatalf("dev's promotion %+v", dev.Promotion)
	}

	// dev/vpc/core applies, changing nothing its dependents consume: dev is done.
	out = s.handle(t, applied(t, root, 61, "dev", devID, "dev/vpc/core", []string{}))
	if len(wt.ByType(out, message.TypeChangeDetected)) != 0 {
		t.Fatal("promoted before the soak")
	}
	dev, _ = s.cs.Get(ctx, devID)
	due := wt.FixedTime.Add(10 * time.Minute)
	if !dev.Succeeded() || !dev.Promotion.DueAt.Equal(due) || !dev.Promotion.Soaked {
		t.Fatalf("dev succeeded %v, due %v (want %v)", dev.Succeeded(), dev.Promotion.DueAt, due)
	}
	var published []message.Envelope
	publish := func(_ context.Context, msgs ...message.Envelope) error {
		published = append(published, msgs...)
		return nil
	}
	if started, err := promotion.Start(ctx, s.cs, publish, due.Add(-time.Millisecond)); err != nil || len(started) != 0 {
		t.Fatalf("started %v before the soak ended (%v)", started, err)
	}
	started, err := promotion.Start(ctx, s.cs, publish, due)
	if err != nil || len(started) != 1 || started[0].ChangeSetID != prodID || len(published) != 1 {
		t.Fatalf("started %+v, published %d, %v", started, len(published), err)
	}
	next := published[0]
	wt.Validate(t, next)
	if next.Env != "prod" || next.CorrelationID != root.ID || next.IdempotencyKey != "promotion:"+devID {
		t.Errorf("promotion message: env %s correlation %s key %s", next.Env, next.CorrelationID, next.IdempotencyKey)
	}
	if p := wt.PayloadOf[message.ChangeDetected](t, next); p.Promotion == nil || p.Promotion.From != devID || p.Promotion.Soak != "10m0s" {
		t.Errorf("promotion payload %+v", p.Promotion)
	}
	// Published again (a crash before it was recorded promoted): nothing more is started.
	if again, _ := promotion.Start(ctx, s.cs, publish, due.Add(time.Hour)); len(again) != 0 {
		t.Errorf("started twice: %+v", again)
	}

	out = s.handle(t, next)
	wt.CheckGolden(t, "promotion_next_environment", out, names(root.ID, "root", next.ID, "promotion"))
	prod, err := s.cs.Get(ctx, prodID)
	if err != nil {
		t.Fatal(err)
	}
	if prod.PromotedFrom != devID || prod.AutoApprove || prod.Approved || prod.Promotion != nil {
		t.Errorf("prod: promoted from %q, auto-approve %v, approved %v, promotion %+v", prod.PromotedFrom, prod.AutoApprove, prod.Approved, prod.Promotion)
	}
	wantCauses := []message.Cause{{Kind: message.CauseCommit, ID: sha1}, {Kind: message.CausePromotion, ID: devID}}
	if n := prod.Nodes["prod/vpc/core"]; n == nil || n.State != changeset.Scheduled || !slices.EqualFunc(n.Causes, wantCauses, sameCause) {
		t.Errorf("prod/vpc/core: %+v", n)
	}
	report, err := promotion.Status(changeSets(t, s), root.ID, due)
	if err != nil || len(report.Steps) != 2 || report.At != 1 || report.Current().State != promotion.StateDeploying || report.Steps[0].State != promotion.StateApplied {
		t.Errorf("status %+v, %v", report, err)
	}
}

// Without a soak the change set that succeeds promotes the change itself; a failure stops the
// promotion where it is, and says so.
func TestPromotionWithoutSoakAndStoppedByAFailure(t *testing.T) {
	t.Parallel()
	order := `[{"env": "dev"}, {"env": "prod"}]`
	t.Run("success", func(t *testing.T) {
		t.Parallel()
		s := newStage(t, promotedExamples(t, order), nil)
		root := autoCommit(t, 70, []string{"iac/_base/vpc/core/config.json"})
		s.handle(t, root)
		out := s.handle(t, applied(t, root, 71, "dev", root.ID+"/dev", "dev/vpc/core", []string{}))
		promoted := wt.ByType(out, message.TypeChangeDetected)
		if len(promoted) != 1 || promoted[0].Env != "prod" {
			t.Fatalf("got %v, want prod's change.detected", types(out))
		}
		if p := wt.PayloadOf[message.ChangeDetected](t, promoted[0]); p.Promotion.Soak != "" || !p.AutoApprove {
			t.Errorf("promotion without a soak: %+v (auto-approve %v)", p.Promotion, p.AutoApprove)
		}
		dev, _ := s.cs.Get(context.Background(), root.ID+"/dev")
		if dev.Promotion.PromotedAt.IsZero() {
			t.Error("not recorded promoted once published")
		}
		prodOut := s.handle(t, promoted[0])
		if r := wt.ByType(prodOut, message.TypeChangeResolved); len(r) != 1 || wt.PayloadOf[message.ChangeResolved](t, r[0]).ChangeSetID != root.ID+"/prod" {
			t.Errorf("prod resolved %v", types(prodOut))
		}
	})
	t.Run("failure", func(t *testing.T) {
		t.Parallel()
		s := newStage(t, promotedExamples(t, order), nil)
		root := autoCommit(t, 80, []string{"iac/_base/vpc/core/config.json"})
		s.handle(t, root)
		out := s.handle(t, failed(t, root, 81, "dev", root.ID+"/dev", "dev/vpc/core"))
		if len(wt.ByType(out, message.TypeChangeDetected)) != 0 {
			t.Fatal("a failed change set promoted the change")
		}
		report, err := promotion.Status(changeSets(t, s), root.ID, wt.FixedTime.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		dep := changeset.DeploymentID(root.ID+"/dev", "dev/vpc/core")
		want := "in dev: dev/vpc/core failed (" + dep + "): apply: terraform apply: quota exceeded"
		if report.Stopped != want || report.Steps[1].State != promotion.StateNotReached {
			t.Errorf("stopped %q (want %q), steps %+v", report.Stopped, want, report.Steps)
		}
	})
}

// A commit touching one environment of the order deploys there without a promotion.
func TestOneEnvironmentOfTheOrderIsNoPromotion(t *testing.T) {
	t.Parallel()
	s := newStage(t, promotedExamples(t, `[{"env": "dev"}, {"env": "prod", "approval": true}]`), nil)
	root := autoCommit(t, 90, []string{"iac/prod/vpc/core/config.json"})
	s.handle(t, root)
	cs, err := s.cs.Get(context.Background(), root.ID+"/prod")
	if err != nil || cs.Promotion != nil || cs.PromotedFrom != "" || cs.AutoApprove {
		t.Fatalf("prod change set %+v, %v: want no promotion, and prod's approval gate", cs, err)
	}
	if _, err := promotion.Status(changeSets(t, s), root.ID, wt.FixedTime); err == nil {
		t.Error("a change concerning one environment has no promotion status")
	}
}

func changeSets(t *testing.T, s *stageEnv) []*changeset.ChangeSet {
	t.Helper()
	all, err := s.cs.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func sameCause(a, b message.Cause) bool { return a.Kind == b.Kind && a.ID == b.ID }

// A gate that asks for an approval refuses an auto-approved commit's change set as a protected
// environment does: the change set says why, and its environment's approval expiry applies (it
// was left waiting for ever).
func TestPromotionGateRefusalIsGoverned(t *testing.T) {
	t.Parallel()
	repo := promotedExamples(t, `[{"env": "dev"}, {"env": "prod", "approval": true}]`)
	settings := `{"prefix": "/iac", "modules_dir": "components", "promotion": [{"env": "dev"}, {"env": "prod", "approval": true}],
  "environments": {"prod": {"approval_expiry": "72h"}}}`
	if err := os.WriteFile(filepath.Join(repo, "karma.json"), []byte(settings), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newStage(t, repo, nil)
	root := autoCommit(t, 90, []string{"iac/_base/vpc/core/config.json"})
	s.handle(t, root)
	out := s.handle(t, applied(t, root, 91, "dev", root.ID+"/dev", "dev/vpc/core", []string{}))
	promoted := wt.ByType(out, message.TypeChangeDetected)
	if len(promoted) != 1 {
		t.Fatalf("got %v, want prod's change.detected", types(out))
	}
	s.handle(t, promoted[0])
	prod, err := s.cs.Get(context.Background(), root.ID+"/prod")
	if err != nil {
		t.Fatal(err)
	}
	if prod.Approved || prod.AutoApprove || !strings.Contains(prod.AutoApproveRefused, "gate of prod asks for an approval") {
		t.Errorf("prod: approved %v, auto-approve %v, refused %q", prod.Approved, prod.AutoApprove, prod.AutoApproveRefused)
	}
	if want := prod.CreatedAt.Add(72 * time.Hour); !prod.ExpiresAt.Equal(want) {
		t.Errorf("prod expires at %v, want %v (its approval expiry)", prod.ExpiresAt, want)
	}
}

// laterCommits is the folder repository with one later commit on the deploy branch (its head):
// sha1 is its ancestor, and diff is what changed between them.
type laterCommits struct {
	wt.RepoGraphs
	later string
	diff  []model.ChangedFile
}

func (c laterCommits) Head(context.Context) (string, error) { return c.later, nil }
func (c laterCommits) IsAncestor(_ context.Context, a, b string) (bool, error) {
	return a == sha1 && b == c.later, nil
}
func (c laterCommits) Diff(_ context.Context, before, after string) ([]model.ChangedFile, error) {
	if before != sha1 || after != c.later {
		return nil, fmt.Errorf("no diff %s..%s", before, after)
	}
	return c.diff, nil
}

// A commit of the vpc base layer (dev → prod) is in dev when a later commit, sha2, deploys in
// prod. The promotion of the earlier change into prod would be built at sha2's tree (building it
// at its own would undo sha2). When what sha2's tree changes since the earlier commit concerns
// prod alone (a prod hotfix, here of prod's zone: one of vpc/core would be held itself, as its
// tree carries the change soaking in dev), that is what it is built from, and the change set
// names both. When
// it also changes what dev deploys first — commits that have not been through dev — building
// there would deploy them in prod untested: the promotion is held, on the record, and nothing of
// it deploys.
func TestAPromotionIsNotBuiltAtALaterTreeHoldingUntestedCommits(t *testing.T) {
	t.Parallel()
	for i, c := range []struct {
		name string
		diff []model.ChangedFile
		held bool
	}{
		// and one of dev's own, which prod does not deploy
		{"a prod hotfix since", []model.ChangedFile{{Path: "iac/prod/vpc/core/config.json"}, {Path: "iac/dev/vpc/core/config.json"}, {Path: "README.md"}}, false},
		// dev first, but of a component the promotion (vpc/core and its dependents) does not
		// deploy: its base layer and its module, and dev's account settings
		{"dev's changes of other components since", []model.ChangedFile{{Path: "iac/_base/s3-bucket/assets/config.json"},
			{Path: "components/s3-bucket/main.tf"}, {Path: "account_environments/dev.json"}, {Path: "iac/prod/vpc/core/config.json"}}, false},
		// prod's own account settings: prod's alone, whatever folder they are in
		{"prod's account settings since", []model.ChangedFile{{Path: "account_environments/prod.json"}}, false},
		// dev first, of a component downstream of vpc/core, which the promotion deploys
		{"dev's change of a dependent since", []model.ChangedFile{{Path: "iac/_base/ecs-cluster/core/config.json"}}, true},
		// a commit of the base layer and one of a module, for dev first, between them
		{"dev's changes since", []model.ChangedFile{{Path: "iac/_base/vpc/core/config.json"}, {Path: "iac/prod/vpc/core/config.json"},
			{Path: "components/vpc/main.tf"}}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			repo := promotedExamples(t, `[{"env": "dev"}, {"env": "prod"}]`)
			s := newStage(t, repo, nil)
			s.w.Commits = laterCommits{RepoGraphs: wt.RepoGraphs{Root: repo}, later: sha2, diff: c.diff}
			n := 200 + 10*i
			root := autoCommit(t, n, []string{"iac/_base/vpc/core/config.json"})
			s.handle(t, root)
			// a hotfix of prod's zone, which the change of vpc/core soaking in dev does not reach
			hotfix := commitDetected(t, n+1, sha2, []string{"iac/prod/route53-zone/main/config.json"})
			s.handle(t, hotfix)
			if cs, err := s.cs.Get(context.Background(), hotfix.ID+"/prod"); err != nil || cs.Commit != sha2 {
				t.Fatalf("the hotfix's change set: %+v, %v", cs, err)
			}
			out := s.handle(t, applied(t, root, n+2, "dev", root.ID+"/dev", "dev/vpc/core", []string{}))
			promoted := wt.ByType(out, message.TypeChangeDetected)
			if len(promoted) != 1 {
				t.Fatalf("got %v, want prod's change.detected", types(out))
			}
			out = s.handle(t, promoted[0])
			prod, err := s.cs.Get(context.Background(), root.ID+"/prod")
			if err != nil {
				t.Fatal(err)
			}
			resolved := wt.ByType(out, message.TypeChangeResolved)
			if len(resolved) != 1 {
				t.Fatalf("got %v, want prod's change.resolved", types(out))
			}
			rp := wt.PayloadOf[message.ChangeResolved](t, resolved[0])
			if !c.held {
				if prod.Rejected != "" || prod.Commit != sha2 || rp.Commit != sha2 || len(prod.Nodes) == 0 {
					t.Fatalf("prod: commit %s, rejected %q, nodes %d; want built at the hotfix's tree %s", prod.Commit, prod.Rejected, len(prod.Nodes), sha2)
				}
				return
			}
			if prod.Held == nil || prod.Rejected != "" || len(prod.Nodes) != 0 || rp.Held != prod.Held.Reason || rp.Rejected != "" {
				t.Fatalf("prod: commit %s, nodes %v, held %+v, rejected %q: want the promotion held, nothing deployed", prod.Commit, prod.Waves, prod.Held, prod.Rejected)
			}
			for _, want := range []string{"held", sha2[:12], "dev"} {
				if !strings.Contains(prod.Held.Reason, want) {
					t.Errorf("held for %q, want it to name %q", prod.Held.Reason, want)
				}
			}
			if prod.Commit != "" || rp.Commit != "" || !slices.ContainsFunc(rp.RootCauses, func(c message.Cause) bool { return c.Kind == message.CauseCommit && c.ID == sha1 }) {
				t.Errorf("the held change set names tree %s (message %s, causes %v), want none, caused by commit %s: nothing was built", prod.Commit, rp.Commit, rp.RootCauses, sha1)
			}
			report, err := promotion.Status(changeSets(t, s), root.ID, wt.FixedTime)
			if err != nil || report.Stopped != "" || report.Current().State != promotion.StateHeld || report.Current().Env != "prod" ||
				!strings.Contains(report.Current().Detail, sha2[:12]) {
				t.Errorf("status %+v, %v: want held in prod, saying why", report, err)
			}
		})
	}
}

// branchHistory is the folder repository with a linear history of commits on the deploy branch,
// oldest first (the last is its head), and the diffs between them that a test reads.
type branchHistory struct {
	wt.RepoGraphs
	commits []string
	diffs   map[[2]string][]model.ChangedFile
}

func (h branchHistory) Head(context.Context) (string, error) { return h.commits[len(h.commits)-1], nil }
func (h branchHistory) IsAncestor(_ context.Context, a, b string) (bool, error) {
	i, j := slices.Index(h.commits, a), slices.Index(h.commits, b)
	return i >= 0 && j >= 0 && i < j, nil
}
func (h branchHistory) Diff(_ context.Context, before, after string) ([]model.ChangedFile, error) {
	if before == after {
		return nil, nil
	}
	d, ok := h.diffs[[2]string{before, after}]
	if !ok {
		return nil, fmt.Errorf("no diff %s..%s", before, after)
	}
	return d, nil
}

// autoCommitAt is an auto-approved change.detected of commit sha touching files.
func autoCommitAt(t *testing.T, n int, sha string, files []string) message.Envelope {
	t.Helper()
	e := commitDetected(t, n, sha, files)
	p := wt.PayloadOf[message.ChangeDetected](t, e)
	p.AutoApprove = true
	e = wt.FixedRoot(t, n, message.TypeChangeDetected, "", gitActor, "git:"+sha, p)
	wt.Validate(t, e)
	return e
}

// A change of the vpc base layer, A, soaks in dev (dev soak 10m → prod) when a later change of
// the same file, C, goes through dev and, its soak ended early with a reason, into prod: prod is
// at C's tree. A's promotion is built there (building it at A's own would undo C): the file C
// changed is as C's dev change set deployed and soaked it, so it is not held. When a third
// change of that file, D, is still soaking in dev and a prod hotfix (of prod's zone, which D
// does not reach: not held itself) built prod at a tree holding D's change, that is untested in
// dev: held.
func TestAPromotionIsBuiltAtALaterTreeWhoseChangesWentThroughTheEnvironmentBefore(t *testing.T) {
	t.Parallel()
	const base = "iac/_base/vpc/core/config.json"
	sha3, sha4 := strings.Repeat("3", 40), strings.Repeat("4", 40)
	for i, later := range []bool{false, true} {
		name := "the later change went through dev"
		if later {
			name = "another change soaks in dev"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			repo := promotedExamples(t, `[{"env": "dev", "soak": "10m"}, {"env": "prod"}]`)
			s := newStage(t, repo, nil)
			ctx := context.Background()
			s.w.Commits = branchHistory{RepoGraphs: wt.RepoGraphs{Root: repo}, commits: []string{sha1, sha2, sha3, sha4},
				diffs: map[[2]string][]model.ChangedFile{
					{sha1, sha2}: {{Path: base}},
					{sha1, sha4}: {{Path: base}, {Path: "iac/prod/route53-zone/main/config.json"}},
					{sha2, sha4}: {{Path: base}, {Path: "iac/prod/route53-zone/main/config.json"}},
					{sha3, sha4}: {{Path: "iac/prod/route53-zone/main/config.json"}},
				}}
			n := 300 + 20*i
			a := autoCommitAt(t, n, sha1, []string{base})
			s.handle(t, a)
			s.handle(t, applied(t, a, n+1, "dev", a.ID+"/dev", "dev/vpc/core", []string{}))
			c := autoCommitAt(t, n+2, sha2, []string{base})
			s.handle(t, c)
			s.handle(t, applied(t, c, n+3, "dev", c.ID+"/dev", "dev/vpc/core", []string{}))
			if _, err := s.cs.Update(ctx, c.ID+"/dev", func(cs *changeset.ChangeSet) error {
				return cs.SkipSoak("grace", "the fix of an outage", wt.FixedTime)
			}); err != nil {
				t.Fatal(err)
			}
			var published []message.Envelope
			publish := func(_ context.Context, msgs ...message.Envelope) error {
				published = append(published, msgs...)
				return nil
			}
			if started, err := promotion.Start(ctx, s.cs, publish, wt.FixedTime); err != nil || len(started) != 1 || started[0].From != c.ID+"/dev" {
				t.Fatalf("started %+v, %v: want C's promotion", started, err)
			}
			s.handle(t, published[0])
			if cs, err := s.cs.Get(ctx, c.ID+"/prod"); err != nil || cs.Commit != sha2 || cs.Rejected != "" {
				t.Fatalf("C's prod change set: %+v, %v", cs, err)
			}
			tree := sha2
			if later {
				d := autoCommitAt(t, n+4, sha3, []string{base})
				s.handle(t, d)
				s.handle(t, applied(t, d, n+5, "dev", d.ID+"/dev", "dev/vpc/core", []string{}))
				s.handle(t, commitDetected(t, n+6, sha4, []string{"iac/prod/route53-zone/main/config.json"}))
				if hotfix, err := s.cs.Get(ctx, wt.FixedID(n+6)+"/prod"); err != nil || hotfix.Held != nil || hotfix.Commit != sha4 {
					t.Fatalf("the hotfix of prod's zone: %+v, %v; want it built at %s", hotfix, err, sha4)
				}
				tree = sha4
			}
			published = nil
			if _, err := promotion.StartChangeSet(ctx, s.cs, publish, a.ID+"/dev", wt.FixedTime.Add(10*time.Minute)); err != nil || len(published) != 1 {
				t.Fatalf("A's promotion: %d published, %v", len(published), err)
			}
			s.handle(t, published[0])
			prod, err := s.cs.Get(ctx, a.ID+"/prod")
			if err != nil {
				t.Fatal(err)
			}
			if !later {
				if prod.Rejected != "" || prod.Commit != tree || len(prod.Nodes) == 0 {
					t.Fatalf("A's prod change set: commit %s, rejected %q, nodes %d; want built at %s, whose change went through dev", prod.Commit, prod.Rejected, len(prod.Nodes), tree)
				}
				return
			}
			if prod.Held == nil || len(prod.Nodes) != 0 || !strings.Contains(prod.Held.Reason, base) {
				t.Fatalf("A's prod change set: commit %s, held %+v, nodes %d; want held for %s, soaking in dev", prod.Commit, prod.Held, len(prod.Nodes), base)
			}
			heldOut := s.handle(t, published[0]) // delivered twice: one held change set, announced once more as it is
			wt.CheckGolden(t, "promotion_held", heldOut, names(a.ID, "root", published[0].ID, "promotion"))

			// The hold is not final. While nothing it waits for moves, a check tries nothing again.
			published = nil
			due := wt.FixedTime.Add(10 * time.Minute)
			if started, err := promotion.Start(ctx, s.cs, publish, due.Add(-time.Millisecond)); err != nil || len(started) != 0 {
				t.Fatalf("started %+v, %v: nothing moved since the hold", started, err)
			}
			// D's soak ends: D went through dev, so the check after tries A's promotion again, as a
			// change set of its own, built at the tree prod is at, which holds nothing untested now.
			s.w.Now = func() time.Time { return due }
			started, err := promotion.Start(ctx, s.cs, publish, due)
			if err != nil {
				t.Fatal(err)
			}
			var again *message.Envelope
			for i, m := range published {
				if p := wt.PayloadOf[message.ChangeDetected](t, m); p.Promotion != nil && p.Promotion.From == a.ID+"/dev" {
					again = &published[i]
				}
			}
			retryID := a.ID + "/prod@2"
			if again == nil || again.IdempotencyKey != "promotion:"+a.ID+"/dev@2" || wt.PayloadOf[message.ChangeDetected](t, *again).Promotion.Attempt != 2 ||
				!slices.ContainsFunc(started, func(st promotion.Started) bool { return st.ChangeSetID == retryID && st.Attempt == 2 }) {
				t.Fatalf("started %+v, published %d: want A's promotion tried again, as %s", started, len(published), retryID)
			}
			wt.CheckGolden(t, "promotion_tried_again", []message.Envelope{*again}, names(a.ID, "root"))
			out := s.handle(t, *again)
			retried, err := s.cs.Get(ctx, retryID)
			if err != nil {
				t.Fatal(err)
			}
			if retried.Held != nil || retried.Commit != tree || len(retried.Nodes) == 0 || retried.HeldBefore != a.ID+"/prod" || retried.PromotedFrom != a.ID+"/dev" {
				t.Fatalf("the second try: commit %s, held %+v, nodes %d, held before %q, promoted from %q; want built at %s",
					retried.Commit, retried.Held, len(retried.Nodes), retried.HeldBefore, retried.PromotedFrom, tree)
			}
			if r := wt.ByType(out, message.TypeChangeResolved); len(r) != 1 || wt.PayloadOf[message.ChangeResolved](t, r[0]).ChangeSetID != retryID {
				t.Errorf("the second try announced %v", types(out))
			}
			if first, _ := s.cs.Get(ctx, a.ID+"/prod"); first.Held == nil || first.Held.RetriedAs != retryID || first.Held.Reason != prod.Held.Reason {
				t.Errorf("the held try: %+v, want it kept, with its reason, naming the next try", first.Held)
			}
			report, err := promotion.Status(changeSets(t, s), a.ID, due)
			if err != nil || report.Current().ChangeSetID != retryID || report.Current().State == promotion.StateHeld || report.Stopped != "" {
				t.Errorf("status %+v, %v: want it at the second try", report, err)
			}
			// Tried again already: a later check publishes no third try.
			published = nil
			if started, _ := promotion.Start(ctx, s.cs, publish, due.Add(time.Minute)); slices.ContainsFunc(started, func(st promotion.Started) bool { return st.From == a.ID+"/dev" }) {
				t.Errorf("tried again twice: %+v", started)
			}
		})
	}
}

// The later tree a promotion would be built at has a cycle (prod's vpc/core now reads
// ecs-cluster/core's runtime, which reads vpc/core's): what the promotion deploys there cannot be
// told, and the message was refused for good (dead-lettered), the promotion neither built, nor
// held, nor rejected on the record. It is decided as any: here held, every component counting.
func TestAPromotionAtALaterTreeWithACycleIsDecided(t *testing.T) {
	t.Parallel()
	repo := promotedExamples(t, `[{"env": "dev"}, {"env": "prod"}]`)
	s := newStage(t, repo, nil)
	s.w.Commits = laterCommits{RepoGraphs: wt.RepoGraphs{Root: repo}, later: sha2,
		diff: []model.ChangedFile{{Path: "iac/_base/vpc/core/config.json"}, {Path: "iac/prod/vpc/core/config.json"}}}
	root := autoCommit(t, 400, []string{"iac/_base/vpc/core/config.json"})
	s.handle(t, root)
	s.handle(t, commitDetected(t, 401, sha2, []string{"iac/prod/vpc/core/config.json"}))
	out := s.handle(t, applied(t, root, 402, "dev", root.ID+"/dev", "dev/vpc/core", []string{}))
	promoted := wt.ByType(out, message.TypeChangeDetected)
	if len(promoted) != 1 {
		t.Fatalf("got %v, want prod's change.detected", types(out))
	}
	vpc := filepath.Join(repo, "iac", "prod", "vpc", "core", "config.json")
	b, err := os.ReadFile(vpc)
	if err != nil {
		t.Fatal(err)
	}
	cyclic := strings.Replace(string(b), `"Environment": "prod"`, `"Environment": "prod", "Cluster": "${ecs-cluster/core.runtime.cluster_name}"`, 1)
	if err := os.WriteFile(vpc, []byte(cyclic), 0o644); err != nil {
		t.Fatal(err)
	}
	s.handle(t, promoted[0]) // acknowledged: decided, not refused
	prod, err := s.cs.Get(context.Background(), root.ID+"/prod")
	if err != nil || len(prod.Nodes) != 0 || (prod.Held == nil && prod.Rejected == "") {
		t.Fatalf("prod: %+v, %v: want it held or rejected, on the record, nothing deployed", prod, err)
	}
}
