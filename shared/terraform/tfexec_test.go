package terraform

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
)

// Tests against the real terraform binary. They use only built-in resources (terraform_data,
// local-exec), so nothing is downloaded; they are skipped when terraform is not installed.

func findTerraformOrSkip(t *testing.T) string {
	t.Helper()
	p, err := FindTerraform()
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	return p
}

func examplesDir(t *testing.T, typ string) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "examples", "components", typ))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func timed(t *testing.T, what string, f func() error) {
	t.Helper()
	start := time.Now()
	if err := f(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	t.Logf("%s: %v", what, time.Since(start).Round(time.Millisecond))
}

func TestTFExecLifecycle(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ctx := context.Background()
	work := t.TempDir()
	vpc := Workspace{
		Root:      filepath.Join(work, "dev", "vpc", "core"),
		ModuleDir: examplesDir(t, "vpc"),
		Env:       "dev", Type: "vpc", Nickname: "core", Prefix: "/iac",
		Config: json.RawMessage(`{"cidr": "10.0.0.0/16", "az_count": 2, "flow_logs": {"retention_days": 30}}`),
	}

	// First plan: init + plan + show.
	var plan PlanResult
	timed(t, "first plan (init+plan+show)", func() (err error) { plan, err = r.Plan(ctx, vpc); return })
	if plan.Summary != (message.PlanSummary{Add: 1}) || !plan.HasChanges {
		t.Fatalf("first plan = %+v, want 1 add", plan)
	}
	if len(plan.Resources) != 1 || plan.Resources[0].Actions[0] != "create" || plan.Resources[0].After == nil || plan.ResourcesTruncated {
		t.Fatalf("first plan's resources = %+v, want the one created, with its values", plan.Resources)
	}
	if filepath.Dir(plan.PlanFile) != filepath.Join(vpc.Root, "plans") || len(plan.PlanHash) != 64 {
		t.Fatalf("plan file %s, hash %s", plan.PlanFile, plan.PlanHash)
	}
	if data, _ := os.ReadFile(plan.PlanFile); sha256hex(data) != plan.PlanHash {
		t.Fatal("PlanHash is not the sha256 of the plan file")
	}
	marker := filepath.Join(vpc.Root, ".terraform", initMarker)
	st, err := os.Stat(marker)
	if err != nil {
		t.Fatalf("no init marker: %v", err)
	}

	var out Outputs
	timed(t, "apply (+output)", func() (err error) { out, err = r.Apply(ctx, vpc, plan); return })
	var vpcID, flowLog string
	var subnets []string
	mustJSON(t, out["vpc_id"], &vpcID)
	mustJSON(t, out["private_subnet_ids"], &subnets)
	mustJSON(t, out["flow_log_group"], &flowLog)
	if !strings.HasPrefix(vpcID, "vpc-") || len(subnets) != 2 || flowLog != "/aws/vpc/flow-logs/core" || len(out) != 3 {
		t.Fatalf("outputs = %s", fmtOutputs(out))
	}
	if _, err := os.Stat(plan.PlanFile); !os.IsNotExist(err) {
		t.Fatalf("applied plan file not removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(vpc.Root, "terraform.tfstate")); err != nil {
		t.Fatalf("state not in Root: %v", err)
	}

	// Same config again: nothing to do, and no second init.
	timed(t, "re-plan (no init)", func() (err error) { plan, err = r.Plan(ctx, vpc); return })
	if plan.Summary != (message.PlanSummary{NoOp: 1}) || plan.HasChanges {
		t.Fatalf("re-plan = %+v, want no-op", plan)
	}
	if st2, _ := os.Stat(marker); !st2.ModTime().Equal(st.ModTime()) {
		t.Fatal("init ran again although main.tf did not change")
	}
	// Applying a no-op plan is fine and gives the same outputs.
	out2, err := r.Apply(ctx, vpc, plan)
	if err != nil || fmtOutputs(out2) != fmtOutputs(out) {
		t.Fatalf("no-op apply: %s, %v", fmtOutputs(out2), err)
	}

	// Interpolation into another module: ecs-cluster's namespace depends on the VPC id.
	ecsCfg, err := os.ReadFile(filepath.Join("..", "..", "examples", "iac", "prod", "ecs-cluster", "core", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	interpolated, err := model.Interpolate(ecsCfg, func(ref string) (map[string]any, error) {
		if ref != "vpc/core" {
			return nil, nil
		}
		m := map[string]any{}
		for k, v := range out {
			var x any
			mustJSON(t, v, &x)
			m[k] = x
		}
		return m, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ecs := Workspace{Root: filepath.Join(work, "dev", "ecs-cluster", "core"), ModuleDir: examplesDir(t, "ecs-cluster"),
		Env: "dev", Type: "ecs-cluster", Nickname: "core", Prefix: "/iac", Config: interpolated}
	ecsPlan, err := r.Plan(ctx, ecs)
	if err != nil {
		t.Fatal(err)
	}
	ecsOut, err := r.Apply(ctx, ecs, ecsPlan)
	if err != nil {
		t.Fatal(err)
	}
	var ns string
	mustJSON(t, ecsOut["namespace_id"], &ns)
	sum := sha1.Sum([]byte("core.internal|" + vpcID))
	if want := "ns-" + hex.EncodeToString(sum[:])[:16]; ns != want {
		t.Fatalf("namespace_id = %s, want %s (from the interpolated vpc id %s)", ns, want, vpcID)
	}

	// A config value that changes an output: an in-place change.
	vpc.Config = json.RawMessage(`{"cidr": "10.1.0.0/16", "az_count": 2, "flow_logs": {"retention_days": 30}}`)
	timed(t, "plan of a change", func() (err error) { plan, err = r.Plan(ctx, vpc); return })
	if plan.Summary != (message.PlanSummary{Change: 1}) || !plan.HasChanges {
		t.Fatalf("plan after a cidr change = %+v, want 1 change", plan)
	}

	// A tampered plan file is refused, and nothing is applied.
	data, err := os.ReadFile(plan.PlanFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plan.PlanFile, append(data, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = r.Apply(ctx, vpc, plan)
	var te *Error
	if !errors.Is(err, ErrPlanChanged) || !errors.As(err, &te) || !te.Permanent() || te.Op != OpVerify ||
		!strings.Contains(err.Error(), "plan changed since review") || te.Component != "dev/vpc/core" {
		t.Fatalf("apply of a tampered plan: %v", err)
	}
	// A missing plan file too.
	if _, err := r.Apply(ctx, vpc, PlanResult{PlanFile: filepath.Join(vpc.Root, "plans", "gone.tfplan"), PlanHash: plan.PlanHash}); !errors.Is(err, ErrPlanChanged) {
		t.Fatalf("apply of a missing plan: %v", err)
	}
	// The reviewed plan, restored, still applies.
	if err := os.WriteFile(plan.PlanFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out3, err := r.Apply(ctx, vpc, plan)
	if err != nil {
		t.Fatal(err)
	}
	var vpcID2 string
	mustJSON(t, out3["vpc_id"], &vpcID2)
	if vpcID2 == vpcID {
		t.Fatal("vpc_id did not change with the cidr")
	}
}

func TestTFExecPlanFailure(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ws := Workspace{Root: t.TempDir(), ModuleDir: examplesDir(t, "vpc"), Env: "dev", Type: "vpc", Nickname: "bad",
		Config: json.RawMessage(`{"cidr": "not-a-cidr"}`)}
	_, err := r.Plan(context.Background(), ws)
	var te *Error
	if !errors.As(err, &te) || te.Op != OpPlan || !te.Permanent() || te.Component != "dev/vpc/bad" {
		t.Fatalf("plan of an invalid config: %v", err)
	}
	if !strings.Contains(te.Log, "cidr") || len(te.Log) > logTail+10 {
		t.Fatalf("log does not carry terraform's diagnostics: %q", te.Log)
	}
	// Terraform reports the error once per subnet: it is kept once.
	if len(te.Diagnostics) != 1 || te.Diagnostics[0].Summary != "Error in function call" ||
		!strings.Contains(te.Diagnostics[0].Detail, "invalid CIDR address: not-a-cidr") || te.Diagnostics[0].Where == "" {
		t.Fatalf("diagnostics = %+v", te.Diagnostics)
	}
	t.Logf("error as reported:\n%v", err)

	// A missing binary is a permanent failure too.
	r2 := NewTFExec(filepath.Join(t.TempDir(), "no-terraform"))
	ws.Root = t.TempDir()
	if _, err := r2.Plan(context.Background(), ws); !errors.As(err, &te) || !te.Permanent() {
		t.Fatalf("plan with a missing binary: %v", err)
	}
}

func TestTFExecCancelMidApply(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	r.GracePeriod = 20 * time.Second
	module, err := filepath.Abs(filepath.Join("testdata", "modules", "slow"))
	if err != nil {
		t.Fatal(err)
	}
	started := filepath.Join(t.TempDir(), "started")
	cfg, _ := json.Marshal(map[string]any{"value": "a", "sleep": 60, "started_file": started})
	ws := Workspace{Root: t.TempDir(), ModuleDir: module, Env: "dev", Type: "slow", Nickname: "x", Config: cfg}
	bg := context.Background()
	plan, err := r.Plan(bg, ws)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Summary.Add != 1 {
		t.Fatalf("plan = %+v", plan)
	}

	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	go func() {
		// Cancel once the provisioner is running, i.e. in the middle of the apply.
		for ctx.Err() == nil {
			if _, err := os.Stat(started); err == nil {
				cancel()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	start := time.Now()
	_, err = r.Apply(ctx, ws, plan)
	took := time.Since(start)
	var te *Error
	if !errors.As(err, &te) || te.Permanent() || !errors.Is(err, context.Canceled) || te.Op != OpApply {
		t.Fatalf("cancelled apply: %v (permanent %v)", err, te != nil && te.Permanent())
	}
	if _, serr := os.Stat(started); serr != nil {
		t.Fatal("apply was not cancelled mid-way: the provisioner never started")
	}
	if took > 15*time.Second {
		t.Fatalf("cancelled apply took %v: terraform did not stop on interrupt", took)
	}
	t.Logf("cancelled apply returned after %v: %v", took.Round(time.Millisecond), err)

	// The Root is still usable: a new plan and apply succeed (the interrupted resource is
	// created or replaced, depending on how far terraform got).
	cfg2, _ := json.Marshal(map[string]any{"value": "a", "sleep": 0})
	ws.Config = cfg2
	plan, err = r.Plan(bg, ws)
	if err != nil {
		t.Fatalf("plan after a cancelled apply: %v", err)
	}
	if plan.Summary.Add != 1 {
		t.Fatalf("plan after a cancelled apply = %+v, want the resource (re)created", plan)
	}
	out, err := r.Apply(bg, ws, plan)
	if err != nil {
		t.Fatalf("apply after a cancelled apply: %v", err)
	}
	if string(out["value"]) != `"a"` {
		t.Fatalf("outputs = %s", fmtOutputs(out))
	}
	if plan, err = r.Plan(bg, ws); err != nil || plan.HasChanges {
		t.Fatalf("converged plan = %+v, %v", plan, err)
	}
}

// Two runners (as two processes would) planning one Root at once are serialised by the lock.
func TestTFExecConcurrentPlansOneRoot(t *testing.T) {
	t.Parallel()
	exe := findTerraformOrSkip(t)
	ws := Workspace{Root: t.TempDir(), ModuleDir: examplesDir(t, "s3-bucket"), Env: "dev", Type: "s3-bucket", Nickname: "logs",
		Config: json.RawMessage(`{"bucket_name": "karma-logs"}`)}
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() {
			_, err := NewTFExec(exe).Plan(context.Background(), ws)
			errs <- err
		}()
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent plan: %v", err)
		}
	}
}

func mustJSON(t *testing.T, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
}

// A workspace initialised again (its main.tf changed: another commit's modules, another set of
// sensitive values) after something was applied keeps its state: `terraform init -reconfigure`
// took the Root's state for a legacy local state to migrate and emptied it, so the next plan
// created everything again.
func TestTFExecInitAgainKeepsTheState(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ctx := context.Background()
	echo, err := os.ReadFile(filepath.Join("testdata", "modules", "echo", "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	modules := t.TempDir()
	for _, commit := range []string{"a", "b"} { // the same module in two commits' modules folders
		if err := os.MkdirAll(filepath.Join(modules, commit, "echo"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(modules, commit, "echo", "main.tf"), echo, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ws := Workspace{Root: filepath.Join(t.TempDir(), "prod", "echo", "core"), ModuleDir: filepath.Join(modules, "a", "echo"),
		Env: "prod", Type: "echo", Nickname: "core", Config: json.RawMessage(`{"name": "core", "size": 1}`)}
	if _, err := r.Apply(ctx, ws, mustPlan(t, r, ws)); err != nil {
		t.Fatal(err)
	}
	before, err := currentState(ws.Root)
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(ws.Root, ".terraform", initMarker)
	first, _ := os.ReadFile(marker)

	ws.ModuleDir = filepath.Join(modules, "b", "echo")
	plan := mustPlan(t, r, ws)
	if again, _ := os.ReadFile(marker); string(again) == string(first) {
		t.Fatal("terraform was not initialised again for the other modules folder")
	}
	if after, err := currentState(ws.Root); err != nil || after != before {
		t.Fatalf("state after init again: %+v (%v), was %+v", after, err, before)
	}
	if plan.HasChanges || plan.Summary != (message.PlanSummary{NoOp: 1}) {
		t.Fatalf("plan after init again = %+v: want nothing to do", plan.Summary)
	}
}

// A workspace whose state an init with -reconfigure emptied (terraform.tfstate empty, the state
// in terraform.tfstate.backup) is neither planned nor applied: every resource would be created
// again. The error says where the state is.
func TestTFExecRefusesAnEmptiedState(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ctx := context.Background()
	module, err := filepath.Abs(filepath.Join("testdata", "modules", "echo"))
	if err != nil {
		t.Fatal(err)
	}
	ws := Workspace{Root: filepath.Join(t.TempDir(), "prod", "echo", "core"), ModuleDir: module,
		Env: "prod", Type: "echo", Nickname: "core", Config: json.RawMessage(`{"name": "core", "size": 1}`)}
	if _, err := r.Apply(ctx, ws, mustPlan(t, r, ws)); err != nil {
		t.Fatal(err)
	}
	plan := mustPlan(t, r, ws)
	state := filepath.Join(ws.Root, stateFile)
	if err := os.Rename(state, state+".backup"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Plan(ctx, ws); err == nil || !strings.Contains(err.Error(), "terraform.tfstate.backup holds state serial") {
		t.Errorf("plan of an emptied state: %v, want it refused", err)
	}
	if _, err := r.Apply(ctx, ws, plan); err == nil || !strings.Contains(err.Error(), "terraform.tfstate.backup holds state serial") {
		t.Errorf("apply in an emptied state: %v, want it refused", err)
	}
	if st, _ := os.Stat(state); st == nil || st.Size() != 0 {
		t.Error("the emptied state was written")
	}
}
