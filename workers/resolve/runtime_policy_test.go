package resolve_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/policy"
	"github.com/usekarma/karma/shared/trigger"
)

// A dependent scheduled because its upstream's apply, in the same change, changed runtime keys it
// consumes is told how those keys changed (runtime_diff: the keys it consumes, from what to what,
// secret-named values replaced), as one redeployed for a runtime written outside Karma is —
// before, its policies saw an empty config diff and nothing of the upstream. The keys it does not
// consume (id) are not given.
func TestADependentRedeployedForItsUpstreamsApplySeesTheKeysThatChanged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("components/app/main.tf", "# terraform.Noop reads no module\n")
	write("iac/prod/app/a/config.json", `{"size": 1, "db_password": "old-pw"}`)
	write("iac/prod/app/b/config.json", `{"size": "${app/a.runtime.cfg_size}", "pw": "${app/a.runtime.cfg_db_password}"}`)
	var mu sync.Mutex
	seen := map[string][]policy.RuntimeKeyChange{} // stage|component -> runtime_diff, of the second push
	second := false
	pol := policyFunc(func(in policy.Input) (policy.Decision, error) {
		mu.Lock()
		defer mu.Unlock()
		if second {
			seen[in.Stage+"|"+in.Component.ID] = in.RuntimeDiff
		}
		return policy.Decision{}, nil
	})
	c := newChainWith(t, root, pol)
	push := func(sha string, files ...string) *changeset.ChangeSet {
		t.Helper()
		var fc []trigger.FileChange
		for _, f := range files {
			fc = append(fc, trigger.FileChange{Path: f})
		}
		roots, err := pushedCommit(trigger.Push{SHA: sha, Author: gitActor.Name, Message: "m", Branch: "main", AutoApprove: true, Files: fc})
		if err != nil {
			t.Fatal(err)
		}
		if err := pipeline.Publish(ctx, c.q, roots...); err != nil {
			t.Fatal(err)
		}
		c.runUntilIdle(t)
		cs, err := c.changeSets.Get(ctx, roots[0].CorrelationID+"/prod")
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	push(sha1, "iac/prod/app/a/config.json", "iac/prod/app/b/config.json")

	write("iac/prod/app/a/config.json", `{"size": 2, "db_password": "new-pw"}`)
	mu.Lock()
	second = true
	mu.Unlock()
	cs := push(sha2, "iac/prod/app/a/config.json")
	if n := cs.Nodes["prod/app/b"]; n == nil || n.Root || n.State != changeset.Applied {
		t.Fatalf("b after a's change: %+v; want it redeployed for a", n)
	}
	want := []policy.RuntimeKeyChange{
		{Upstream: "prod/app/a", KeyChange: policy.KeyChange{Key: "cfg_db_password", Op: "change", Before: "(sensitive value)", After: "(sensitive value)"}},
		{Upstream: "prod/app/a", KeyChange: policy.KeyChange{Key: "cfg_size", Op: "change", Before: float64(1), After: float64(2)}},
	}
	for _, stage := range []string{policy.StageResolve, policy.StageApply} {
		if got := seen[stage+"|prod/app/b"]; !reflect.DeepEqual(got, want) {
			t.Errorf("b's runtime_diff (%s):\n got %+v\nwant %+v", stage, got, want)
		}
	}
	if got := seen[policy.StageResolve+"|prod/app/a"]; len(got) != 0 {
		t.Errorf("a, the root: runtime_diff %+v, want none", got)
	}
}
