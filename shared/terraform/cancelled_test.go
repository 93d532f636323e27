//go:build unix

package terraform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeTerraform writes a shell script standing in for terraform in dir: `version -json`
// answers a version; `apply` counts itself in dir/applies, writes a state (serial 1), reports
// the apply complete (change_summary, as terraform -json does) and then waits, creating
// dir/finished, until interrupted — and exits 0 on the interrupt, as terraform does when the
// interrupt comes once its work is done; `output -json` answers the runtime {"x": "1"}.
func fakeTerraform(t *testing.T, dir string) string {
	t.Helper()
	return writeFakeTerraform(t, dir, `trap 'exit 0' INT
  touch '%[1]s/finished'
  while :; do sleep 0.05; done`)
}

// writeFakeTerraform is fakeTerraform whose apply, once it reported the apply complete, runs
// then (a shell fragment; %[1]s is dir).
func writeFakeTerraform(t *testing.T, dir, then string) string {
	t.Helper()
	script := fmt.Sprintf(`#!/bin/sh
case "$1" in
version) echo '{"terraform_version":"1.11.4","platform":"linux_amd64","provider_selections":{},"terraform_outdated":false}' ;;
apply)
  echo applied >> '%[1]s/applies'
  printf '{"version":4,"serial":1,"lineage":"fake-lineage","outputs":{}}' > terraform.tfstate
  echo '{"@level":"info","@message":"Apply complete! Resources: 1 added, 0 changed, 0 destroyed.","type":"change_summary","changes":{"add":1,"change":0,"import":0,"remove":0,"operation":"apply"}}'
  `+then+` ;;
output) echo '{"runtime":{"sensitive":true,"type":["object",{"x":"string"}],"value":{"x":"1"}}}' ;;
*) echo "unexpected: $*" >&2; exit 1 ;;
esac
`, dir)
	path := filepath.Join(dir, "terraform")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// A context that ends after terraform applied the plan — it reported the apply complete, then
// exited 0 on the interrupt — is no failure of terraform, nor a panic (terraform-exec reports it
// as a context error wrapping no error): the apply is recorded as applied, so the caller, which
// retries the interrupted call, gets that apply's outputs without running terraform again
// instead of finding the plan stale and having the deployment planned again as if nothing had
// been applied.
func TestTFExecApplyCancelledOnceTerraformApplied(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := NewTFExec(fakeTerraform(t, dir))
	r.GracePeriod = time.Minute
	module := t.TempDir()
	ws := Workspace{Root: t.TempDir(), ModuleDir: module, Env: "prod", Type: "fake", Nickname: "core", Config: json.RawMessage(`{}`)}

	plan := fakePlan(t, ws)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			if _, err := os.Stat(filepath.Join(dir, "finished")); err == nil {
				cancel() // terraform applied the plan; it is still running
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	_, err := r.Apply(ctx, ws, plan)
	var te *Error
	if !errors.As(err, &te) || te.Permanent() || !errors.Is(err, context.Canceled) {
		t.Fatalf("apply interrupted once terraform applied: %v, want an interrupted (not permanent) error", err)
	}

	out, err := r.Apply(context.Background(), ws, plan)
	if err != nil {
		t.Fatalf("the same plan given again: %v, want the outputs of the apply that happened", err)
	}
	if got := fmtOutputs(out); got != `{"x":"1"}` {
		t.Errorf("outputs %s", got)
	}
	applies, _ := os.ReadFile(filepath.Join(dir, "applies"))
	if n := strings.Count(string(applies), "applied"); n != 1 {
		t.Errorf("terraform apply ran %d times, want once", n)
	}
}

// fakePlan saves in ws a plan made before any state existed, with the config it was made with.
func fakePlan(t *testing.T, ws Workspace) PlanResult {
	t.Helper()
	plans := filepath.Join(ws.Root, planDir)
	if err := os.MkdirAll(plans, 0o700); err != nil {
		t.Fatal(err)
	}
	data := zipWith(t, "tfstate", `{"version":4,"serial":0,"lineage":""}`)
	hash := sha256hex(data)
	plan := PlanResult{PlanFile: filepath.Join(plans, hash[:16]+".tfplan"), PlanHash: hash}
	if err := os.WriteFile(plan.PlanFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(planConfigFile(plan.PlanFile), []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return plan
}

// deadlineOnly is a context reporting a deadline that it does not enforce: what a Lambda's
// context is to a process the Lambda freezes at that instant, whatever runs then.
type deadlineOnly struct {
	context.Context
	at time.Time
}

func (c deadlineOnly) Deadline() (time.Time, bool) { return c.at, true }

// Terraform is interrupted before its context's deadline, early enough to stop and write its
// state by then: at the deadline a Lambda's process is frozen, terraform with it, and what it
// applied is in no state. A context whose deadline has (all but) come runs no terraform at all.
func TestTFExecStopsTerraformBeforeTheDeadline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := NewTFExec(writeFakeTerraform(t, dir, "exit 0"))
	ws := Workspace{Root: t.TempDir(), ModuleDir: t.TempDir(), Env: "prod", Type: "fake", Nickname: "core", Config: json.RawMessage(`{}`)}
	ctx := deadlineOnly{Context: context.Background(), at: time.Now().Add(-time.Second)}
	_, err := r.Apply(ctx, ws, fakePlan(t, ws))
	var te *Error
	if !errors.As(err, &te) || te.Permanent() || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("apply at the deadline: %v, want interrupted before terraform runs", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "applies")); !os.IsNotExist(err) {
		t.Errorf("terraform apply ran at the deadline (%v)", err)
	}

	// A deadline far enough: terraform is interrupted the grace period before it.
	r.GracePeriod = 2 * time.Minute
	at := time.Now().Add(time.Hour)
	stopped, cancel := r.stopInTime(deadlineOnly{Context: context.Background(), at: at})
	defer cancel()
	if dl, ok := stopped.Deadline(); !ok || !dl.Equal(at.Add(-2*time.Minute)) {
		t.Errorf("deadline %v (%v), want %v", dl, ok, at.Add(-2*time.Minute))
	}
	if same, _ := r.stopInTime(context.Background()); same != context.Background() {
		t.Error("a context without a deadline was changed")
	}
}

// terraform-exec's error for a command whose context ended while it reported no error of its
// own is a context error wrapping nil, whose Error method panics: an Error made of it says the
// step was interrupted.
func TestErrorOfAContextErrorWrappingNothing(t *testing.T) {
	t.Parallel()
	s := &session{ws: Workspace{Env: "prod", Type: "t", Nickname: "n"}, log: newTail(), ui: newUILog(newTail(), redactor{})}
	err := s.fail(OpPlan, wrapsNothing{context.DeadlineExceeded})
	var te *Error
	if !errors.As(err, &te) || te.Permanent() || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v: want an interrupted one", err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "terraform plan prod/t/n: ") || !strings.Contains(msg, "deadline") {
		t.Errorf("error as reported: %q", msg)
	}
}

// wrapsNothing is terraform-exec's cmdErr for a command that exited 0 (or was never waited for)
// after its context ended.
type wrapsNothing struct{ ctxErr error }

func (e wrapsNothing) Is(target error) bool { return target == e.ctxErr }
func (e wrapsNothing) Unwrap() error        { return nil }
func (e wrapsNothing) Error() string {
	var err error
	return err.Error() // as cmdErr's: e.err.Error() with e.err nil
}
