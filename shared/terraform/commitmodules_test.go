package terraform

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/gitrepo"
)

// writerModules materializes, as configrepo does (<base>/modules/<tree id>, its marker last), a
// modules folder whose type "job" runs its own script.sh when applied, and writes under
// path.module what it ran (a module rendering a file, building an archive). It returns the
// folder and the workspace of dev/job/<nickname> using it.
func writerModules(t *testing.T) (shared string, ws func(nickname string) Workspace) {
	t.Helper()
	base := t.TempDir()
	tree := filepath.Join(base, "modules", "new")
	for rel, data := range map[string]string{
		"job/main.tf": `
variable "component_name" {}
variable "nickname" {}
variable "iac_prefix" { default = "" }
variable "config" {}
resource "terraform_data" "run" {
  input = var.nickname
  provisioner "local-exec" {
    command = "sh ${path.module}/script.sh ${var.nickname} > ${path.module}/ran-by-${var.nickname}.txt"
  }
}
output "ran" { value = terraform_data.run.output }
`,
		"job/script.sh": "echo \"the commit's script for $1\"\n",
	} {
		p := filepath.Join(tree, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	id, err := gitrepo.DirTreeID(tree, "")
	if err != nil {
		t.Fatal(err)
	}
	shared = filepath.Join(base, "modules", id)
	if err := os.Rename(tree, shared); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(shared, sharedMarker), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return shared, func(nickname string) Workspace {
		return Workspace{Root: filepath.Join(base, "work", "dev", "job", nickname), ModuleDir: filepath.Join(shared, "job"), Confine: shared,
			Env: "dev", Type: "job", Nickname: nickname, Config: json.RawMessage(`{}`)}
	}
}

// sharedIntact fails the test unless the commit's modules folder still holds exactly its tree.
func sharedIntact(t *testing.T, shared string) {
	t.Helper()
	id := filepath.Base(shared)
	if got, err := gitrepo.DirTreeID(shared, id, sharedMarker); err != nil || got != id {
		entries, _ := os.ReadDir(filepath.Join(shared, "job"))
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("the commit's modules folder %s hashes to %s (%v), not its tree %s: it holds %v", shared, got, err, id, names)
	}
}

// A module writing under path.module while it is applied (a rendered file, an archive) writes
// in its workspace's own copy of the commit's modules folder: the folder configrepo shares
// between the components of the tree, and between the commits having it, stays the tree — two
// components of the same tree each find only their own file.
func TestTerraformRunsOnItsOwnCopyOfTheCommitsModules(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ctx := context.Background()
	shared, ws := writerModules(t)
	for _, nick := range []string{"a", "b"} {
		w := ws(nick)
		plan, err := r.Plan(ctx, w)
		if err != nil {
			t.Fatalf("plan %s: %v", nick, err)
		}
		if _, err := r.Apply(ctx, w, plan); err != nil {
			t.Fatalf("apply %s: %v", nick, err)
		}
		sharedIntact(t, shared)
	}
	for _, nick := range []string{"a", "b"} {
		copyDir := filepath.Join(ws(nick).Root, modulesCopies, filepath.Base(shared), "job")
		entries, err := os.ReadDir(copyDir)
		if err != nil {
			t.Fatal(err)
		}
		var written []string
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "ran-by-") {
				written = append(written, e.Name())
			}
		}
		if len(written) != 1 || written[0] != "ran-by-"+nick+".txt" {
			t.Fatalf("%s's copy of the modules holds %v, want only ran-by-%s.txt", nick, written, nick)
		}
	}

	// Planned again, the workspace starts from the tree: what the apply wrote is gone.
	w := ws("a")
	if _, err := r.Plan(ctx, w); err != nil {
		t.Fatal(err)
	}
	copyDir := filepath.Join(w.Root, modulesCopies, filepath.Base(shared))
	if got, err := gitrepo.DirTreeID(copyDir, filepath.Base(shared)); err != nil || got != filepath.Base(shared) {
		t.Fatalf("the copy planned again hashes to %s (%v), not the tree", got, err)
	}
}

// The commit's modules folder changed on disk after configrepo checked it (between
// Workspaces.For and terraform reading it) is not planned: the plan fails, to be tried again
// (configrepo writes the folder anew), and nothing is saved.
func TestPlanOfAModulesFolderChangedOnDiskIsRefused(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	shared, ws := writerModules(t)
	if err := os.WriteFile(filepath.Join(shared, "job", "script.sh"), []byte("echo not the commit's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w := ws("a")
	_, err := r.Plan(context.Background(), w)
	var te *Error
	if !errors.Is(err, ErrModulesChanged) || !errors.As(err, &te) || te.Permanent() || !strings.Contains(err.Error(), shared) {
		t.Fatalf("plan of a changed modules folder: %v, want a transient %v naming %s", err, ErrModulesChanged, shared)
	}
	if plans, _ := filepath.Glob(filepath.Join(w.Root, planDir, "*.tfplan")); len(plans) > 0 {
		t.Fatalf("a plan was saved: %v", plans)
	}
}

// Terraform reads the module's files again while applying (here the script a provisioner runs):
// a copy changed since the plan (by hand, or by anything run in the workspace since) is not
// applied — ErrPlanChanged, planned again — and nothing runs.
func TestApplyRefusesAPlanWhoseModulesChanged(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ctx := context.Background()
	shared, ws := writerModules(t)
	w := ws("a")
	plan, err := r.Plan(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(w.Root, modulesCopies, filepath.Base(shared), "job", "script.sh")
	if err := os.WriteFile(script, []byte("echo not the commit's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = r.Apply(ctx, w, plan)
	if !errors.Is(err, ErrPlanChanged) || !errors.Is(err, ErrModulesChanged) {
		t.Fatalf("apply after the module's script changed: %v, want %v", err, ErrPlanChanged)
	}
	if _, err := os.Stat(filepath.Join(w.Root, stateFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("terraform ran: the state exists (%v)", err)
	}
	if matches, _ := filepath.Glob(filepath.Join(filepath.Dir(script), "ran-by-*")); len(matches) > 0 {
		t.Fatalf("the changed script ran: %v", matches)
	}
	// It can never be applied as planned: it is removed (it holds its variables' values).
	if got := planFiles(t, w.Root); len(got) != 0 {
		t.Fatalf("the plan refused is still there: %v", got)
	}
}

// A refresh (the drift check) keeps the copy a plan waiting for review left, files the plan
// wrote there included, so the plan can still be applied; a plan starts from the tree.
func TestRefreshKeepsTheCopyOfAHeldPlan(t *testing.T) {
	t.Parallel()
	shared, ws := writerModules(t)
	w, err := normalize(ws("a"))
	if err != nil {
		t.Fatal(err)
	}
	id := filepath.Base(shared)
	if _, err := commitModules(w, false); err != nil {
		t.Fatal(err)
	}
	copyDir := filepath.Join(w.Root, modulesCopies, id)
	// What the plan wrote while planning (a data source's archive), and its record.
	if err := os.WriteFile(filepath.Join(copyDir, "job", "archive.zip"), []byte("planned"), 0o644); err != nil {
		t.Fatal(err)
	}
	digest, err := gitrepo.DirTreeID(copyDir, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(w.Root, planDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(planModulesFile(filepath.Join(w.Root, planDir, "0123456789abcdef.tfplan")), []byte(id+" "+digest+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := commitModules(w, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := gitrepo.DirTreeID(copyDir, id); got != digest {
		t.Fatal("a refresh wrote the copy of a held plan anew: the plan can no longer be applied")
	}
	if _, err := commitModules(w, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := gitrepo.DirTreeID(copyDir, id); got != id {
		t.Fatal("a plan did not start from the tree")
	}
	sharedIntact(t, shared)
}
