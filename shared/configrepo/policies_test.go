package configrepo_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/usekarma/karma/shared/gitrepo/gittest"
)

// Each commit's policies are that commit's (policies_dir of its own karma.json), whatever the
// working tree holds; a commit without the folder has none.
func TestPoliciesAreTheCommits(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", files("3"))
	none := o.Head(t)
	a := o.Commit(t, "policy", map[string]string{"policies/vpc.rego": "package karma\n", "policies/README.md": "not a policy\n"})
	b := o.Commit(t, "moved", map[string]string{"karma.json": `{"policies_dir": "rules"}`, "rules/all.rego": "package karma\n# b\n"})
	if err := os.WriteFile(filepath.Join(o.Work, "rules", "uncommitted.rego"), []byte("package karma\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := newSource(t, o.Bare)
	for sha, want := range map[string]map[string][]byte{
		none: nil,
		a:    {"policies/vpc.rego": []byte("package karma\n")},
		b:    {"rules/all.rego": []byte("package karma\n# b\n")},
	} {
		got, err := src.Policies(ctx, sha)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got, want)) {
			t.Errorf("at %.8s: policies %v, want %v", sha, keys(got), keys(want))
		}
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
