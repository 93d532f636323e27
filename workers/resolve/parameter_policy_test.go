package resolve_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/policy"
	"github.com/usekarma/karma/shared/trigger"
)

// A /config parameter changed in Parameter Store (the console, `karma params put`) is policed
// against the config deployed — what the change changes —, not against the parameter's current
// value, which by then is the change itself. Diffed against itself, the change changed no key,
// and a rule about a key ("changing a VPC's cidr is reviewed by people") never fired: the new
// cidr was auto-approved and applied. Both stages see the key change, from the deployed value
// to the one the change names, and the change waits for people. Nor does a value written to the
// parameter beforehand make a push of the same value look unchanged.
func TestAParameterChangeIsPolicedAgainstTheDeployedConfig(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const component, name = "prod/vpc/core", "/iac/vpc/core/config"
	var mu sync.Mutex
	diffs := map[string][]policy.KeyChange{} // stage -> the diff of the parameter change
	pol := policyFunc(func(in policy.Input) (policy.Decision, error) {
		if in.Component.ID != component {
			return policy.Decision{}, nil
		}
		var d policy.Decision
		for _, c := range in.Diff {
			if c.Key == "cidr" && c.Op == "change" {
				d.RequireApproval = append(d.RequireApproval, "changing a VPC's cidr is reviewed by people")
			}
		}
		if in.Change.Source == message.SourceParameter {
			mu.Lock()
			diffs[in.Stage] = in.Diff
			mu.Unlock()
		}
		return d, nil
	})
	c := newChainWith(t, wt.ExamplesDir, pol)
	roots, err := pushedCommit(trigger.Push{SHA: sha1, Author: gitActor.Name, Message: "vpc", Branch: "main", AutoApprove: true,
		Files: []trigger.FileChange{{Path: "iac/prod/vpc/core/config.json"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Publish(ctx, c.q, roots...); err != nil {
		t.Fatal(err)
	}
	c.runUntilIdle(t)
	if cs, err := c.changeSets.Get(ctx, roots[0].CorrelationID+"/prod"); err != nil || cs.Nodes[component].State != changeset.Applied {
		t.Fatalf("the push's change set: %+v, %v; want %s applied", cs, err, component)
	}

	// Someone changes the cidr in Parameter Store, asking for auto-approve.
	st, err := c.params("prod")
	if err != nil {
		t.Fatal(err)
	}
	deployed, err := st.Get(ctx, name)
	if err != nil || !strings.Contains(deployed.Value, `"cidr":"10.20.0.0/16"`) {
		t.Fatalf("%s after the push: %+v, %v", name, deployed, err)
	}
	changed := strings.Replace(deployed.Value, `"cidr":"10.20.0.0/16"`, `"cidr":"10.99.0.0/16"`, 1)
	r, err := st.Put(ctx, params.PutInput{Name: name, Value: changed, User: "mallory"})
	if err != nil || !r.Changed {
		t.Fatalf("put: %+v, %v", r, err)
	}
	cur, err := st.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := trigger.ParameterChanged(trigger.ParameterChange{Env: "prod", Name: name, Operation: "Update", Version: cur.Version,
		WrittenAt: cur.LastModified, Actor: message.Actor{Kind: "cli", Name: "mallory"}, AutoApprove: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Publish(ctx, c.q, tr); err != nil {
		t.Fatal(err)
	}
	c.runUntilIdle(t)

	want := []policy.KeyChange{{Key: "cidr", Op: "change", Before: "10.20.0.0/16", After: "10.99.0.0/16"}}
	if got := diffs[policy.StageResolve]; !reflect.DeepEqual(got, want) {
		t.Errorf("the diff before planning: %+v, want %+v", got, want)
	}
	cs, err := c.changeSets.Get(ctx, tr.CorrelationID)
	if err != nil {
		t.Fatal(err)
	}
	if n := cs.Nodes[component]; cs.Approved || n == nil || n.State == changeset.Applied ||
		!strings.Contains(cs.AutoApproveRefused, "changing a VPC's cidr is reviewed by people") {
		t.Fatalf("the parameter change: approved %v, refused %q, node %+v; want it waiting for people", cs.Approved, cs.AutoApproveRefused, n)
	}
	if got := c.tf.applies[component]; got != 1 {
		t.Errorf("%s applied %d times, want once (the push)", component, got)
	}

	// Approved by people, it is planned and put to the policies before applying: the same diff.
	a, err := changeset.Approve(ctx, c.changeSets, cs.ID, "grace")
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Publish(ctx, c.q, a.Messages...); err != nil {
		t.Fatal(err)
	}
	c.runUntilIdle(t)
	if got := diffs[policy.StageApply]; !reflect.DeepEqual(got, want) {
		t.Errorf("the diff before applying: %+v, want %+v", got, want)
	}
	if cs, err = c.changeSets.Get(ctx, cs.ID); err != nil || cs.Nodes[component].State != changeset.Applied {
		t.Fatalf("after approval: %+v, %v; want %s applied", cs, err, component)
	}

	// The other way round: a value written to the parameter first (its event lost) does not make
	// a push of that value look unchanged. What runs is 10.99.0.0/16; the push brings back
	// 10.20.0.0/16, which someone wrote to /config beforehand.
	if _, err := st.Put(ctx, params.PutInput{Name: name, Value: deployed.Value, User: "mallory"}); err != nil {
		t.Fatal(err)
	}
	pushed, err := pushedCommit(trigger.Push{SHA: sha2, Author: gitActor.Name, Message: "vpc", Branch: "main", AutoApprove: true,
		Files: []trigger.FileChange{{Path: "iac/prod/vpc/core/config.json"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Publish(ctx, c.q, pushed...); err != nil {
		t.Fatal(err)
	}
	c.runUntilIdle(t)
	back, err := c.changeSets.Get(ctx, pushed[0].CorrelationID+"/prod")
	if err != nil {
		t.Fatal(err)
	}
	if n := back.Nodes[component]; back.Approved || n == nil || n.State == changeset.Applied ||
		!strings.Contains(back.AutoApproveRefused, "changing a VPC's cidr is reviewed by people") {
		t.Errorf("the push of the value written beforehand: approved %v, refused %q, node %+v; want it waiting for people", back.Approved, back.AutoApproveRefused, n)
	}
}

// Events naming no version coalesce: mallory's version of /config and alice's on top of it are
// one change, of alice's version, whose value carries mallory's edit. Before, only alice was
// named: mallory could approve the change that deploys her edit in a protected environment, and
// the policies could not know she had written any of it. The change set now names her
// (covered_writers), separation of duties refuses her, and the policies see her.
func TestACoalescedParameterChangeKeepsEveryWriterFromApproving(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const component, name = "prod/vpc/core", "/iac/vpc/core/config"
	const mallory, alice = "arn:aws:iam::1:user/mallory", "arn:aws:iam::1:user/alice"
	var mu sync.Mutex
	var writers [][]string
	pol := policyFunc(func(in policy.Input) (policy.Decision, error) {
		if in.Component.ID == component {
			mu.Lock()
			writers = append(writers, in.Change.CoveredWriters)
			mu.Unlock()
		}
		return policy.Decision{}, nil
	})
	c := newChainWith(t, protectedExamples(t), pol)
	st, err := c.params("prod")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(wt.ExamplesDir, "iac", "prod", "vpc", "core", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	value := func(cidr string, azs int) string {
		var cfg map[string]any
		if err := json.Unmarshal(raw, &cfg); err != nil {
			t.Fatal(err)
		}
		delete(cfg, "single_nat_gateway")
		cfg["cidr"], cfg["az_count"] = cidr, azs
		b, _ := json.Marshal(cfg)
		return string(b)
	}
	// v1 published by Karma (its consequence known), v2 by mallory, v3 by alice; one event.
	v1 := value("10.20.0.0/16", 3)
	for _, in := range []params.PutInput{
		{Name: name, Value: v1, Description: params.Provenance("commit=abc file=iac/prod/vpc/core/config.json", v1), User: "karma"},
		{Name: name, Value: value("10.99.0.0/16", 3), User: mallory},
		{Name: name, Value: value("10.99.0.0/16", 4), User: alice},
	} {
		if _, err := st.Put(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := trigger.ParameterChanged(trigger.ParameterChange{Env: "prod", Name: name, Operation: "Update", EventID: "ev-coalesced"})
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Publish(ctx, c.q, tr); err != nil {
		t.Fatal(err)
	}
	c.runUntilIdle(t)
	cs, err := c.changeSets.Get(ctx, tr.CorrelationID)
	if err != nil {
		t.Fatal(err)
	}
	if cs.Actor.Name != alice || !slices.Equal(cs.CoveredWriters, []string{mallory}) || cs.Nodes[component] == nil {
		t.Fatalf("the change: actor %q, covered writers %q, nodes %v; want alice's, naming mallory", cs.Actor.Name, cs.CoveredWriters, cs.Nodes)
	}
	var ineligible *changeset.IneligibleError
	if err := cs.CanBeApprovedBy(mallory, time.Now()); !errors.As(err, &ineligible) || ineligible.Role != changeset.RoleCoveredWriter {
		t.Errorf("mallory approving: %v; want her refused as the writer of a version it carries", err)
	}
	if err := cs.CanBeApprovedBy("arn:aws:iam::1:user/grace", time.Now()); err != nil {
		t.Errorf("grace approving: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(writers) == 0 || !slices.Equal(writers[0], []string{mallory}) {
		t.Errorf("the policies saw covered writers %q, want mallory", writers)
	}
}

// A runtime written outside Karma redeploys the dependents that consume a key it changed; their
// policies are told which keys of which upstream changed, from what to what (runtime_diff, in
// the diff's shape), the values of secret-named keys and URLs' passwords replaced — before, a
// policy saw only an empty config diff, and could not ask that a changed subnet list be reviewed.
// A root of a change of another source sees none.
func TestARuntimeChangeTellsThePoliciesWhichKeysChanged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const upstream, dependent, name = "prod/vpc/core", "prod/lambda/handlers", "/iac/vpc/core/runtime"
	var mu sync.Mutex
	seen := map[string][]policy.RuntimeKeyChange{} // stage|component -> runtime_diff of the runtime change
	pol := policyFunc(func(in policy.Input) (policy.Decision, error) {
		var d policy.Decision
		if in.Change.Source != message.SourceRuntime {
			if in.Component.Root && len(in.RuntimeDiff) != 0 {
				t.Errorf("%s of a %s change: runtime_diff %+v", in.Component.ID, in.Change.Source, in.RuntimeDiff)
			}
			return d, nil
		}
		mu.Lock()
		seen[in.Stage+"|"+in.Component.ID] = in.RuntimeDiff
		mu.Unlock()
		for _, c := range in.RuntimeDiff {
			if c.Upstream == upstream && c.Key == "private_subnet_ids" {
				d.RequireApproval = append(d.RequireApproval, "new subnets for "+in.Component.ID+" are reviewed by people")
			}
		}
		return d, nil
	})
	c := newChainWith(t, wt.ExamplesDir, pol)
	roots, err := pushedCommit(trigger.Push{SHA: sha1, Author: gitActor.Name, Message: "all", Branch: "main", AutoApprove: true,
		Files: []trigger.FileChange{{Path: "iac/prod/vpc/core/config.json"}, {Path: "iac/prod/lambda/handlers/config.json"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Publish(ctx, c.q, roots...); err != nil {
		t.Fatal(err)
	}
	c.runUntilIdle(t)

	st, err := c.params("prod")
	if err != nil {
		t.Fatal(err)
	}
	before, err := st.Get(ctx, name)
	if err != nil {
		t.Fatalf("%s after the push: %v", name, err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(before.Value), &doc); err != nil {
		t.Fatal(err)
	}
	oldID := doc["id"]
	doc["id"] = "vpc-0abc"
	doc["private_subnet_ids"] = []any{"subnet-1", "subnet-2"}
	doc["db_password"] = "hunter2"
	doc["admin"] = map[string]any{"url": "postgres://app:hunter2@db/app", "api_token": "tok"}
	value, _ := json.Marshal(doc)
	if _, err := st.Put(ctx, params.PutInput{Name: name, Value: string(value), User: "mallory"}); err != nil {
		t.Fatal(err)
	}
	cur, err := st.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := trigger.ParameterChanged(trigger.ParameterChange{Env: "prod", Name: name, Operation: "Update", Version: cur.Version,
		WrittenAt: cur.LastModified, Actor: message.Actor{Kind: "cli", Name: "mallory"}, AutoApprove: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Publish(ctx, c.q, tr); err != nil {
		t.Fatal(err)
	}
	c.runUntilIdle(t)

	want := []policy.RuntimeKeyChange{
		{Upstream: upstream, KeyChange: policy.KeyChange{Key: "admin", Op: "add",
			After: map[string]any{"url": "postgres://app:(sensitive value)@db/app", "api_token": "(sensitive value)"}}},
		{Upstream: upstream, KeyChange: policy.KeyChange{Key: "db_password", Op: "add", After: "(sensitive value)"}},
		{Upstream: upstream, KeyChange: policy.KeyChange{Key: "id", Op: "change", Before: oldID, After: "vpc-0abc"}},
		{Upstream: upstream, KeyChange: policy.KeyChange{Key: "private_subnet_ids", Op: "add", After: []any{"subnet-1", "subnet-2"}}},
	}
	if got := seen[policy.StageResolve+"|"+dependent]; !reflect.DeepEqual(got, want) {
		t.Errorf("%s's runtime_diff before planning:\n got %+v\nwant %+v", dependent, got, want)
	}
	cs, err := c.changeSets.Get(ctx, tr.CorrelationID)
	if err != nil {
		t.Fatal(err)
	}
	if n := cs.Nodes[dependent]; cs.Approved || n == nil || !n.Root || n.State == changeset.Applied ||
		!strings.Contains(cs.AutoApproveRefused, "policy requires an approval: new subnets for prod/") {
		t.Fatalf("the runtime change: approved %v, refused %q, node %+v; want %s waiting for people", cs.Approved, cs.AutoApproveRefused, n, dependent)
	}
	if b, _ := json.Marshal(cs); strings.Contains(string(b), "hunter2") || strings.Contains(string(b), `"tok"`) {
		t.Errorf("the change set records a secret of the runtime: %s", b)
	}

	a, err := changeset.Approve(ctx, c.changeSets, cs.ID, "grace")
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Publish(ctx, c.q, a.Messages...); err != nil {
		t.Fatal(err)
	}
	c.runUntilIdle(t)
	if got := seen[policy.StageApply+"|"+dependent]; !reflect.DeepEqual(got, want) {
		t.Errorf("%s's runtime_diff before applying:\n got %+v\nwant %+v", dependent, got, want)
	}
}
