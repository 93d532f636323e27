package terraform

import (
	"testing"

	"github.com/zclconf/go-cty/cty"
)

// TestDeployBranchesSayWhichBranchesDeploy: the webhook function reads KARMA_BRANCHES, the
// deploy_branches joined with ",", and takes an empty one for "main": deploy_branches = []
// (meant as "no branch") deployed every push to main, and a name holding a comma or white
// space became other branches. Such lists are refused at plan.
func TestDeployBranchesSayWhichBranchesDeploy(t *testing.T) {
	list := func(bs ...string) cty.Value {
		if len(bs) == 0 {
			return cty.ListValEmpty(cty.String)
		}
		var vs []cty.Value
		for _, b := range bs {
			vs = append(vs, cty.StringVal(b))
		}
		return cty.ListVal(vs)
	}
	for _, c := range []struct {
		branches []string
		ok       bool
	}{
		{[]string{"main"}, true},
		{[]string{"main", "release/1.x"}, true},
		{[]string{"refs/heads/main"}, true},
		{nil, false},
		{[]string{""}, false},
		{[]string{"main,dev"}, false},
		{[]string{" main"}, false},
		{[]string{"main", "ma in"}, false},
	} {
		vars := testVars()
		vars["deploy_branches"] = list(c.branches...)
		m, err := loadModule(moduleDir(), vars)
		if err != nil {
			t.Fatal(err)
		}
		ok := true
		for _, cond := range m.validations["deploy_branches"] {
			v, err := m.eval(cond, nil)
			if err != nil {
				t.Fatalf("deploy_branches = %q: %v", c.branches, err)
			}
			ok = ok && v.True()
		}
		if ok != c.ok {
			t.Errorf("deploy_branches = %q: accepted %v, want %v", c.branches, ok, c.ok)
		}
	}
}
