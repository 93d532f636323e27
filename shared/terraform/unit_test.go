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

	tfjson "github.com/hashicorp/terraform-json"

	"github.com/usekarma/karma/shared/message"
)

func TestSummarizeFixture(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("testdata", "plan-mixed.json"))
	if err != nil {
		t.Fatal(err)
	}
	var p tfjson.Plan
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	// created[0], created[1]: add; updated: change; deleted[0]: destroy; same: no-op;
	// replaced (delete, create) and cbd (create, delete): add + destroy each; the data read
	// and the output change are not counted.
	want := message.PlanSummary{Add: 4, Change: 1, Destroy: 3, NoOp: 1}
	if got := Summarize(&p); got != want {
		t.Fatalf("Summarize = %+v, want %+v", got, want)
	}
	if got := Summarize(nil); got != (message.PlanSummary{}) {
		t.Fatalf("Summarize(nil) = %+v", got)
	}
}

func TestSummarizeActions(t *testing.T) {
	t.Parallel()
	rc := func(mode tfjson.ResourceMode, actions ...tfjson.Action) *tfjson.ResourceChange {
		return &tfjson.ResourceChange{Mode: mode, Change: &tfjson.Change{Actions: actions}}
	}
	p := &tfjson.Plan{ResourceChanges: []*tfjson.ResourceChange{
		rc(tfjson.ManagedResourceMode, tfjson.ActionCreate),
		rc(tfjson.ManagedResourceMode, tfjson.ActionDelete, tfjson.ActionCreate),
		rc(tfjson.ManagedResourceMode, tfjson.ActionCreate, tfjson.ActionDelete),
		rc(tfjson.ManagedResourceMode, tfjson.ActionUpdate),
		rc(tfjson.ManagedResourceMode, tfjson.ActionDelete),
		rc(tfjson.ManagedResourceMode, tfjson.ActionNoop),
		rc(tfjson.ManagedResourceMode, tfjson.ActionForget),
		rc(tfjson.DataResourceMode, tfjson.ActionRead),
		{Mode: tfjson.ManagedResourceMode}, // no change block
		nil,
	}}
	want := message.PlanSummary{Add: 3, Change: 1, Destroy: 3, NoOp: 1}
	if got := Summarize(p); got != want {
		t.Fatalf("Summarize = %+v, want %+v", got, want)
	}
}

func TestErrorPermanentAndFormat(t *testing.T) {
	t.Parallel()
	log := newTail()
	for i := 0; i < 500; i++ {
		fmt.Fprintf(log, "line %03d of terraform output\n", i)
	}
	e := &Error{Op: OpPlan, Component: "dev/vpc/core", Err: errors.New("exit status 1\nError: the whole stderr again"), Log: log.String()}
	msg := e.Error()
	if !strings.HasPrefix(msg, "terraform plan dev/vpc/core: exit status 1\n[…]\nline ") {
		t.Fatalf("Error() = %.200q", msg)
	}
	if strings.Contains(msg, "the whole stderr again") {
		t.Fatal("Error() repeats terraform-exec's stderr next to the log")
	}
	if !strings.HasSuffix(msg, "line 499 of terraform output") || len(e.Log) > logTail+10 {
		t.Fatalf("log not trimmed to its tail: %d bytes, ends %q", len(e.Log), msg[len(msg)-40:])
	}
	if !e.Permanent() {
		t.Fatal("a terraform failure must be permanent")
	}
	for _, err := range []error{context.Canceled, context.DeadlineExceeded, fmt.Errorf("wrapped: %w", context.Canceled)} {
		if (&Error{Op: OpApply, Err: err}).Permanent() {
			t.Fatalf("%v must not be permanent", err)
		}
	}
	intr := &Error{Op: OpApply, Component: "c", Err: interrupted{}, Log: "Interrupt received."}
	if intr.Permanent() || intr.Error() != "terraform apply c: interrupted (context cancelled or timed out): exit status 1\nInterrupt received.\nCompleted before the interruption: no resource change." {
		t.Fatalf("interrupted: permanent %v, %q", intr.Permanent(), intr.Error())
	}
	pc := &Error{Op: OpVerify, Err: fmt.Errorf("%w: x", ErrPlanChanged)}
	if !pc.Permanent() || !errors.Is(pc, ErrPlanChanged) {
		t.Fatal("a changed plan is permanent and matches ErrPlanChanged")
	}
	var target *Error
	if !errors.As(fmt.Errorf("outer: %w", pc), &target) || target.Op != OpVerify {
		t.Fatal("errors.As does not find *Error")
	}
	short := &Error{Op: OpApply, Component: "c", Err: errors.New("a\nb")}
	if short.Error() != "terraform apply c: a\nb\nCompleted before the failure: no resource change." {
		t.Fatalf("without a log the whole error is kept: %q", short.Error())
	}
}

func TestLockRootExcludes(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	unlock, err := lockRoot(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := lockRoot(ctx, root); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock while held: %v, want deadline exceeded", err)
	}
	got := make(chan error, 1)
	go func() {
		u, err := lockRoot(context.Background(), root)
		if err == nil {
			u()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("lock taken while held (err %v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter not woken after unlock")
	}
}

func TestNoop(t *testing.T) {
	t.Parallel()
	var n Noop
	ctx := context.Background()
	ws := Workspace{Env: "dev", Type: "vpc", Nickname: "core", Config: json.RawMessage(`{"cidr":"10.0.0.0/16","az_count":2,"big":12345678901234567890}`)}

	p1, err := n.Plan(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if p1.Summary != (message.PlanSummary{Add: 1}) || !p1.HasChanges || p1.PlanHash == "" || !strings.HasPrefix(p1.PlanFile, "noop:dev/vpc/core@") {
		t.Fatalf("first plan = %+v", p1)
	}
	out, err := n.Apply(ctx, ws, p1)
	if err != nil {
		t.Fatal(err)
	}
	if string(out["cfg_cidr"]) != `"10.0.0.0/16"` || string(out["cfg_az_count"]) != `2` || string(out["cfg_big"]) != `12345678901234567890` || len(out) != 4 {
		t.Fatalf("outputs = %s", fmtOutputs(out))
	}
	var id string
	if err := json.Unmarshal(out["id"], &id); err != nil || len(id) != 64 {
		t.Fatalf("id = %s", out["id"])
	}

	// Same config, other key order and spacing: nothing to do, same plan hash, same outputs.
	ws2 := ws
	ws2.Config = json.RawMessage(`{ "big": 12345678901234567890, "az_count": 2, "cidr": "10.0.0.0/16" }`)
	p2, err := n.Plan(ctx, ws2)
	if err != nil {
		t.Fatal(err)
	}
	if p2.Summary != (message.PlanSummary{NoOp: 1}) || p2.HasChanges || p2.PlanHash != p1.PlanHash {
		t.Fatalf("re-plan = %+v, want no-op with the same hash", p2)
	}
	out2, _ := n.Apply(ctx, ws2, p2)
	if fmtOutputs(out2) != fmtOutputs(out) {
		t.Fatalf("outputs not deterministic: %s vs %s", fmtOutputs(out2), fmtOutputs(out))
	}
	// Another component with the same config has its own history.
	other := ws
	other.Nickname = "edge"
	if p, _ := n.Plan(ctx, other); p.Summary.Add != 1 || p.PlanHash == p1.PlanHash {
		t.Fatalf("other component plan = %+v", p)
	}

	// A changed config: 1 add; applying an older plan fails, as with terraform.
	ws3 := ws
	ws3.Config = json.RawMessage(`{"cidr":"10.1.0.0/16"}`)
	p3, _ := n.Plan(ctx, ws3)
	if p3.Summary.Add != 1 {
		t.Fatalf("changed config plan = %+v", p3)
	}
	_, err = n.Apply(ctx, ws3, p1)
	var te *Error
	if !errors.Is(err, ErrPlanChanged) || !errors.As(err, &te) || !te.Permanent() || !strings.Contains(err.Error(), "plan changed since review") {
		t.Fatalf("apply of a stale plan: %v", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := n.Plan(cctx, ws3); !errors.As(err, &te) || te.Permanent() {
		t.Fatalf("cancelled plan: %v", err)
	}
	if _, err := n.Apply(cctx, ws3, p3); !errors.As(err, &te) || te.Permanent() {
		t.Fatalf("cancelled apply: %v", err)
	}
	if _, err := n.Plan(ctx, Workspace{Env: "e", Type: "t", Nickname: "n", Config: json.RawMessage(`[]`)}); err == nil {
		t.Fatal("a non-object config must fail")
	}
}

func TestFindTerraform(t *testing.T) {
	// Not parallel: changes the environment.
	dir := t.TempDir()
	fake := filepath.Join(dir, "terraform")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KARMA_TERRAFORM", fake)
	if got, err := FindTerraform(); err != nil || got != fake {
		t.Fatalf("KARMA_TERRAFORM=%s: %q, %v", fake, got, err)
	}
	t.Setenv("KARMA_TERRAFORM", filepath.Join(dir, "missing"))
	if _, err := FindTerraform(); !errors.Is(err, ErrTerraformNotFound) || !strings.Contains(err.Error(), "KARMA_TERRAFORM") {
		t.Fatalf("missing KARMA_TERRAFORM: %v", err)
	}
	t.Setenv("KARMA_TERRAFORM", "")
	t.Setenv("PATH", dir)
	if got, err := FindTerraform(); err != nil || got != fake {
		t.Fatalf("terraform on PATH: %q, %v", got, err)
	}
	t.Setenv("PATH", t.TempDir())
	_, err := FindTerraform()
	if !errors.Is(err, ErrTerraformNotFound) || err.Error() != "terraform not found on PATH: install terraform >= 1.5 (https://developer.hashicorp.com/terraform/install) or set KARMA_TERRAFORM" {
		t.Fatalf("no terraform: %v", err)
	}
}

// interrupted is like terraform-exec's error for a command stopped by its context.
type interrupted struct{}

func (interrupted) Error() string        { return "exit status 1\nwhole stderr" }
func (interrupted) Is(target error) bool { return target == context.Canceled }

func fmtOutputs(o Outputs) string {
	b, _ := json.Marshal(o)
	return string(b)
}
