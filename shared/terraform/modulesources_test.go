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

// modulesTree writes a modules folder as configrepo materializes one (<base>/modules/<tree
// id>/<type>), next to another commit's and a folder on disk, the type vpc's main.tf calling the
// module at source (ABS in it is replaced by the base folder), and returns vpc's workspace.
func modulesTree(t *testing.T, source string) Workspace {
	t.Helper()
	base := t.TempDir()
	write := func(rel, data string) {
		t.Helper()
		p := filepath.Join(base, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("modules/new/vpc/main.tf", `
variable "component_name" {}
variable "nickname" {}
variable "iac_prefix" {}
variable "config" {}
module "m" { source = "`+strings.ReplaceAll(source, "ABS", filepath.ToSlash(base))+`" }
output "from" { value = module.m.from }
`)
	write("modules/new/common/main.tf", `
module "nested" { source = "./nested" }
output "from" { value = module.nested.from }
`)
	write("modules/new/common/nested/main.tf", `output "from" { value = "the commit" }`)
	// Another commit's modules, materialized earlier on the same machine, and a folder on disk.
	write("modules/old/vpc/main.tf", `output "from" { value = "another commit" }`)
	write("elsewhere/main.tf", `output "from" { value = "the disk" }`)
	// Named by its tree id, as configrepo names it.
	id, err := gitrepo.DirTreeID(filepath.Join(base, "modules", "new"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(base, "modules", "new"), filepath.Join(base, "modules", id)); err != nil {
		t.Fatal(err)
	}
	return Workspace{Root: filepath.Join(base, "work", "dev", "vpc", "core"), ModuleDir: filepath.Join(base, "modules", id, "vpc"),
		Confine: filepath.Join(base, "modules", id), Env: "dev", Type: "vpc", Nickname: "core", Prefix: "/iac", Config: json.RawMessage(`{}`)}
}

// A module of the commit calling, by a local source, a folder outside the commit's modules folder
// (another commit's modules, materialized next to it, or any folder), or a path on the disk that
// terraform installs from there (an absolute path, a file:// URL), is refused before anything is
// planned: the plan would deploy code the lineage's commit does not hold. A call
// inside the modules folder (and its own nested calls) still plans.
func TestModulesOutsideTheCommitAreRefused(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ctx := context.Background()
	// Terraform reads the workspace's copy of the modules folder (Root/.karma-modules/<tree
	// id>/vpc, Root being work/dev/vpc/core): a relative source leaving it by two levels reaches
	// nothing (terraform's own init error), by seven the modules folders of the machine.
	for _, tc := range []struct {
		name, source string
		missing      bool // terraform finds no folder there: its init fails
	}{
		{"another commit's modules, next to the copy", "../../old/vpc", true},
		{"another commit's modules", "../../../../../../../modules/old/vpc", false},
		{"a folder on disk", "../../../../../../../elsewhere", false},
		{"an absolute path", "ABS/elsewhere", false},
		{"a file URL", "file://ABS/elsewhere", false},
		{"a forced file getter", "file::ABS/elsewhere", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ws := modulesTree(t, tc.source)
			_, err := r.Plan(ctx, ws)
			var te *Error
			if !errors.As(err, &te) || te.Op != OpInit || !te.Permanent() || !strings.Contains(err.Error(), `module.component.module.m`) && !strings.Contains(err.Error(), `module "m"`) ||
				!tc.missing && !errors.Is(err, ErrModuleOutside) {
				t.Fatalf("plan with module source %q: %v, want a permanent init error naming module.component.module.m: %v", tc.source, err, ErrModuleOutside)
			}
			if plans, _ := filepath.Glob(filepath.Join(ws.Root, planDir, "*.tfplan")); len(plans) > 0 {
				t.Fatalf("a plan was saved: %v", plans)
			}
			// Planned again (init is not run again): still refused.
			if _, err := r.Plan(ctx, ws); err == nil || !tc.missing && !errors.Is(err, ErrModuleOutside) {
				t.Fatalf("second plan: %v, want %v", err, ErrModuleOutside)
			}
		})
	}
	t.Run("inside the modules folder", func(t *testing.T) {
		t.Parallel()
		ws := modulesTree(t, "../common")
		if _, err := r.Plan(ctx, ws); err != nil {
			t.Fatalf("plan calling ../common: %v", err)
		}
	})
	t.Run("a modules folder outside the repository", func(t *testing.T) {
		t.Parallel()
		ws := modulesTree(t, "../../old/vpc")
		ws.Confine = "" // KARMA_MODULES_DIR: not versioned with the configs, not confined
		if _, err := r.Plan(ctx, ws); err != nil {
			t.Fatalf("plan of a static modules folder: %v", err)
		}
	})
}

// The manifest terraform writes is read as it is: a module installed in .terraform/modules from
// a remote source passes, one copied there from a local path does not.
func TestCheckModuleSources(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	ws := Workspace{Root: filepath.Join(base, "work", "dev", "vpc", "core"), ModuleDir: filepath.Join(base, "modules", "abc", "vpc"),
		Confine: filepath.Join(base, "modules", "abc")}
	for _, tc := range []struct {
		source, dir string
		refused     bool
	}{
		{"../../../../modules/abc/vpc", "../../../../modules/abc/vpc", false},
		{"../common", "../../../../modules/abc/common", false},
		{"./x", "../../../../modules/abc/vpc/x", false},
		{"terraform-aws-modules/vpc/aws", ".terraform/modules/component.vpc", false},
		{"git::https://example.com/m.git?ref=v1", ".terraform/modules/component.g", false},
		{"../../other/vpc", "../../../../modules/other/vpc", true},
		{"../../../../../etc", "../../../../../etc", true},
		{"/srv/modules/x", ".terraform/modules/component.x", true},
		{"file:///srv/modules/x", ".terraform/modules/component.x", true},
		{"git::file:///srv/repo.git", ".terraform/modules/component.x", true},
		{"FILE::/srv/x", ".terraform/modules/component.x", true},
		{"x", filepath.Join(base, "elsewhere"), true},
	} {
		manifest := `{"Modules":[{"Key":"","Source":"","Dir":"."},{"Key":"component.m","Source":` + quote(tc.source) + `,"Dir":` + quote(tc.dir) + `}]}`
		p := filepath.Join(ws.Root, ".terraform", "modules", "modules.json")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		err := checkModuleSources(ws)
		if got := errors.Is(err, ErrModuleOutside); got != tc.refused {
			t.Errorf("source %q in %s: %v, want refused %v", tc.source, tc.dir, err, tc.refused)
		}
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
