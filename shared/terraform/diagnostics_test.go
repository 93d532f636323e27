package terraform

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/message"
)

// A failing apply carries terraform's own diagnostic (summary, detail, where), not just
// "exit status 1".
func TestTFExecApplyFailureDiagnostics(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ctx := context.Background()
	module, err := filepath.Abs(filepath.Join("testdata", "modules", "fails"))
	if err != nil {
		t.Fatal(err)
	}
	failFile := filepath.Join(t.TempDir(), "fail")
	if err := os.WriteFile(failFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{"value": "a", "fail_file": failFile, "message": "quota exceeded for subnets in eu-west-1"})
	ws := Workspace{Root: t.TempDir(), ModuleDir: module, Env: "prod", Type: "fails", Nickname: "core", Config: cfg}
	plan, err := r.Plan(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Apply(ctx, ws, plan)
	var te *Error
	if !errors.As(err, &te) || te.Op != OpApply || !te.Permanent() {
		t.Fatalf("failing apply: %v", err)
	}
	if len(te.Diagnostics) != 1 {
		t.Fatalf("diagnostics = %+v, want terraform's one error", te.Diagnostics)
	}
	d := te.Diagnostics[0]
	if d.Summary != "local-exec provisioner error" || !strings.Contains(d.Detail, "quota exceeded for subnets in eu-west-1") ||
		d.Address != "module.component.terraform_data.quota" || d.Where != "fails/main.tf:15" {
		t.Errorf("diagnostic = %+v", d)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "terraform apply prod/fails/core: exit status 1\nError: local-exec provisioner error (module.component.terraform_data.quota, fails/main.tf:15)\n  ") ||
		!strings.Contains(msg, "quota exceeded for subnets in eu-west-1") || strings.Contains(msg, `"@level"`) {
		t.Errorf("error as reported:\n%s", msg)
	}
	if strings.Contains(te.Log, `"@message"`) || !strings.Contains(te.Log, "Error: local-exec provisioner error") {
		t.Errorf("the log keeps terraform's text, not its JSON:\n%s", te.Log)
	}

	// Once the cause is gone, planning again (the resource is tainted) and applying succeed.
	if err := os.Remove(failFile); err != nil {
		t.Fatal(err)
	}
	if plan, err = r.Plan(ctx, ws); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply(ctx, ws, plan); err != nil {
		t.Fatalf("apply after the failure: %v", err)
	}
}

// An apply that fails half-way says what terraform changed before failing — now in the state —
// and what failed, from its -json hooks; it returns no outputs.
func TestTFExecApplyFailedHalfWaySaysWhatWasApplied(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ctx := context.Background()
	module, err := filepath.Abs(filepath.Join("testdata", "modules", "halfway"))
	if err != nil {
		t.Fatal(err)
	}
	failFile := filepath.Join(t.TempDir(), "fail")
	if err := os.WriteFile(failFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{"value": "a", "fail_file": failFile})
	ws := Workspace{Root: t.TempDir(), ModuleDir: module, Env: "prod", Type: "halfway", Nickname: "core", Config: cfg}
	out, err := r.Apply(ctx, ws, mustPlan(t, r, ws))
	var te *Error
	if !errors.As(err, &te) || te.Op != OpApply || !te.Permanent() || out != nil {
		t.Fatalf("failing apply: %v, outputs %v", err, out)
	}
	if got := strings.Join(te.Applied, ","); got != "create module.component.terraform_data.network" {
		t.Errorf("applied = %q, want the network terraform created", got)
	}
	if got := strings.Join(te.Errored, ","); got != "create module.component.terraform_data.subnet" {
		t.Errorf("errored = %q, want the subnet", got)
	}
	if msg := err.Error(); !strings.Contains(msg, "\nCompleted before the failure (in the state now):\n  create module.component.terraform_data.network\nFailed:\n  create module.component.terraform_data.subnet") {
		t.Errorf("error as reported:\n%s", msg)
	}
}

// The resource changes terraform reports complete or failed (its -json hooks) are kept, in
// order and bounded; other messages are not.
func TestUILogKeepsTheChangesOfAnApply(t *testing.T) {
	u := newUILog(newTail(), redactor{})
	hook := func(typ, action, addr string) string {
		return fmt.Sprintf(`{"@level":"info","@message":"%s: …","type":%q,"hook":{"resource":{"addr":%q},"action":%q}}`+"\n", addr, typ, addr, action)
	}
	for _, l := range []string{
		hook("apply_start", "create", "a.x"),
		hook("apply_complete", "create", "a.x"),
		hook("apply_complete", "delete", "a.y"),
		hook("apply_errored", "update", "a.z"),
		`{"@level":"info","@message":"Apply complete!","type":"change_summary","changes":{"add":1}}` + "\n",
	} {
		if _, err := u.Write([]byte(l)); err != nil {
			t.Fatal(err)
		}
	}
	applied, errored := u.changes()
	if strings.Join(applied, ",") != "create a.x,delete a.y" || strings.Join(errored, ",") != "update a.z" {
		t.Fatalf("applied %q, errored %q", applied, errored)
	}
	for i := 0; i < maxChanges+5; i++ {
		_, _ = u.Write([]byte(hook("apply_complete", "create", fmt.Sprintf("b.n[%d]", i))))
	}
	if applied, _ = u.changes(); len(applied) != maxChanges+1 || applied[maxChanges] != "… and 7 more" {
		t.Fatalf("%d applied, last %q", len(applied), applied[len(applied)-1])
	}
	e := &Error{Op: OpApply, Component: "prod/vpc/core", Err: errors.New("exit status 1")}
	if msg := e.Error(); !strings.HasSuffix(msg, "\nCompleted before the failure: no resource change.") {
		t.Errorf("an apply that changed nothing: %s", msg)
	}
}

// A saved plan made before the state changed is refused before terraform runs (ErrPlanChanged,
// step verify), and nothing is applied.
func TestTFExecStalePlan(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ctx := context.Background()
	ws := Workspace{Root: t.TempDir(), ModuleDir: examplesDir(t, "vpc"), Env: "dev", Type: "vpc", Nickname: "core",
		Config: json.RawMessage(`{"cidr": "10.0.0.0/16"}`)}
	first, err := r.Plan(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	other := ws
	other.Config = json.RawMessage(`{"cidr": "10.9.0.0/16"}`)
	plan2, err := r.Plan(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	// The apply removes the plans it makes stale (prune.go): `first` is put back, as a copy of
	// the workspace kept from before would have it.
	kept, err := os.ReadFile(first.PlanFile)
	if err != nil {
		t.Fatal(err)
	}
	want, err := r.Apply(ctx, other, plan2) // the state changes after `first` was planned
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(first.PlanFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the plan the apply made stale is still there: %v", err)
	}
	_, err = r.Apply(ctx, ws, first)
	if !errors.Is(err, ErrPlanChanged) || !strings.Contains(err.Error(), "can no longer be applied") {
		t.Fatalf("apply of a plan removed as stale: %v", err)
	}
	if err := os.WriteFile(first.PlanFile, kept, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = r.Apply(ctx, ws, first)
	var te *Error
	if !errors.Is(err, ErrPlanChanged) || !errors.As(err, &te) || te.Op != OpVerify || !te.Permanent() ||
		!strings.Contains(err.Error(), "the state changed after the plan was made") {
		t.Fatalf("apply of a stale plan: %v", err)
	}
	if _, err := os.Stat(first.PlanFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the stale plan refused is still there: %v", err)
	}
	got, err := r.Apply(ctx, other, mustPlan(t, r, other))
	if err != nil || fmtOutputs(got) != fmtOutputs(want) {
		t.Fatalf("the stale plan changed something: %s, want %s (%v)", fmtOutputs(got), fmtOutputs(want), err)
	}

	// A plan made from the current state applies, first plan of a fresh Root included.
	if _, err := r.Apply(ctx, ws, mustPlan(t, r, ws)); err != nil {
		t.Fatalf("apply of a fresh plan: %v", err)
	}
}

// A reviewed plan applied after another plan of its Root (another deployment, the drift check's
// refresh) rewrote config.json gives the outputs of the config it was planned with: terraform
// evaluates the configuration again when it applies, reading config.json as it is then.
func TestTFExecApplyUsesTheConfigItPlanned(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ctx := context.Background()
	module, err := filepath.Abs(filepath.Join("testdata", "modules", "echo"))
	if err != nil {
		t.Fatal(err)
	}
	ws := Workspace{Root: t.TempDir(), ModuleDir: module, Env: "prod", Type: "echo", Nickname: "core",
		Config: json.RawMessage(`{"name": "reviewed", "size": 1}`)}
	reviewed := mustPlan(t, r, ws)
	other := ws
	other.Config = json.RawMessage(`{"name": "other", "size": 1}`)
	mustPlan(t, r, other) // not applied
	out, err := r.Apply(ctx, ws, reviewed)
	if err != nil {
		t.Fatalf("apply of the reviewed plan: %v", err)
	}
	if got := fmtOutputs(out); got != `{"name":"reviewed","size":1}` {
		t.Fatalf("outputs %s, want the reviewed config's", got)
	}
	if _, err := os.Stat(planConfigFile(reviewed.PlanFile)); !os.IsNotExist(err) {
		t.Errorf("the applied plan's config was not removed: %v", err)
	}

	// A plan without the config it was made with (removed, or saved by an older Karma) is not
	// applied: it is planned again.
	plan := mustPlan(t, r, other)
	if err := os.Remove(planConfigFile(plan.PlanFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply(ctx, other, plan); !errors.Is(err, ErrPlanChanged) {
		t.Fatalf("apply of a plan without its config: %v, want ErrPlanChanged", err)
	}
}

// A plan made in another workspace (another environment's, or one under another work directory)
// is not applied: terraform would apply it to the state that workspace's backend names.
func TestTFExecApplyRefusesAnotherWorkspacesPlan(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ctx := context.Background()
	module, err := filepath.Abs(filepath.Join("testdata", "modules", "echo"))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	dev := Workspace{Root: filepath.Join(work, "dev", "echo", "core"), ModuleDir: module, Env: "dev", Type: "echo", Nickname: "core",
		Config: json.RawMessage(`{"name": "dev", "size": 1}`)}
	prod := dev
	prod.Root, prod.Env, prod.Config = filepath.Join(work, "prod", "echo", "core"), "prod", json.RawMessage(`{"name": "prod", "size": 1}`)
	devPlan := mustPlan(t, r, dev)
	mustPlan(t, r, prod)
	_, err = r.Apply(ctx, prod, devPlan)
	if !errors.Is(err, ErrPlanChanged) || !strings.Contains(err.Error(), "not a plan of this workspace") {
		t.Fatalf("apply of dev's plan in prod: %v, want ErrPlanChanged", err)
	}
	for _, root := range []string{dev.Root, prod.Root} {
		if _, err := os.Stat(filepath.Join(root, stateFile)); !os.IsNotExist(err) {
			t.Errorf("%s has a state: something was applied (%v)", root, err)
		}
	}
}

// A plan applied whose outcome was lost (the caller interrupted or killed after terraform
// applied it) given again is the apply that happened: its outputs, terraform not run again —
// not a stale plan, which would have the deployment planned again as if nothing had been applied.
// Once the state moved on, it is stale.
func TestTFExecApplyAgainOfAnAppliedPlan(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ctx := context.Background()
	module, err := filepath.Abs(filepath.Join("testdata", "modules", "echo"))
	if err != nil {
		t.Fatal(err)
	}
	ws := Workspace{Root: t.TempDir(), ModuleDir: module, Env: "prod", Type: "echo", Nickname: "core",
		Config: json.RawMessage(`{"name": "first", "size": 1}`)}
	plan := mustPlan(t, r, ws)
	want, err := r.Apply(ctx, ws, plan)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := currentState(ws.Root)
	got, err := r.Apply(ctx, ws, plan)
	if err != nil || fmtOutputs(got) != fmtOutputs(want) {
		t.Fatalf("the applied plan again: %s, %v; want its outputs %s", fmtOutputs(got), err, fmtOutputs(want))
	}
	if again, _ := currentState(ws.Root); again != st {
		t.Errorf("state %+v after the plan was given again, was %+v: terraform ran", again, st)
	}

	next := ws
	next.Config = json.RawMessage(`{"name": "second", "size": 2}`)
	if _, err := r.Apply(ctx, next, mustPlan(t, r, next)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply(ctx, ws, plan); !errors.Is(err, ErrPlanChanged) {
		t.Fatalf("the first plan after another was applied: %v, want ErrPlanChanged", err)
	}
}

func mustPlan(t *testing.T, r Runner, ws Workspace) PlanResult {
	t.Helper()
	p, err := r.Plan(context.Background(), ws)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPlanStaleReadsTheRecordedState(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := planStale([]byte("not a zip"), root); err != nil {
		t.Errorf("unreadable plan: %v, want nil (terraform decides)", err)
	}
	write := func(meta string) {
		if err := os.WriteFile(filepath.Join(root, stateFile), []byte(meta), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	plan := zipWith(t, "tfstate", `{"version": 4, "serial": 3, "lineage": "abc", "resources": []}`)
	write(`{"version": 4, "serial": 3, "lineage": "abc"}`)
	if err := planStale(plan, root); err != nil {
		t.Errorf("same serial and lineage: %v", err)
	}
	write(`{"version": 4, "serial": 4, "lineage": "abc"}`)
	if err := planStale(plan, root); !errors.Is(err, ErrPlanChanged) || !strings.Contains(err.Error(), "state serial 3, now 4") {
		t.Errorf("newer serial: %v", err)
	}
	write(`{"version": 4, "serial": 3, "lineage": "xyz"}`)
	if err := planStale(plan, root); !errors.Is(err, ErrPlanChanged) || !strings.Contains(err.Error(), "another state") {
		t.Errorf("other lineage: %v", err)
	}
	first := zipWith(t, "tfstate", `{"version": 4, "serial": 0, "lineage": ""}`)
	os.Remove(filepath.Join(root, stateFile))
	if err := planStale(first, root); err != nil {
		t.Errorf("first plan, no state yet: %v", err)
	}
	write(`{"version": 4, "serial": 1, "lineage": "new"}`)
	if err := planStale(first, root); !errors.Is(err, ErrPlanChanged) {
		t.Errorf("first plan, state created since: %v", err)
	}
}

func TestUILogKeepsErrorsAndText(t *testing.T) {
	t.Parallel()
	text := newTail()
	u := newUILog(text, redactor{})
	lines := []string{
		`{"@level":"info","@message":"Terraform 1.11.4","type":"version","terraform":"1.11.4","ui":"1.2"}`,
		`{"@level":"warn","@message":"Warning: deprecated","type":"diagnostic","diagnostic":{"severity":"warning","summary":"deprecated","detail":"x"}}`,
		`not json at all`,
		`{"@level":"error","@message":"Error: Invalid value","type":"diagnostic","diagnostic":{"severity":"error","summary":"Invalid value","detail":"line one\nline two","address":"module.component.terraform_data.x","range":{"filename":"../../modules/abc/vpc/main.tf","start":{"line":7,"column":1,"byte":0},"end":{"line":7,"column":2,"byte":1}}}}`,
		`{"@level":"info","@message":"module.component.terraform_data.x: Creating...","type":"apply_start","hook":{}}`,
	}
	all := strings.Join(lines, "\n") + "\n"
	for i := 0; i < len(all); i += 7 { // lines arrive in pieces
		u.Write([]byte(all[i:min(i+7, len(all))]))
	}
	ds := u.diagnostics()
	want := Diagnostic{Summary: "Invalid value", Detail: "line one\nline two", Address: "module.component.terraform_data.x", Where: "vpc/main.tf:7"}
	if len(ds) != 1 || ds[0] != want {
		t.Fatalf("diagnostics = %+v, want only the error %+v", ds, want)
	}
	if got := ds[0].String(); got != "Error: Invalid value (module.component.terraform_data.x, vpc/main.tf:7)\n  line one\n  line two" {
		t.Errorf("String() = %q", got)
	}
	log := text.String()
	for _, w := range []string{"Terraform 1.11.4", "Warning: deprecated", "not json at all", "Error: Invalid value\n  line one\n  line two", "Creating..."} {
		if !strings.Contains(log, w) {
			t.Errorf("log lacks %q:\n%s", w, log)
		}
	}
	u.Write([]byte(lines[3] + "\n")) // terraform repeats an error per instance: kept once
	if ds := u.diagnostics(); len(ds) != 1 {
		t.Errorf("a repeated error is kept %d times", len(ds))
	}
	for i := 0; i < maxDiagnostics+2; i++ {
		u.Write([]byte(strings.Replace(lines[3], "Invalid value", fmt.Sprintf("Invalid value %d", i), 2) + "\n"))
	}
	if ds := u.diagnostics(); len(ds) != maxDiagnostics+1 || !strings.Contains(ds[maxDiagnostics].Summary, "and 3 more") {
		t.Errorf("%d diagnostics, last %+v; want %d and a count of the rest", len(ds), ds[len(ds)-1], maxDiagnostics)
	}
}

// Terraform's diagnostics are scrubbed of sensitive values like the rest of an error.
func TestSensitiveValuesRedactedFromDiagnostics(t *testing.T) {
	t.Parallel()
	ws := secretWorkspace(t)
	s := &session{ws: ws, log: newTail(), redact: newRedactor(ws)}
	s.ui = newUILog(s.log, s.redact)
	d, _ := json.Marshal(map[string]any{"@level": "error", "@message": "Error: refused", "type": "diagnostic",
		"diagnostic": map[string]any{"severity": "error", "summary": "refused " + secret, "detail": "password " + secret + " refused by db.internal"}})
	s.ui.Write(append(d, '\n'))
	err := s.fail(OpApply, errors.New("exit status 1"))
	var te *Error
	if !errors.As(err, &te) || len(te.Diagnostics) != 1 {
		t.Fatalf("error %v: want one diagnostic", err)
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(te.Log, secret) || strings.Contains(te.Diagnostics[0].Detail, secret) {
		t.Errorf("the secret leaks:\n%s", err)
	}
	if te.Diagnostics[0].Detail != "password (sensitive value) refused by db.internal" {
		t.Errorf("detail lost what is not secret: %q", te.Diagnostics[0].Detail)
	}
}

// A secret where terraform's detail is cut to maxDetail is scrubbed whole, not cut first and
// left half.
func TestSensitiveValueAtTheCutOfADetailIsRedacted(t *testing.T) {
	t.Parallel()
	ws := secretWorkspace(t)
	redact := newRedactor(ws)
	s := &session{ws: ws, log: newTail(), redact: redact, ui: newUILog(newTail(), redact)}
	detail := strings.Repeat("x", maxDetail-5) + " " + secret + " refused"
	d, _ := json.Marshal(map[string]any{"@level": "error", "@message": "Error: refused", "type": "diagnostic",
		"diagnostic": map[string]any{"severity": "error", "summary": "refused", "detail": detail}})
	s.ui.Write(append(d, '\n'))
	var te *Error
	if err := s.fail(OpApply, errors.New("exit status 1")); !errors.As(err, &te) || len(te.Diagnostics) != 1 {
		t.Fatalf("error %v: want one diagnostic", err)
	}
	if got := te.Diagnostics[0].Detail; strings.Contains(got, secret[:4]) || !strings.Contains(got, "(sen") {
		t.Errorf("detail ends %q: want the secret scrubbed, not cut", got[len(got)-20:])
	}
}

// zipWith is a zip archive holding one file.
func zipWith(t *testing.T, name, content string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(content))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A plan changing more resources than a deployment.planned lists is listed whole by
// PlanResources — for the policies asked before it is applied — from the plan file as Apply
// checks it: another workspace's, or one that no longer hashes to the plan's hash, is
// ErrPlanChanged.
func TestTFExecPlanResourcesListsEveryChange(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ctx := context.Background()
	module, err := filepath.Abs(filepath.Join("testdata", "modules", "many"))
	if err != nil {
		t.Fatal(err)
	}
	n := message.MaxPlanResources + 5
	ws := Workspace{Root: t.TempDir(), ModuleDir: module, Env: "prod", Type: "many", Nickname: "core",
		Config: json.RawMessage(fmt.Sprintf(`{"count": %d}`, n))}
	plan := mustPlan(t, r, ws)
	if !plan.ResourcesTruncated || len(plan.Resources) != message.MaxPlanResources {
		t.Fatalf("plan lists %d resources (truncated %v), want the first %d", len(plan.Resources), plan.ResourcesTruncated, message.MaxPlanResources)
	}
	all, err := r.PlanResources(ctx, ws, plan)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != n+1 || all[n].Address != "module.component.terraform_data.z_last" || strings.Join(all[n].Actions, ",") != "create" {
		t.Fatalf("listed %d resources, last %+v; want %d, the last z_last (create)", len(all), all[len(all)-1], n+1)
	}

	other := plan
	other.PlanHash = strings.Repeat("0", 64)
	if _, err := r.PlanResources(ctx, ws, other); !errors.Is(err, ErrPlanChanged) {
		t.Errorf("a plan that does not hash to its hash: %v, want ErrPlanChanged", err)
	}
	elsewhere := ws
	elsewhere.Root = t.TempDir()
	if _, err := r.PlanResources(ctx, elsewhere, plan); !errors.Is(err, ErrPlanChanged) {
		t.Errorf("another workspace's plan: %v, want ErrPlanChanged", err)
	}
}
