package terraform

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	tfjson "github.com/hashicorp/terraform-json"
)

func TestRefreshResultReadsDriftAndOutputs(t *testing.T) {
	t.Parallel()
	plan := &tfjson.Plan{
		ResourceDrift: []*tfjson.ResourceChange{
			{Address: "module.component.aws_vpc.this", Change: &tfjson.Change{Actions: tfjson.Actions{tfjson.ActionUpdate}}},
			{Address: "module.component.aws_subnet.a", Change: &tfjson.Change{Actions: tfjson.Actions{tfjson.ActionDelete}}},
			{Address: "module.component.aws_route.same", Change: &tfjson.Change{Actions: tfjson.Actions{tfjson.ActionNoop}}},
		},
		OutputChanges: map[string]*tfjson.Change{
			"runtime": {Actions: tfjson.Actions{tfjson.ActionUpdate},
				Before: map[string]any{"vpc_id": "vpc-1", "subnets": []any{"a"}, "gone": "x"},
				After:  map[string]any{"vpc_id": "vpc-1", "subnets": []any{"a", "b"}, "new": "y"}},
			"extra":     {Actions: tfjson.Actions{tfjson.ActionUpdate}, Before: "1", After: "2"},
			"unchanged": {Actions: tfjson.Actions{tfjson.ActionNoop}, Before: "1", After: "1"},
		},
	}
	got := refreshResult(plan)
	wantResources := []ResourceDrift{{Address: "module.component.aws_subnet.a", Actions: []string{"delete"}},
		{Address: "module.component.aws_vpc.this", Actions: []string{"update"}}}
	if !reflect.DeepEqual(got.Resources, wantResources) {
		t.Errorf("resources %+v, want %+v", got.Resources, wantResources)
	}
	if want := []string{"extra", "gone", "new", "subnets"}; !reflect.DeepEqual(got.Outputs, want) {
		t.Errorf("outputs %v, want %v (the runtime keys that changed, and other changed outputs)", got.Outputs, want)
	}
	if empty := refreshResult(&tfjson.Plan{}); empty.Resources != nil || len(empty.Outputs) != 0 {
		t.Errorf("an empty plan: %+v", empty)
	}
}

// observedModule writes a module that reads something outside Terraform back at every refresh —
// terraform_remote_state of a local state file, the one built-in data source that reads the
// world — as a real module reads its cloud resources back, and outputs it.
func observedModule(t *testing.T) (module, world string) {
	t.Helper()
	dir := t.TempDir()
	module, world = filepath.Join(dir, "observed"), filepath.Join(dir, "world.tfstate")
	if err := os.MkdirAll(module, 0o755); err != nil {
		t.Fatal(err)
	}
	tf := `variable "component_name" { type = string }
variable "nickname" { type = string }
variable "iac_prefix" {
  type    = string
  default = "/iac"
}
variable "config" { type = any }
data "terraform_remote_state" "world" {
  backend = "local"
  config  = { path = var.config.world }
}
resource "terraform_data" "this" { input = var.config.name }
output "name" { value = terraform_data.this.output }
output "observed" { value = data.terraform_remote_state.world.outputs.value }
`
	if err := os.WriteFile(filepath.Join(module, "main.tf"), []byte(tf), 0o644); err != nil {
		t.Fatal(err)
	}
	setWorld(t, world, "one", 1)
	return module, world
}

// setWorld writes the outside world the module reads: a state file with output "value".
func setWorld(t *testing.T, path, value string, serial int) {
	t.Helper()
	doc := map[string]any{"version": 4, "terraform_version": "1.5.0", "serial": serial, "lineage": "world",
		"outputs": map[string]any{"value": map[string]any{"value": value, "type": "string"}}, "resources": []any{}}
	b, _ := json.Marshal(doc)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTFExecRefreshFindsWhatChangedOutside(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ctx := context.Background()
	module, world := observedModule(t)
	cfg, _ := json.Marshal(map[string]string{"name": "edge", "world": world})
	ws := Workspace{Root: filepath.Join(t.TempDir(), "prod", "observed", "edge"), ModuleDir: module,
		Env: "prod", Type: "observed", Nickname: "edge", Config: cfg}

	res, err := r.Refresh(ctx, ws)
	if err != nil || res.Deployed {
		t.Fatalf("before any apply: %+v, %v; want not deployed", res, err)
	}
	if _, err := os.Stat(filepath.Join(ws.Root, mainFile)); !os.IsNotExist(err) {
		t.Errorf("a workspace without state was prepared (%v): nothing should run", err)
	}
	plan, err := r.Plan(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply(ctx, ws, plan); err != nil {
		t.Fatal(err)
	}
	before, err := currentState(ws.Root)
	if err != nil {
		t.Fatal(err)
	}
	res, err = r.Refresh(ctx, ws)
	if err != nil || !res.Deployed || res.Changed || len(res.Outputs) != 0 || len(res.Resources) != 0 {
		t.Fatalf("nothing changed outside: %+v, %v", res, err)
	}
	if res.Serial != before.Serial || res.Lineage != before.Lineage {
		t.Errorf("state %d/%s, want the workspace's %d/%s", res.Serial, res.Lineage, before.Serial, before.Lineage)
	}

	setWorld(t, world, "two", 2) // the world changes outside Terraform
	res, err = r.Refresh(ctx, ws)
	if err != nil || !res.Changed || !reflect.DeepEqual(res.Outputs, []string{"observed"}) {
		t.Fatalf("after the world changed: %+v, %v; want the output observed changed", res, err)
	}
	after, _ := currentState(ws.Root)
	if after != before {
		t.Errorf("the refresh-only plan wrote the state: %+v, was %+v", after, before)
	}
	if left, _ := filepath.Glob(filepath.Join(ws.Root, planDir, "*.tfplan")); len(left) != 0 {
		t.Errorf("plan files left behind: %v", left)
	}
	if left, _ := filepath.Glob(filepath.Join(ws.Root, planDir, ".refresh-*")); len(left) != 0 {
		t.Errorf("refresh plans left behind: %v", left)
	}
}

func TestNoopRefresh(t *testing.T) {
	t.Parallel()
	var n Noop
	ws := Workspace{Env: "dev", Type: "vpc", Nickname: "core", Config: json.RawMessage(`{}`)}
	if res, err := n.Refresh(context.Background(), ws); err != nil || res.Deployed {
		t.Errorf("never applied: %+v %v", res, err)
	}
	p, _ := n.Plan(context.Background(), ws)
	if _, err := n.Apply(context.Background(), ws, p); err != nil {
		t.Fatal(err)
	}
	if res, err := n.Refresh(context.Background(), ws); err != nil || !res.Deployed || res.Changed {
		t.Errorf("applied: %+v %v; want deployed, unchanged", res, err)
	}
}
