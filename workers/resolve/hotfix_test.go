package resolve_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/promotion"
)

// B, a change of the vpc base layer (dev soak 10m → prod), soaks in dev when C, a commit after
// it, changes prod alone. C's change set in prod would be built at C's tree, which holds B's
// change: prod/vpc/core, which inherits the base layer, would get B's change with C, before it
// went through dev, under C's name alone. C is held instead, naming B's commit and the
// component, and nothing of it is deployed; once B went through dev, C is tried again by
// itself, as a change set of its own, and built at its own tree. A hotfix of a component B's
// change does not reach (prod's zone) is not held.
func TestAHotfixIsHeldWhileItsTreeCarriesAChangeNotThroughTheEnvironmentsBefore(t *testing.T) {
	t.Parallel()
	const base = "iac/_base/vpc/core/config.json"
	for i, c := range []struct {
		name, file string
		held       bool
	}{
		{"a hotfix of a component the soaking change reaches", "iac/prod/vpc/core/config.json", true},
		{"a hotfix of another component", "iac/prod/route53-zone/main/config.json", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			repo := promotedExamples(t, `[{"env": "dev", "soak": "10m"}, {"env": "prod"}]`)
			s := newStage(t, repo, nil)
			ctx := context.Background()
			s.w.Commits = branchHistory{RepoGraphs: wt.RepoGraphs{Root: repo}, commits: []string{sha1, sha2},
				diffs: map[[2]string][]model.ChangedFile{{sha1, sha2}: {{Path: c.file}}}}
			n := 500 + 20*i
			b := autoCommitAt(t, n, sha1, []string{base})
			s.handle(t, b)
			s.handle(t, applied(t, b, n+1, "dev", b.ID+"/dev", "dev/vpc/core", []string{}))
			hotfix := autoCommitAt(t, n+2, sha2, []string{c.file})
			out := s.handle(t, hotfix)
			prodID := hotfix.ID + "/prod"
			prod, err := s.cs.Get(ctx, prodID)
			if err != nil {
				t.Fatal(err)
			}
			if !c.held {
				if prod.Held != nil || prod.Commit != sha2 || len(prod.Nodes) == 0 {
					t.Fatalf("the hotfix: commit %s, held %+v, nodes %d; want built at its tree %s", prod.Commit, prod.Held, len(prod.Nodes), sha2)
				}
				return
			}
			resolved := wt.ByType(out, message.TypeChangeResolved)
			if len(resolved) != 1 || len(wt.ByType(out, message.TypeDeploymentScheduled)) != 0 {
				t.Fatalf("got %v, want the hotfix's change.resolved alone", types(out))
			}
			wt.CheckGolden(t, "hotfix_held", out, names(hotfix.ID, "hotfix", b.ID, "soaking"))
			rp := wt.PayloadOf[message.ChangeResolved](t, resolved[0])
			if prod.Held == nil || len(prod.Nodes) != 0 || prod.Commit != "" || rp.Held != prod.Held.Reason || rp.Commit != "" {
				t.Fatalf("the hotfix: commit %s, waves %v, held %+v: want it held, nothing built, since its tree carries %s's change of %s, soaking in dev",
					prod.Commit, prod.Waves, prod.Held, sha1[:12], base)
			}
			for _, want := range []string{sha1[:12], base, "prod/vpc/core", "dev"} {
				if !strings.Contains(prod.Held.Reason, want) {
					t.Errorf("held for %q, want it to name %q", prod.Held.Reason, want)
				}
			}
			if !slices.ContainsFunc(rp.RootCauses, func(c message.Cause) bool { return c.Kind == message.CauseCommit && c.ID == sha2 }) {
				t.Errorf("root causes %v, want the hotfix's commit", rp.RootCauses)
			}
			if again := s.handle(t, hotfix); len(wt.ByType(again, message.TypeDeploymentScheduled)) != 0 {
				t.Errorf("delivered again: %v", types(again))
			}

			var published []message.Envelope
			publish := func(_ context.Context, msgs ...message.Envelope) error {
				published = append(published, msgs...)
				return nil
			}
			// Nothing moved: nothing is tried again.
			if started, err := promotion.Start(ctx, s.cs, publish, wt.FixedTime.Add(time.Minute)); err != nil || len(started) != 0 {
				t.Fatalf("started %+v, %v: nothing moved since the hold", started, err)
			}
			// B's soak ends: B's promotion starts, and the hotfix is tried again.
			due := wt.FixedTime.Add(10 * time.Minute)
			s.w.Now = func() time.Time { return due }
			started, err := promotion.Start(ctx, s.cs, publish, due)
			if err != nil {
				t.Fatal(err)
			}
			retryID := hotfix.ID + "/prod@2"
			var promoted, retry *message.Envelope
			for i, m := range published {
				switch p := wt.PayloadOf[message.ChangeDetected](t, m); {
				case p.Promotion != nil && p.Promotion.From == b.ID+"/dev":
					promoted = &published[i]
				case p.Retry != nil && p.ChangeSetID == hotfix.ID:
					retry = &published[i]
				}
			}
			if promoted == nil || retry == nil || retry.Env != "prod" || retry.CorrelationID != hotfix.ID ||
				!slices.ContainsFunc(started, func(st promotion.Started) bool { return st.ChangeSetID == retryID && st.Attempt == 2 }) {
				t.Fatalf("started %+v, published %d: want B's promotion and the hotfix tried again as %s", started, len(published), retryID)
			}
			wt.CheckGolden(t, "hotfix_tried_again", []message.Envelope{*retry}, names(hotfix.ID, "hotfix"))
			if again, _ := promotion.Start(ctx, s.cs, publish, due); slices.ContainsFunc(again, func(st promotion.Started) bool { return st.ChangeSetID == retryID }) {
				// not resolved yet: published again, its key makes it one
				if len(published) < 3 || published[len(published)-1].IdempotencyKey != retry.IdempotencyKey {
					t.Errorf("published again with another key: %+v", published)
				}
			}
			s.handle(t, *promoted)
			s.handle(t, *retry)
			retried, err := s.cs.Get(ctx, retryID)
			if err != nil {
				t.Fatal(err)
			}
			if retried.Held != nil || retried.Commit != sha2 || retried.Nodes["prod/vpc/core"] == nil || retried.HeldBefore != prodID {
				t.Fatalf("the second try: commit %s, held %+v, nodes %v, held before %q; want built at %s", retried.Commit, retried.Held, retried.Waves, retried.HeldBefore, sha2)
			}
			if first, _ := s.cs.Get(ctx, prodID); first.Held == nil || first.Held.RetriedAs != retryID {
				t.Errorf("the held try: %+v, want it kept, naming the next try", first.Held)
			}
			if started, _ := promotion.Start(ctx, s.cs, publish, due.Add(time.Minute)); slices.ContainsFunc(started, func(st promotion.Started) bool { return st.ChangeSetID == hotfix.ID+"/prod@3" }) {
				t.Errorf("tried again twice: %+v", started)
			}
		})
	}
}

// The change of the base layer failed in dev: its promotion stopped there, but its commit is in
// the hotfix's tree all the same, untested: the hotfix of a component it reaches is held. A
// change committed after the hotfix is not in its tree: it holds nothing.
func TestAHotfixIsHeldByAStoppedChangeInItsTreeAlone(t *testing.T) {
	t.Parallel()
	const base = "iac/_base/vpc/core/config.json"
	for i, hotfixFirst := range []bool{false, true} {
		t.Run(map[bool]string{false: "stopped in dev, before the hotfix", true: "committed after the hotfix"}[hotfixFirst], func(t *testing.T) {
			t.Parallel()
			repo := promotedExamples(t, `[{"env": "dev", "soak": "10m"}, {"env": "prod"}]`)
			s := newStage(t, repo, nil)
			commits := []string{sha1, sha2}
			if hotfixFirst {
				commits = []string{sha2, sha1}
			}
			s.w.Commits = branchHistory{RepoGraphs: wt.RepoGraphs{Root: repo}, commits: commits}
			n := 600 + 20*i
			b := autoCommitAt(t, n, sha1, []string{base})
			s.handle(t, b)
			s.handle(t, failed(t, b, n+1, "dev", b.ID+"/dev", "dev/vpc/core"))
			hotfix := autoCommitAt(t, n+2, sha2, []string{"iac/prod/vpc/core/config.json"})
			s.handle(t, hotfix)
			prod, err := s.cs.Get(context.Background(), hotfix.ID+"/prod")
			if err != nil {
				t.Fatal(err)
			}
			if hotfixFirst {
				if prod.Held != nil || prod.Commit != sha2 || len(prod.Nodes) == 0 {
					t.Fatalf("the hotfix: held %+v, commit %s; want built: its tree does not hold the later change", prod.Held, prod.Commit)
				}
				return
			}
			if prod.Held == nil || len(prod.Nodes) != 0 || !strings.Contains(prod.Held.Reason, sha1[:12]) {
				t.Fatalf("the hotfix: held %+v, nodes %d; want held for %s, stopped in dev", prod.Held, len(prod.Nodes), sha1[:12])
			}
		})
	}
}

// withFileVersions is a branchHistory that reads files as a commit, or its parent, has them.
type withFileVersions struct {
	branchHistory
	at, before map[[2]string]string // commit, path: the file as it, or its parent, has it
}

func (h withFileVersions) FileAt(_ context.Context, commit, path string) ([]byte, bool, error) {
	b, ok := h.at[[2]string{commit, path}]
	return []byte(b), ok, nil
}

func (h withFileVersions) FileBefore(_ context.Context, commit, path string) ([]byte, bool, error) {
	b, ok := h.before[[2]string{commit, path}]
	return []byte(b), ok, nil
}

// Holds compare resolved configs where the repository can tell them: the change soaking in dev
// edited a field of vpc/core's base layer. When prod overrides that field (cidr), prod/vpc/core
// resolves the same with or without the edit, so the prod hotfix carries nothing of it: built.
// When prod inherits it (enable_ssm_endpoints), held.
func TestAHotfixIsHeldOnlyWhenTheChangeItCarriesChangesItsResolvedConfigs(t *testing.T) {
	t.Parallel()
	const base = "iac/_base/vpc/core/config.json"
	for i, c := range []struct {
		name, from, to string
		held           bool
	}{
		{"a field prod overrides", `"cidr": "10.0.0.0/16"`, `"cidr": "10.9.0.0/16"`, false},
		{"a field prod inherits", `"enable_ssm_endpoints": false`, `"enable_ssm_endpoints": true`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			repo := promotedExamples(t, `[{"env": "dev", "soak": "10m"}, {"env": "prod"}]`)
			cur, err := os.ReadFile(filepath.Join(repo, base))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(cur), c.from) {
				t.Fatalf("%s lacks %s", base, c.from)
			}
			s := newStage(t, repo, nil)
			s.w.Commits = withFileVersions{branchHistory: branchHistory{RepoGraphs: wt.RepoGraphs{Root: repo}, commits: []string{sha1, sha2}},
				before: map[[2]string]string{{sha1, base}: strings.Replace(string(cur), c.from, c.to, 1)}}
			n := 700 + 20*i
			b := autoCommitAt(t, n, sha1, []string{base})
			s.handle(t, b)
			s.handle(t, applied(t, b, n+1, "dev", b.ID+"/dev", "dev/vpc/core", []string{}))
			hotfix := autoCommitAt(t, n+2, sha2, []string{"iac/prod/vpc/core/config.json"})
			s.handle(t, hotfix)
			prod, err := s.cs.Get(context.Background(), hotfix.ID+"/prod")
			if err != nil {
				t.Fatal(err)
			}
			if c.held != (prod.Held != nil) || c.held != (len(prod.Nodes) == 0) {
				t.Fatalf("the hotfix: held %+v, nodes %d; want held %v", prod.Held, len(prod.Nodes), c.held)
			}
		})
	}
}

// The same for a promotion held at a later tree: a change of vpc/core's base layer, A, is in dev
// when a hotfix of prod's zone builds prod at a later tree, which changes that base layer again
// (a change not through dev). When it changes a field prod overrides, prod/vpc/core resolves the
// same with the file as A's commit has it: A's promotion is built at the later tree. A field
// prod inherits holds it.
func TestAPromotionIsHeldOnlyWhenTheLaterTreeChangesItsResolvedConfigs(t *testing.T) {
	t.Parallel()
	const base = "iac/_base/vpc/core/config.json"
	for i, c := range []struct {
		name, from, to string
		held           bool
	}{
		{"a field prod overrides", `"cidr": "10.0.0.0/16"`, `"cidr": "10.9.0.0/16"`, false},
		{"a field prod inherits", `"enable_ssm_endpoints": false`, `"enable_ssm_endpoints": true`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			repo := promotedExamples(t, `[{"env": "dev"}, {"env": "prod"}]`)
			cur, err := os.ReadFile(filepath.Join(repo, base))
			if err != nil {
				t.Fatal(err)
			}
			s := newStage(t, repo, nil)
			zone := "iac/prod/route53-zone/main/config.json"
			s.w.Commits = withFileVersions{branchHistory: branchHistory{RepoGraphs: wt.RepoGraphs{Root: repo}, commits: []string{sha1, sha2},
				diffs: map[[2]string][]model.ChangedFile{{sha1, sha2}: {{Path: base}, {Path: zone}}}},
				at: map[[2]string]string{{sha1, base}: strings.Replace(string(cur), c.from, c.to, 1)}}
			n := 800 + 20*i
			a := autoCommitAt(t, n, sha1, []string{base})
			s.handle(t, a)
			s.handle(t, commitDetected(t, n+1, sha2, []string{zone}))
			out := s.handle(t, applied(t, a, n+2, "dev", a.ID+"/dev", "dev/vpc/core", []string{}))
			promoted := wt.ByType(out, message.TypeChangeDetected)
			if len(promoted) != 1 {
				t.Fatalf("got %v, want prod's change.detected", types(out))
			}
			s.handle(t, promoted[0])
			prod, err := s.cs.Get(context.Background(), a.ID+"/prod")
			if err != nil {
				t.Fatal(err)
			}
			if c.held != (prod.Held != nil) || (!c.held && prod.Commit != sha2) {
				t.Fatalf("A's promotion: commit %s, held %+v; want held %v (else built at %s)", prod.Commit, prod.Held, c.held, sha2)
			}
		})
	}
}
