package terraform

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Terraform that applied but could not save the state writes it to errored.tfstate in the
// workspace: terraform.tfstate lacks what that apply made. Neither a plan (which would create
// those resources again) nor the apply of a plan made before is run while it is there; the
// error names the file and what to do. Once pushed and removed, the workspace plans again.
func TestErroredStateIsNotPlannedOver(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ctx := context.Background()
	ws := Workspace{Root: filepath.Join(t.TempDir(), "dev", "vpc", "core"), ModuleDir: examplesDir(t, "vpc"),
		Env: "dev", Type: "vpc", Nickname: "core", Config: json.RawMessage(`{"cidr": "10.0.0.0/16"}`)}
	held, err := r.Plan(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	errored := filepath.Join(ws.Root, erroredStateFile)
	if err := os.WriteFile(errored, []byte(`{"version": 4, "serial": 3, "lineage": "l", "resources": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(what string, err error) {
		t.Helper()
		var te *Error
		if !errors.As(err, &te) || !te.Permanent() || errors.Is(err, ErrPlanChanged) || !strings.Contains(err.Error(), errored) ||
			!strings.Contains(err.Error(), "terraform state push") {
			t.Fatalf("%s with %s there: %v, want a permanent error naming it and saying what to do", what, errored, err)
		}
	}
	_, err = r.Plan(ctx, ws)
	check("plan", err)
	_, err = r.Apply(ctx, ws, held)
	check("apply", err)
	if _, err := os.Stat(filepath.Join(ws.Root, stateFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("terraform applied: %v", err)
	}
	if err := os.Remove(errored); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply(ctx, ws, held); err != nil {
		t.Fatalf("apply once errored.tfstate was dealt with: %v", err)
	}
}
