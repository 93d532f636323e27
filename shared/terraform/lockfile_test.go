//go:build unix

package terraform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// lockFakeTerraform writes a terraform standing in for init in dir: each init appends its
// arguments to dir/inits and creates .terraform; without -lockfile=readonly it writes Root's
// lock file when there is none (terraform's first init), pinning "1.1.0"; with it, it changes
// nothing, and fails on a lock file holding "unpinned" as terraform does on a provider the file
// does not pin, on one holding "unreachable" as it does when the registry cannot be reached.
func lockFakeTerraform(t *testing.T, dir string) string {
	t.Helper()
	script := fmt.Sprintf(`#!/bin/sh
case "$1" in
version) echo '{"terraform_version":"1.11.4","platform":"linux_amd64","provider_selections":{},"terraform_outdated":false}' ;;
init)
  echo "$*" >> '%[1]s/inits'
  mkdir -p .terraform
  case "$*" in
  *-lockfile=readonly*)
    if grep -q unreachable .terraform.lock.hcl; then
      echo 'Error: Failed to query available provider packages: could not connect to registry.terraform.io' >&2
      exit 1
    fi
    if grep -q unpinned .terraform.lock.hcl; then
      echo 'Error: Provider dependency changes detected' >&2
      echo 'Changes to the required provider dependencies were detected, but the lock file is read-only.' >&2
      exit 1
    fi ;;
  *) [ -f .terraform.lock.hcl ] || echo 'provider "registry.terraform.io/hashicorp/aws" { version = "1.1.0" }' > .terraform.lock.hcl ;;
  esac ;;
*) echo "unexpected: $*" >&2; exit 1 ;;
esac
`, dir)
	path := filepath.Join(dir, "terraform")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// initWorkspace prepares ws and runs init as Plan does, before planning.
func initWorkspace(t *testing.T, r *TFExec, ws Workspace) error {
	t.Helper()
	ctx := context.Background()
	s, unlock, err := r.begin(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := Prepare(s.ws); err != nil {
		t.Fatal(err)
	}
	return s.init(ctx)
}

func initArgs(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "inits"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

// A lock file the commit ships with its module is the workspace's: copied into Root before
// init, which runs again when it changes and read-only (-lockfile=readonly) so that terraform
// installs exactly what it pins; before, Root kept the lock file of its first init and the
// commit's pins were ignored. A module without one leaves Root's own lock file to init.
func TestInitUsesTheModulesLockFileReadOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := NewTFExec(lockFakeTerraform(t, dir))
	module := t.TempDir()
	if err := os.WriteFile(filepath.Join(module, "main.tf"), []byte("variable \"config\" {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ws := Workspace{Root: t.TempDir(), ModuleDir: module, Env: "prod", Type: "cache", Nickname: "core", Config: json.RawMessage(`{}`)}
	rootLockFile := filepath.Join(ws.Root, depLockFile)

	if err := initWorkspace(t, r, ws); err != nil {
		t.Fatal(err)
	}
	if args := initArgs(t, dir); len(args) != 1 || strings.Contains(args[0], "-lockfile") {
		t.Fatalf("inits %q, want one, not read-only (the module ships no lock file)", args)
	}
	first, err := os.ReadFile(rootLockFile)
	if err != nil || !strings.Contains(string(first), "1.1.0") {
		t.Fatalf("Root's lock file after the first init: %q, %v", first, err)
	}

	pinned := []byte("provider \"registry.terraform.io/hashicorp/aws\" {\n  version = \"1.0.0\"\n}\n")
	if err := os.WriteFile(filepath.Join(module, depLockFile), pinned, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := initWorkspace(t, r, ws); err != nil {
		t.Fatal(err)
	}
	args := initArgs(t, dir)
	if len(args) != 2 || !strings.HasSuffix(args[1], " -lockfile=readonly") {
		t.Fatalf("inits %q, want a second one, read-only, once the module ships a lock file", args)
	}
	if got, _ := os.ReadFile(rootLockFile); string(got) != string(pinned) {
		t.Fatalf("Root's lock file %q, want the module's %q", got, pinned)
	}

	if err := initWorkspace(t, r, ws); err != nil {
		t.Fatal(err)
	}
	if args := initArgs(t, dir); len(args) != 2 {
		t.Fatalf("inits %q: init ran again with nothing changed", args)
	}

	repinned := []byte("provider \"registry.terraform.io/hashicorp/aws\" {\n  version = \"1.1.0\"\n}\n")
	if err := os.WriteFile(filepath.Join(module, depLockFile), repinned, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := initWorkspace(t, r, ws); err != nil {
		t.Fatal(err)
	}
	if args := initArgs(t, dir); len(args) != 3 || !strings.HasSuffix(args[2], " -lockfile=readonly") {
		t.Fatalf("inits %q, want a third one, read-only, once the module's lock file changed", args)
	}
	if got, _ := os.ReadFile(rootLockFile); string(got) != string(repinned) {
		t.Fatalf("Root's lock file %q, want the module's %q", got, repinned)
	}

	// A provider the module's lock file does not pin: the error names the file.
	if err := os.WriteFile(filepath.Join(module, depLockFile), []byte("# unpinned\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = initWorkspace(t, r, ws)
	if !errors.Is(err, ErrProviderLock) || !strings.Contains(err.Error(), filepath.Join(module, depLockFile)) {
		t.Fatalf("init with a lock file pinning nothing: %v, want ErrProviderLock naming %s", err, filepath.Join(module, depLockFile))
	}
	// Another failure names the file, but is not blamed on it.
	if err := os.WriteFile(filepath.Join(module, depLockFile), []byte("# unreachable\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = initWorkspace(t, r, ws)
	if err == nil || errors.Is(err, ErrProviderLock) || !strings.Contains(err.Error(), filepath.Join(module, depLockFile)) {
		t.Fatalf("init failing on the registry: %v, want an error naming %s, not ErrProviderLock", err, filepath.Join(module, depLockFile))
	}
}

// Apply applies a plan only with the dependency lock file it was planned with: terraform applies
// with the providers installed now, which another plan or a refresh since may have changed.
func TestApplyRefusesAPlanMadeWithOtherProviders(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := NewTFExec(writeFakeTerraform(t, dir, "exit 0"))
	ws := Workspace{Root: t.TempDir(), ModuleDir: t.TempDir(), Env: "prod", Type: "cache", Nickname: "core", Config: json.RawMessage(`{}`)}
	lockA := []byte("provider \"registry.terraform.io/hashicorp/aws\" {\n  version = \"1.0.0\"\n}\n")
	lockB := []byte("provider \"registry.terraform.io/hashicorp/aws\" {\n  version = \"1.1.0\"\n}\n")
	setRoot := func(lock []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(ws.Root, depLockFile), lock, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	for _, tc := range []struct {
		name         string
		planned, now []byte // nil planned: no record
	}{
		{"another lock file installed since", lockA, lockB},
		{"a plan that records none, with a lock file now", nil, lockB},
	} {
		plan := fakePlan(t, ws)
		if tc.planned != nil {
			if err := os.WriteFile(planLockFile(plan.PlanFile), tc.planned, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		setRoot(tc.now)
		_, err := r.Apply(context.Background(), ws, plan)
		if !errors.Is(err, ErrPlanChanged) || !errors.Is(err, ErrProviderLock) {
			t.Fatalf("%s: %v, want ErrPlanChanged, ErrProviderLock", tc.name, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "applies")); err == nil {
			t.Fatalf("%s: terraform apply ran", tc.name)
		}
		if _, err := os.Stat(plan.PlanFile); err == nil {
			t.Fatalf("%s: the refused plan is kept", tc.name)
		}
	}

	plan := fakePlan(t, ws)
	if err := os.WriteFile(planLockFile(plan.PlanFile), lockA, 0o600); err != nil {
		t.Fatal(err)
	}
	setRoot(lockA)
	if _, err := r.Apply(context.Background(), ws, plan); err != nil {
		t.Fatalf("a plan applied with the lock file it was made with: %v", err)
	}
	if _, err := os.Stat(planLockFile(plan.PlanFile)); err == nil {
		t.Error("the plan's lock record outlives the applied plan")
	}
}

// testMirror makes a filesystem mirror of hashicorp/aws in two versions, 1.0.0 and 1.1.0, and
// a CLI configuration installing only from it. The packages are stand-ins (a script each): init
// installs and checks a provider's package but does not run it, and the tests here only init.
func testMirror(t *testing.T) (cliConfig, mirror string) {
	t.Helper()
	platform := runtime.GOOS + "_" + runtime.GOARCH
	tmp := t.TempDir()
	mirror = filepath.Join(tmp, "mirror")
	for _, v := range []string{"1.0.0", "1.1.0"} {
		d := filepath.Join(mirror, "registry.terraform.io", "hashicorp", "aws", v, platform)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		stub := "#!/bin/sh\necho 'hashicorp/aws " + v + ": a stand-in, never run' >&2\nexit 1\n"
		if err := os.WriteFile(filepath.Join(d, "terraform-provider-aws_v"+v+"_x5"), []byte(stub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cliConfig = filepath.Join(tmp, "cli.tfrc")
	conf := fmt.Sprintf("provider_installation {\n  filesystem_mirror {\n    path = %q\n  }\n}\n", mirror)
	if err := os.WriteFile(cliConfig, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return cliConfig, mirror
}

// providersLock writes the lock file a team commits: `terraform providers lock` of a module
// requiring hashicorp/aws = version, from the mirror.
func providersLock(t *testing.T, exe, mirror, version string) []byte {
	t.Helper()
	dir := t.TempDir()
	tf := "terraform {\n  required_providers {\n    aws = { source = \"hashicorp/aws\", version = \"" + version + "\" }\n  }\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(tf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "providers", "lock", "-fs-mirror="+mirror, "-platform="+runtime.GOOS+"_"+runtime.GOARCH)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("terraform providers lock: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, depLockFile))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// With real terraform (and a mirror of stand-in providers): a workspace first initialised without a lock file selects
// the newest provider its constraints allow (1.1.0); the commit then ships a lock file pinning
// 1.0.0 and the next init installs 1.0.0 — exactly the commit's file in Root — where Karma used
// to keep 1.1.0, the first init's; a lock file not pinning the provider fails init, naming the
// file, and terraform leaves it as it is. Without one, a constraint the workspace's lock file
// does not meet fails init, saying why (ErrProviderLock). Init only (the providers are stand-ins);
// TestAPlanAppliesOnlyWithItsLockFile plans. Not parallel: the CLI configuration naming the
// mirror is in the environment.
func TestTheCommitsLockFileChoosesTheProviders(t *testing.T) {
	exe := findTerraformOrSkip(t)
	cliConfig, mirror := testMirror(t)
	t.Setenv("TF_CLI_CONFIG_FILE", cliConfig)
	t.Setenv("TF_PLUGIN_CACHE_DIR", "")
	r := NewTFExec(exe)

	module := filepath.Join(t.TempDir(), "components", "cache")
	if err := os.MkdirAll(module, 0o755); err != nil {
		t.Fatal(err)
	}
	tf := `terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = ">= 1.0.0" }
  }
}
variable "component_name" {}
variable "nickname" {}
variable "config" {}
`
	if err := os.WriteFile(filepath.Join(module, "main.tf"), []byte(tf), 0o644); err != nil {
		t.Fatal(err)
	}
	ws := Workspace{Root: filepath.Join(t.TempDir(), "prod", "cache", "core"), ModuleDir: module, Env: "prod", Type: "cache", Nickname: "core", Config: json.RawMessage(`{}`)}
	installed := func() []string {
		m, _ := filepath.Glob(filepath.Join(ws.Root, ".terraform", "providers", "registry.terraform.io", "hashicorp", "aws", "*"))
		for i := range m {
			m[i] = filepath.Base(m[i])
		}
		return m
	}

	timed(t, "init without a lock file", func() error { return initWorkspace(t, r, ws) })
	if got, _ := os.ReadFile(filepath.Join(ws.Root, depLockFile)); !strings.Contains(string(got), `version     = "1.1.0"`) {
		t.Fatalf("the workspace's own lock file:\n%s\nwant 1.1.0, the newest the constraints allow", got)
	}

	// Without one, a constraint the workspace's lock file does not meet fails init (terraform
	// would need -upgrade), saying a lock file committed with the module chooses the versions.
	if err := os.WriteFile(filepath.Join(module, "main.tf"), []byte(strings.Replace(tf, ">= 1.0.0", "< 1.1.0", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	err := initWorkspace(t, r, ws)
	if !errors.Is(err, ErrProviderLock) || !strings.Contains(err.Error(), "the module ships no "+depLockFile) {
		t.Fatalf("init with a constraint the workspace's lock file does not meet: %v, want ErrProviderLock", err)
	}
	if err := os.WriteFile(filepath.Join(module, "main.tf"), []byte(tf), 0o644); err != nil {
		t.Fatal(err)
	}

	pinned := providersLock(t, exe, mirror, "1.0.0")
	if err := os.WriteFile(filepath.Join(module, depLockFile), pinned, 0o644); err != nil {
		t.Fatal(err)
	}
	timed(t, "init with the commit's lock file", func() error { return initWorkspace(t, r, ws) })
	if got, _ := os.ReadFile(filepath.Join(ws.Root, depLockFile)); string(got) != string(pinned) {
		t.Fatalf("the workspace's lock file:\n%s\nwant the commit's:\n%s", got, pinned)
	}
	if got := installed(); !slices.Contains(got, "1.0.0") {
		t.Fatalf("hashicorp/aws installed: %v, want 1.0.0", got)
	}

	other := []byte(`provider "registry.terraform.io/hashicorp/random" {
  version = "3.6.0"
  hashes = [
    "h1:R5Ucn26riKIEijcsiOMBR3uOAjuOMfI1x7XvH4P6B1w=",
  ]
}
`)
	if err := os.WriteFile(filepath.Join(module, depLockFile), other, 0o644); err != nil {
		t.Fatal(err)
	}
	err = initWorkspace(t, r, ws)
	if !errors.Is(err, ErrProviderLock) || !strings.Contains(err.Error(), filepath.Join(module, depLockFile)) {
		t.Fatalf("init with a lock file not pinning hashicorp/aws: %v, want ErrProviderLock naming the file", err)
	}
	if got, _ := os.ReadFile(filepath.Join(ws.Root, depLockFile)); string(got) != string(other) {
		t.Fatalf("terraform changed the read-only lock file:\n%s", got)
	}
}

// With real terraform (built-in resources, no provider to download): a plan records the lock
// file it was made with, and is applied only while Root holds that file — not once another
// commit's init replaced it, which terraform itself notices only when the providers differ.
// A plan made again (the commit's file back in Root) applies.
func TestAPlanAppliesOnlyWithItsLockFile(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ctx := context.Background()
	src, err := filepath.Abs(filepath.Join("testdata", "modules", "echo"))
	if err != nil {
		t.Fatal(err)
	}
	module := filepath.Join(t.TempDir(), "echo")
	if err := os.MkdirAll(module, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(filepath.Join(src, "main.tf"), filepath.Join(module, "main.tf")); err != nil {
		t.Fatal(err)
	}
	lock := []byte("# This configuration uses built-in providers only: nothing to pin.\n")
	if err := os.WriteFile(filepath.Join(module, depLockFile), lock, 0o644); err != nil {
		t.Fatal(err)
	}
	ws := Workspace{Root: t.TempDir(), ModuleDir: module, Env: "prod", Type: "echo", Nickname: "core",
		Config: json.RawMessage(`{"name": "a", "size": 1}`)}

	first, err := r.Plan(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(planLockFile(first.PlanFile)); string(got) != string(lock) {
		t.Fatalf("the plan records the lock file %q, want the commit's %q", got, lock)
	}
	if err := os.WriteFile(filepath.Join(ws.Root, depLockFile), []byte("# another commit's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply(ctx, ws, first); !errors.Is(err, ErrPlanChanged) || !errors.Is(err, ErrProviderLock) {
		t.Fatalf("apply with another lock file in Root: %v, want ErrPlanChanged, ErrProviderLock", err)
	}
	again, err := r.Plan(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.Apply(ctx, ws, again)
	if err != nil {
		t.Fatalf("apply of the plan made again: %v", err)
	}
	if got := fmtOutputs(out); got != `{"name":"a","size":1}` {
		t.Errorf("outputs %s", got)
	}
}

// A failure names the commit's lock file as the repository has it, under the modules folder,
// not by the path of the workspace's copy.
func TestModuleLockNameIsTheCommits(t *testing.T) {
	copyDir := filepath.Join(t.TempDir(), modulesCopies, "4b825dc642cb6eb9a060e54bf8d69288fbee4904")
	ws := Workspace{Confine: copyDir, ModuleDir: filepath.Join(copyDir, "cache")}
	if got, want := moduleLockName(ws), "cache/.terraform.lock.hcl of the commit's modules folder"; got != want {
		t.Errorf("with the commit's modules: %q, want %q", got, want)
	}
	ws.Confine = ""
	if got, want := moduleLockName(ws), filepath.Join(copyDir, "cache", depLockFile); got != want {
		t.Errorf("modules outside the repository: %q, want %q", got, want)
	}
}
