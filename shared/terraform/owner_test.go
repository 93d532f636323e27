package terraform

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A Root is one component's: claimed by the first, it is refused to another.
func TestClaimRoot(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for i := 0; i < 2; i++ {
		if err := claimRoot(root, "prod/vpc/Core"); err != nil {
			t.Fatalf("claim %d by its component: %v", i, err)
		}
	}
	err := claimRoot(root, "prod/vpc/core")
	if err == nil || !strings.Contains(err.Error(), "is component prod/vpc/Core's") || !strings.Contains(err.Error(), "not prod/vpc/core's") {
		t.Fatalf("claim by another component: %v", err)
	}
}

// Two components whose names differ only in case get one folder on a file system that ignores
// case (here: one Root given to both): the second is neither planned nor applied there — it
// would replace the first's resources, planned against its state.
func TestTFExecRefusesAnotherComponentsWorkspace(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ctx := context.Background()
	module, err := filepath.Abs(filepath.Join("testdata", "modules", "echo"))
	if err != nil {
		t.Fatal(err)
	}
	upper := Workspace{Root: t.TempDir(), ModuleDir: module, Env: "prod", Type: "echo", Nickname: "Core",
		Config: json.RawMessage(`{"name": "upper", "size": 1}`)}
	if _, err := r.Apply(ctx, upper, mustPlan(t, r, upper)); err != nil {
		t.Fatal(err)
	}
	state, err := os.ReadFile(filepath.Join(upper.Root, stateFile))
	if err != nil {
		t.Fatal(err)
	}
	lower := upper
	lower.Nickname, lower.Config = "core", json.RawMessage(`{"name": "lower", "size": 1}`)
	if _, err := r.Plan(ctx, lower); err == nil || !strings.Contains(err.Error(), "is component prod/echo/Core's") {
		t.Fatalf("plan of prod/echo/core in prod/echo/Core's workspace: %v", err)
	}
	if _, err := r.Refresh(ctx, lower); err == nil {
		t.Fatal("refresh of prod/echo/core in prod/echo/Core's workspace was not refused")
	}
	if after, _ := os.ReadFile(filepath.Join(upper.Root, stateFile)); string(after) != string(state) {
		t.Error("the state changed")
	}
	if got, _ := os.ReadFile(filepath.Join(upper.Root, configFile)); !strings.Contains(string(got), "upper") {
		t.Errorf("config.json rewritten: %s", got)
	}
}
