package resolve_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
)

// A commit deleting a layer changes the resolved config of every component that merged it, yet
// the deleted file is no longer among those components' layers at the commit: the base layer of
// dev/app/api (its defaults are gone), and dev/app/parent, which dev/app/child extended and
// which now falls back to the base-layer template app/parent. Each must deploy; nothing else.
func TestRemovedLayerDeploysWhatMergedIt(t *testing.T) {
	t.Parallel()
	repo := wt.WriteRepo(t, map[string]string{
		"karma.json":                       `{"prefix": "/iac", "modules_dir": "components"}`,
		"iac/dev/app/api/config.json":      `{"name": "api"}`,
		"iac/_base/app/parent/config.json": `{"size": "small"}`,
		"iac/dev/app/child/config.json":    `{"karma": {"extends": "app/parent"}, "name": "child"}`,
		"iac/dev/app/other/config.json":    `{"name": "other"}`,
		"iac/prod/app/api/config.json":     `{"name": "api"}`,
		"iac/prod/app/parent/config.json":  `{"size": "large"}`,
	})
	tests := []struct {
		name  string
		files []string
		want  []string
	}{
		{"removed base layer", []string{"iac/_base/app/api/config.json"}, []string{"dev/app/api", "prod/app/api"}},
		{"removed parent", []string{"iac/dev/app/parent/config.json"}, []string{"dev/app/child", "dev/app/parent"}}, // the parent: a held destroy
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStage(t, repo, nil)
			var removed []message.ComponentRef
			if tt.name == "removed parent" {
				removed = append(removed, message.ComponentRef{Type: "app", Nickname: "parent"})
			}
			out := s.handle(t, commitDetected(t, 90+i, sha1, tt.files, removed...))
			var roots []string
			for _, r := range wt.ByType(out, message.TypeChangeResolved) {
				p := wt.PayloadOf[message.ChangeResolved](t, r)
				if p.Rejected != "" {
					t.Fatalf("rejected: %s", p.Rejected)
				}
				roots = append(roots, p.Roots...)
			}
			slices.Sort(roots)
			if !slices.Equal(roots, tt.want) {
				t.Errorf("roots %v, want %v", roots, tt.want)
			}
		})
	}
}

// A commit removing the last component of an environment that no account file selects leaves
// no iac/<env> folder: the environment is gone from the commit, and its removal was recorded
// nowhere (no change set, no held destroy). It is a held destroy like any other.
func TestRemovingAnEnvironmentsLastComponentIsAHeldDestroy(t *testing.T) {
	t.Parallel()
	repo := wt.WriteRepo(t, map[string]string{
		"karma.json":                    `{"prefix": "/iac", "modules_dir": "components"}`,
		"iac/prod/vpc/core/config.json": `{"cidr": "10.0.0.0/16"}`,
	})
	s := newStage(t, repo, nil)
	in := commitDetected(t, 95, sha2, []string{"iac/sandbox/vpc/core/config.json"}, message.ComponentRef{Type: "vpc", Nickname: "core"})
	out := s.handle(t, in)
	resolved := wt.ByType(out, message.TypeChangeResolved)
	if len(resolved) != 1 || resolved[0].Env != "sandbox" {
		t.Fatalf("got %v, want one change.resolved of sandbox", types(out))
	}
	if p := wt.PayloadOf[message.ChangeResolved](t, resolved[0]); p.Rejected != "" || !slices.Equal(p.Roots, []string{"sandbox/vpc/core"}) {
		t.Errorf("resolved %+v", p)
	}
	skipped := wt.ByType(out, message.TypeDeploymentSkipped)
	if len(skipped) != 1 || len(wt.ByType(out, message.TypeDeploymentScheduled)) != 0 {
		t.Fatalf("want one skipped destroy and nothing scheduled, got %v", types(out))
	}
	if p := wt.PayloadOf[message.DeploymentSkipped](t, skipped[0]); p.Component != "sandbox/vpc/core" || p.Reason != changeset.ReasonDestroyHeld {
		t.Errorf("skipped %+v", p)
	}
}

// A change request replacing a component's environment file changes the resolved config of the
// components extending it (at any depth) too: they deploy with it, as a push of the request's
// commit would deploy them (that push is the same change and deploys nothing of its own).
func TestRequestDeploysWhatExtendsTheComponent(t *testing.T) {
	t.Parallel()
	repo := wt.WriteRepo(t, map[string]string{
		"karma.json":                         `{"prefix": "/iac", "modules_dir": "components"}`,
		"iac/dev/app/parent/config.json":     `{"size": "small"}`,
		"iac/dev/app/child/config.json":      `{"karma": {"extends": "app/parent"}, "name": "child"}`,
		"iac/dev/app/grandchild/config.json": `{"karma": {"extends": "app/child"}, "name": "grandchild"}`,
		"iac/dev/app/other/config.json":      `{"name": "other"}`,
	})
	s := newStage(t, repo, nil)
	p := message.ChangeDetected{ChangeSetID: wt.FixedID(97), Source: message.SourceRequest, Components: []message.ComponentRef{{Type: "app", Nickname: "parent"}},
		Request: &message.ChangeRequest{ID: "cr-97", Configs: map[string]string{"app/parent": `{"size":"large"}`}}}
	in := wt.FixedRoot(t, 97, message.TypeChangeDetected, "dev", message.Actor{Kind: "cli", Name: "ada"}, "request:cr-97", p)
	out := s.handle(t, in)
	r := wt.PayloadOf[message.ChangeResolved](t, wt.ByType(out, message.TypeChangeResolved)[0])
	roots := slices.Sorted(slices.Values(r.Roots))
	if want := []string{"dev/app/child", "dev/app/grandchild", "dev/app/parent"}; r.Rejected != "" || !slices.Equal(roots, want) {
		t.Errorf("roots %v (rejected %q), want %v", roots, r.Rejected, want)
	}
	cs, err := s.cs.Get(context.Background(), in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n := cs.Nodes["dev/app/grandchild"]; n == nil || !strings.Contains(string(n.Config), `"size":"large"`) {
		t.Errorf("grandchild node %+v: want the proposed parent's size", n)
	}
}
