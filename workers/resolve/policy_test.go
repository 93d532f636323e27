package resolve_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/policy"
	"github.com/usekarma/karma/shared/trigger"
	wt "github.com/usekarma/karma/workers/internal/workertest"
)

// policyFunc is a policy.Evaluator in a function; it records what it was asked.
type policyFunc func(in policy.Input) (policy.Decision, error)

func (f policyFunc) Evaluate(_ context.Context, _ string, in policy.Input) (policy.Decision, error) {
	return f(in)
}

// Policies before applying: a denial of prod's VPC plan fails the deployment with the reasons
// (its dependents are blocked); a requirement of approval for dev's VPC holds the plan of an
// auto-approved change until people approve it. Before planning, the input carried the diff
// against the config deployed (none yet: every key added).
func TestPoliciesBeforeApplying(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var sawDiff, sawPlan bool
	pol := policyFunc(func(in policy.Input) (policy.Decision, error) {
		if in.Component.Type != "vpc" {
			return policy.Decision{}, nil
		}
		if in.Stage == policy.StageResolve {
			sawDiff = sawDiff || (len(in.Diff) > 0 && in.Diff[0].Op == "add" && in.Change.Author == gitActor.Name)
			return policy.Decision{}, nil
		}
		sawPlan = sawPlan || (in.Plan != nil && in.Plan.Add == 1 && len(in.Plan.Resources) == 1)
		if in.Change.Env == "prod" {
			return policy.Decision{Deny: []string{"no VPC changes on Fridays"}}, nil
		}
		return policy.Decision{RequireApproval: []string{"dev's VPC is reviewed"}}, nil
	})
	c := newChainWith(t, wt.ExamplesDir, pol)
	roots, err := pushedCommit(trigger.Push{SHA: sha1, Author: gitActor.Name, Message: "vpc", Branch: "main", AutoApprove: true,
		Files: []trigger.FileChange{{Path: "iac/prod/vpc/core/config.json"}, {Path: "iac/dev/vpc/core/config.json"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Publish(ctx, c.q, roots...); err != nil {
		t.Fatal(err)
	}
	c.runUntilIdle(t)
	if !sawDiff || !sawPlan {
		t.Errorf("policy input: diff seen %v, plan seen %v", sawDiff, sawPlan)
	}
	prod, err := c.changeSets.Get(ctx, roots[0].CorrelationID+"/prod")
	if err != nil {
		t.Fatal(err)
	}
	if n := prod.Nodes["prod/vpc/core"]; n.State != changeset.Failed || n.Detail != "apply: denied by policy: no VPC changes on Fridays" {
		t.Errorf("prod/vpc/core: %s %q", n.State, n.Detail)
	}
	if n := prod.Nodes["prod/ecs-cluster/core"]; n != nil && n.State != changeset.Blocked {
		t.Errorf("below the denied VPC: %s", n.State)
	}
	ds, _ := c.lineage.Deployments(ctx, "prod/vpc/core")
	if len(ds) == 0 || ds[0].Status != lineage.StatusFailed || !strings.Contains(ds[0].Detail, "no VPC changes on Fridays") {
		t.Errorf("lineage of prod/vpc/core: %+v", ds)
	}

	devID := roots[0].CorrelationID + "/dev"
	dev, _ := c.changeSets.Get(ctx, devID)
	if dev.Approved || !strings.Contains(dev.AutoApproveRefused, "policy requires an approval: dev's VPC is reviewed") || dev.Nodes["dev/vpc/core"].State != changeset.Planned {
		t.Fatalf("dev: approved %v, %q, vpc %s", dev.Approved, dev.AutoApproveRefused, dev.Nodes["dev/vpc/core"].State)
	}
	a, err := changeset.Approve(ctx, c.changeSets, devID, "grace")
	if err != nil || len(a.Messages) != 1 {
		t.Fatalf("approve: %+v, %v", a, err)
	}
	if err := pipeline.Publish(ctx, c.q, a.Messages...); err != nil {
		t.Fatal(err)
	}
	c.runUntilIdle(t)
	if dev, _ = c.changeSets.Get(ctx, devID); dev.Nodes["dev/vpc/core"].State != changeset.Applied {
		t.Errorf("dev/vpc/core after approval: %s", dev.Nodes["dev/vpc/core"].State)
	}
}

// Policies that cannot be evaluated deny (fail closed) with the error; a policy denial before
// planning skips the component (reason policy-denied) and is announced with the reasons.
func TestPoliciesBeforePlanning(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pol := policyFunc(func(in policy.Input) (policy.Decision, error) {
		switch in.Component.ID {
		case "prod/vpc/core":
			return policy.Decision{Deny: []string{"a", "b"}}, nil
		case "dev/vpc/core":
			return policy.Decision{}, &policy.InvalidError{Commit: sha1, Err: errors.New("rego_parse_error")}
		}
		return policy.Decision{}, nil
	})
	c := newChainWith(t, wt.ExamplesDir, pol)
	roots, err := pushedCommit(trigger.Push{SHA: sha1, Author: gitActor.Name, Message: "vpc", Branch: "main",
		Files: []trigger.FileChange{{Path: "iac/prod/vpc/core/config.json"}, {Path: "iac/dev/vpc/core/config.json"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Publish(ctx, c.q, roots...); err != nil {
		t.Fatal(err)
	}
	c.runUntilIdle(t)
	for env, want := range map[string]string{"prod": "denied by policy: a; b", "dev": "denied by policy: policy: the policies of commit 512423cb3a48 are invalid: rego_parse_error"} {
		cs, err := c.changeSets.Get(ctx, roots[0].CorrelationID+"/"+env)
		if err != nil {
			t.Fatal(err)
		}
		n := cs.Nodes[env+"/vpc/core"]
		if n.State != changeset.Skipped || n.Reason != changeset.ReasonPolicyDenied || n.Detail != want || !cs.Done() {
			t.Errorf("%s/vpc/core: %s %s %q (done %v)", env, n.State, n.Reason, n.Detail, cs.Done())
		}
		skipped := auditedOfType(t, c, message.TypeDeploymentSkipped, roots[0].CorrelationID)
		wt.Validate(t, skipped)
	}
	if len(c.tf.applies) != 0 {
		t.Errorf("applied: %v", c.tf.applies)
	}
}

// The policies see who wrote every commit of a push, and who pushed it, not only the author of
// its last commit: a push deploys each of its commits, and a rule about who may change a
// component (examples/policies/ownership.rego) was passed by a commit of someone else's under one
// of an owner's.
func TestPoliciesSeeEveryAuthorOfAPush(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var mu sync.Mutex
	var seen []policy.Change
	pol := policyFunc(func(in policy.Input) (policy.Decision, error) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, in.Change)
		return policy.Decision{}, nil
	})
	c := newChainWith(t, wt.ExamplesDir, pol)
	roots, err := pushedCommit(trigger.Push{SHA: sha1, Author: gitActor.Name, Message: "vpc", Branch: "main", AutoApprove: true,
		Pusher: "ada", Authors: []string{gitActor.Name, "Mallory <mallory@example.com>"},
		Files: []trigger.FileChange{{Path: "iac/prod/vpc/core/config.json"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Publish(ctx, c.q, roots...); err != nil {
		t.Fatal(err)
	}
	c.runUntilIdle(t)
	if len(seen) == 0 {
		t.Fatal("the policies were asked nothing")
	}
	want := []string{gitActor.Name, "Mallory <mallory@example.com>"}
	for _, ch := range seen {
		if ch.Pusher != "ada" || !slices.Equal(ch.PushAuthors, want) || ch.Author != gitActor.Name {
			t.Errorf("the policies saw pusher %q, push authors %q, author %q; want ada, %q, %q", ch.Pusher, ch.PushAuthors, ch.Author, want, gitActor.Name)
		}
	}
}

// truncatedPush is the folder repository with a history between sha1 and sha2: the vpc's config
// changed, by two authors.
type truncatedPush struct{ wt.RepoGraphs }

func (truncatedPush) Diff(_ context.Context, before, after string) ([]model.ChangedFile, error) {
	if before != sha1 || after != sha2 {
		return nil, fmt.Errorf("no diff %s..%s", before, after)
	}
	return []model.ChangedFile{{Path: "iac/prod/vpc/core/config.json"}}, nil
}

func (truncatedPush) Authors(_ context.Context, before, after string) ([]string, error) {
	if before != sha1 || after != sha2 {
		return nil, fmt.Errorf("no commits %s..%s", before, after)
	}
	return []string{gitActor.Name, "Mallory <mallory@example.com>"}, nil
}

// A push whose payload listed only part of its commits (GitLab sends 20) named only their
// authors: the author of a commit left out could approve the change deploying it, and the
// policies did not know of them. Resolve lists the authors of every commit before..after, as
// it lists their files.
func TestATruncatedPushNamesEveryAuthor(t *testing.T) {
	t.Parallel()
	s := newStage(t, wt.ExamplesDir, nil)
	s.w.Commits = truncatedPush{wt.RepoGraphs{Root: wt.ExamplesDir}}
	p := message.ChangeDetected{ChangeSetID: wt.FixedID(170), Source: message.SourceGit, Components: []message.ComponentRef{}, Truncated: true,
		Commit: &message.Commit{SHA: sha2, Before: sha1, Author: gitActor.Name, Message: "many", Branch: "main", Pusher: "ada", Authors: []string{gitActor.Name}}}
	in := wt.FixedRoot(t, 170, message.TypeChangeDetected, "", gitActor, "git:"+sha2, p)
	wt.Validate(t, in)
	s.handle(t, in)
	cs, err := s.cs.Get(context.Background(), wt.FixedID(170)+"/prod")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{gitActor.Name, "Mallory <mallory@example.com>"}; !slices.Equal(cs.PushAuthors, want) || cs.Nodes["prod/vpc/core"] == nil {
		t.Errorf("push authors %q (nodes %v), want %q", cs.PushAuthors, len(cs.Nodes), want)
	}
}
