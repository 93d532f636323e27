package terraform

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// spentSet is a SpentFunc over the deployments marked over.
type spentSet struct {
	mu    sync.Mutex
	spent map[string]bool
	asked map[string]string // deployment -> component asked about
}

func (s *spentSet) mark(dep string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spent == nil {
		s.spent = map[string]bool{}
	}
	s.spent[dep] = true
}

func (s *spentSet) fn(_ context.Context, component string, o PlanOwner) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.asked == nil {
		s.asked = map[string]string{}
	}
	s.asked[o.DeploymentID] = component
	return o.ChangeSetID == "cs-1" && s.spent[o.DeploymentID]
}

// planFiles lists the files of Root/plans, applied.json aside.
func planFiles(t *testing.T, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, planDir))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Name() != appliedFile {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// planSet is the files Plan keeps for each plan.
func planSet(plans ...PlanResult) []string {
	var out []string
	for _, p := range plans {
		base := strings.TrimSuffix(filepath.Base(p.PlanFile), ".tfplan")
		out = append(out, base+".tfplan", base+".config.json", base+ownerRecordExt)
	}
	sort.Strings(out)
	return out
}

func sameFiles(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

// A saved plan holds its variables' values (SecureString ones included) in clear: it stays in
// the workspace while it may still be applied — waiting for review, or on its way to the apply
// stage — and is removed by the next Plan, Apply or Refresh of the workspace once it cannot:
// its deployment over (a change set rejected, expired, superseded, its plan refused), or the
// state moved on since it was made (another plan applied). What a killed run left (a plan
// being saved, a -var-file) goes too.
func TestPlansThatCanNoLongerBeAppliedAreRemoved(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ctx := context.Background()
	spent := &spentSet{}
	ws := func(dep string, retention int) Workspace {
		return Workspace{Root: filepath.Join(t.TempDir(), "dev", "vpc", "core"), ModuleDir: examplesDir(t, "vpc"),
			Env: "dev", Type: "vpc", Nickname: "core", Prefix: "/iac",
			Config: json.RawMessage(`{"cidr": "10.0.0.0/16", "az_count": 2, "flow_logs": {"retention_days": ` + strings.Repeat("1", retention) + `}}`),
			Owner:  PlanOwner{ChangeSetID: "cs-1", DeploymentID: dep}, Spent: spent.fn}
	}
	base := ws("dep-1", 1)
	at := func(dep string, retention int) Workspace { w := ws(dep, retention); w.Root = base.Root; return w }

	// Two plans waiting (a held one, and one of another deployment): both kept.
	held, err := r.Plan(ctx, at("dep-1", 1))
	if err != nil {
		t.Fatal(err)
	}
	rejected, err := r.Plan(ctx, at("dep-2", 2))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := planFiles(t, base.Root), planSet(held, rejected); !sameFiles(got, want) {
		t.Fatalf("plans dir holds %v, want %v", got, want)
	}
	// What a killed plan left: a plan being saved, the sensitive -var-file.
	for _, f := range []string{filepath.Join(base.Root, planDir, ".new-1.tfplan"), filepath.Join(base.Root, planDir, ".show-1.tfplan"),
		filepath.Join(base.Root, planDir, ".applying.tfplan"), filepath.Join(base.Root, ".karma-sensitive-1.tfvars.json")} {
		if err := os.WriteFile(f, []byte(`{"karma_sensitive_0":"s3cret"}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// dep-2's change set is rejected: the next plan removes its plan, keeps the held one.
	spent.mark("dep-2")
	next, err := r.Plan(ctx, at("dep-3", 3))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := planFiles(t, base.Root), planSet(held, next); !sameFiles(got, want) {
		t.Fatalf("after dep-2 was decided: plans dir holds %v, want %v (dep-2's plan removed, dep-1's kept)", got, want)
	}
	if spent.asked["dep-1"] != "dev/vpc/core" {
		t.Fatalf("Spent asked about %v, want dep-1 of dev/vpc/core", spent.asked)
	}
	if m, _ := filepath.Glob(filepath.Join(base.Root, ".karma-sensitive-*")); len(m) > 0 {
		t.Fatalf("a killed plan's -var-file is still there: %v", m)
	}

	// The held plan is still applied as reviewed; the state moving on makes dep-3's stale: gone.
	if _, err := r.Apply(ctx, at("dep-1", 1), held); err != nil {
		t.Fatalf("the held plan kept: %v", err)
	}
	if got := planFiles(t, base.Root); len(got) != 0 {
		t.Fatalf("after an apply: plans dir holds %v, want nothing (the other plan is stale)", got)
	}

	// A refresh (the drift check) removes what is spent too, and keeps a plan waiting.
	waiting, err := r.Plan(ctx, at("dep-4", 4))
	if err != nil {
		t.Fatal(err)
	}
	over, err := r.Plan(ctx, at("dep-5", 5))
	if err != nil {
		t.Fatal(err)
	}
	spent.mark("dep-5")
	if _, err := r.Refresh(ctx, at("dep-4", 4)); err != nil {
		t.Fatal(err)
	}
	if got, want := planFiles(t, base.Root), planSet(waiting); !sameFiles(got, want) {
		t.Fatalf("after a refresh: plans dir holds %v, want %v (%s removed)", got, want, filepath.Base(over.PlanFile))
	}
}

// A plan without an owner (made by a caller that names none) is removed only once stale; a
// stale plan given to Apply is refused and removed.
func TestStalePlansAreRemoved(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ctx := context.Background()
	ws := Workspace{Root: filepath.Join(t.TempDir(), "dev", "vpc", "core"), ModuleDir: examplesDir(t, "vpc"),
		Env: "dev", Type: "vpc", Nickname: "core", Config: json.RawMessage(`{"cidr": "10.0.0.0/16"}`)}
	first, err := r.Plan(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	ws.Config = json.RawMessage(`{"cidr": "10.1.0.0/16"}`)
	second, err := r.Plan(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Plan(ctx, ws); err != nil { // nothing is stale yet: both kept
		t.Fatal(err)
	}
	if _, err := os.Stat(first.PlanFile); err != nil {
		t.Fatalf("a plan that may still be applied was removed: %v", err)
	}
	if _, err := r.Apply(ctx, ws, second); err != nil {
		t.Fatal(err)
	}
	if got := planFiles(t, ws.Root); len(got) != 0 {
		t.Fatalf("after an apply: plans dir holds %v, want nothing", got)
	}
}

// SweepPlans (karma serve, every minute) does in every workspace what the next Plan would, and
// passes over one whose lock is held.
func TestSweepPlans(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ctx := context.Background()
	spent := &spentSet{}
	work := t.TempDir()
	ws := func(nick, dep string) Workspace {
		return Workspace{Root: filepath.Join(work, "dev", "vpc", nick), ModuleDir: examplesDir(t, "vpc"),
			Env: "dev", Type: "vpc", Nickname: nick, Config: json.RawMessage(`{"cidr": "10.0.0.0/16"}`),
			Owner: PlanOwner{ChangeSetID: "cs-1", DeploymentID: dep}, Spent: spent.fn}
	}
	plans := map[string]PlanResult{}
	for _, nick := range []string{"a", "b", "c"} {
		p, err := r.Plan(ctx, ws(nick, "dep-"+nick))
		if err != nil {
			t.Fatal(err)
		}
		plans[nick] = p
	}
	spent.mark("dep-a")
	spent.mark("dep-c")
	unlock, err := lockRoot(ctx, ws("c", "").Root) // c is being planned or applied by someone
	if err != nil {
		t.Fatal(err)
	}
	n, err := SweepPlans(ctx, work, spent.fn)
	unlock()
	if err != nil || n != 1 {
		t.Fatalf("SweepPlans = %d, %v; want 1 plan removed", n, err)
	}
	for nick, want := range map[string]bool{"a": false, "b": true, "c": true} {
		if _, err := os.Stat(plans[nick].PlanFile); (err == nil) != want {
			t.Fatalf("%s's plan there: %v, want %v", nick, err == nil, want)
		}
	}
	if spent.asked["dep-b"] != "dev/vpc/b" {
		t.Fatalf("Spent asked about %v, want dep-b of dev/vpc/b", spent.asked)
	}
}

// Terraform reads every .tf, .tf.json and auto-loaded variables file of the root module's
// folder: one a module wrote into the workspace (a local_file with a relative filename, or under
// path.root) or anyone put there is not planned along with main.tf — the plan is the commit's
// module alone — and is removed.
func TestStrayConfigInTheWorkspaceIsNotPlanned(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ws := Workspace{Root: filepath.Join(t.TempDir(), "dev", "vpc", "core"), ModuleDir: examplesDir(t, "vpc"),
		Env: "dev", Type: "vpc", Nickname: "core", Config: json.RawMessage(`{"cidr": "10.0.0.0/16"}`)}
	if err := os.MkdirAll(ws.Root, 0o755); err != nil {
		t.Fatal(err)
	}
	stray := map[string]string{
		"rendered.tf":           `resource "terraform_data" "stray" { input = "not the commit's" }`,
		"more.tf.json":          `{"resource": {"terraform_data": {"stray_json": {}}}}`,
		"main_override.tf":      `output "runtime" { value = "not the commit's" }`,
		"values.auto.tfvars":    `stray = "x"`,
		"terraform.tfvars.json": `{"stray": "x"}`,
	}
	for name, data := range stray {
		if err := os.WriteFile(filepath.Join(ws.Root, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	plan, err := r.Plan(context.Background(), ws)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Summary.Add != 1 || len(plan.Resources) != 1 || !strings.HasPrefix(plan.Resources[0].Address, "module.component.") {
		t.Fatalf("plan = %+v %+v, want the module's one resource only", plan.Summary, plan.Resources)
	}
	for name := range stray {
		if _, err := os.Stat(filepath.Join(ws.Root, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still in the workspace: %v", name, err)
		}
	}
}
