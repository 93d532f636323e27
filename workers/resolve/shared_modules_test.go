package resolve_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/message"
)

// sharedModulesRepo: vpc calls components/modules/network, which calls components/common; db
// calls common from a *.tf.json file; app calls a registry module only; extra replaces files.
func sharedModulesRepo(t *testing.T, extra map[string]string) string {
	files := map[string]string{
		"karma.json":                     `{"prefix": "/iac", "modules_dir": "components"}`,
		"account_environments/prod.json": `{"name": "prod", "environment": "prod"}`,
		"iac/prod/vpc/core/config.json":  `{}`,
		"iac/prod/db/main/config.json":   `{}`,
		"iac/prod/app/web/config.json":   `{}`,
		"iac/prod/app/api/config.json":   `{}`,
		"components/vpc/main.tf":         "module \"net\" {\n  source = \"../modules/network\"\n}\n",
		"components/modules/network/main.tf": "module \"tags\" {\n  source = \"../../common\"\n}\n" +
			"module \"remote\" {\n  source = \"terraform-aws-modules/vpc/aws\"\n}\n",
		"components/common/tags.tf":  `output "tags" { value = {} }`,
		"components/db/main.tf.json": `{"module": {"tags": {"source": "../common"}}}`,
		"components/app/main.tf":     "module \"vpc\" {\n  source = \"terraform-aws-modules/vpc/aws\"\n}\n",
		"components/unused/main.tf":  `# a module no type calls`,
	}
	maps.Copy(files, extra)
	return wt.WriteRepo(t, files)
}

// rootsOf runs a commit changing files through resolve: the roots of prod and the change set.
func rootsOf(t *testing.T, repo string, files ...string) ([]string, map[string]string) {
	t.Helper()
	s := newStage(t, repo, nil)
	in := commitDetected(t, 90, sha1, files)
	out := s.handle(t, in)
	resolved := wt.ByType(out, message.TypeChangeResolved)
	if len(resolved) != 1 {
		t.Fatalf("%d change.resolved, want 1", len(resolved))
	}
	p := wt.PayloadOf[message.ChangeResolved](t, resolved[0])
	if p.Rejected != "" {
		t.Fatalf("rejected: %s", p.Rejected)
	}
	cs, err := s.cs.Get(context.Background(), p.ChangeSetID)
	if err != nil {
		t.Fatal(err)
	}
	details := map[string]string{}
	for id, n := range cs.Nodes {
		details[id] = n.Detail
	}
	roots := slices.Clone(p.Roots)
	slices.Sort(roots)
	return roots, details
}

// A change to a folder of the modules folder that is no component type (components/common/)
// deploys every component whose type's module calls it by a local source, directly or through
// other local modules — and no other.
func TestASharedModuleFolderDeploysTheTypesUsingIt(t *testing.T) {
	t.Parallel()
	repo := sharedModulesRepo(t, nil)
	tests := []struct {
		name   string
		files  []string
		want   []string
		detail map[string]string // root -> what its detail must say
	}{
		{"common, used through network and from JSON", []string{"components/common/tags.tf"},
			[]string{"prod/db/main", "prod/vpc/core"}, map[string]string{
				"prod/vpc/core": "components/common/tags.tf changed: the module components/vpc uses components/common",
				"prod/db/main":  "components/common/tags.tf changed: the module components/db uses components/common"}},
		{"a nested module folder", []string{"components/modules/network/variables.tf"},
			[]string{"prod/vpc/core"}, map[string]string{"prod/vpc/core": "uses components/modules/network"}},
		{"a type's own module", []string{"components/app/main.tf"}, []string{"prod/app/api", "prod/app/web"}, map[string]string{"prod/app/web": ""}},
		{"a folder no type calls", []string{"components/unused/main.tf"}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			roots, details := rootsOf(t, repo, tt.files...)
			if !slices.Equal(roots, tt.want) {
				t.Errorf("roots %v, want %v", roots, tt.want)
			}
			for id, want := range tt.detail {
				if got := details[id]; want == "" && got != "" || !strings.Contains(got, want) {
					t.Errorf("%s: detail %q, want it to say %q", id, got, want)
				}
			}
		})
	}
}

// When which folders a type's module uses cannot be told — a file that does not parse, a source
// that is not a plain string, a local source leaving the modules folder, at any depth — a
// change to a shared folder deploys every instance of that type, and the change set says why;
// the types whose modules can be read and do not use it still do not deploy.
func TestASharedModuleFolderDeploysWhatMayUseIt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file, content, why string
	}{
		{"a file that does not parse", "components/app/broken.tf", `module "x" {`, "components/app/broken.tf"},
		{"an interpolated source", "components/app/x.tf", "module \"x\" {\n  source = \"../${var.name}\"\n}\n", "not a plain string"},
		{"a source leaving the modules folder", "components/app/x.tf", "module \"x\" {\n  source = \"../../lib\"\n}\n", "leaves the modules folder components"},
		{"a module called that does not parse", "components/lib/main.tf", `module "y" {`, "components/lib/main.tf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			extra := map[string]string{tt.file: tt.content}
			if strings.HasPrefix(tt.file, "components/lib/") {
				extra["components/app/lib.tf"] = "module \"lib\" {\n  source = \"../lib\"\n}\n"
			}
			roots, details := rootsOf(t, sharedModulesRepo(t, extra), "components/common/tags.tf")
			if want := []string{"prod/app/api", "prod/app/web", "prod/db/main", "prod/vpc/core"}; !slices.Equal(roots, want) {
				t.Errorf("roots %v, want %v", roots, want)
			}
			for _, id := range []string{"prod/app/api", "prod/app/web"} {
				if d := details[id]; !strings.Contains(d, "components/common/tags.tf changed") || !strings.Contains(d, "cannot be told") ||
					!strings.Contains(d, tt.why) {
					t.Errorf("%s: detail %q does not say why (%s)", id, d, tt.why)
				}
			}
		})
	}
}
