package model_test

import (
	"context"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/model"
)

// Components whose parsed layers were released after pass 1 of resolution are read again when
// another component extends them: the children see the parent's merged layers (base layer,
// nulls, inherited depends_on, overrides), and the parent's own problems are reported once.
func TestExtendsAReleasedComponent(t *testing.T) {
	t.Parallel()
	files := map[string]string{
		"iac/_base/app/parent/config.json": `{"from_base":1,"tags":{"Tier":"web"}}`,
		"iac/prod/app/parent/config.json":  `{"karma":{"depends_on":["vpc/core"],"bogus":1},"tags":{"Tier":null,"Env":"prod"},"size":"s"}`,
		"iac/prod/app/child/config.json":   `{"karma":{"extends":"app/parent"},"size":"m"}`,
		"iac/prod/app/grand/config.json":   `{"karma":{"extends":"app/child"},"extra":true}`,
		"iac/prod/app/other/config.json":   `{"karma":{"extends":"app/parent","depends_on":[]}}`,
		"iac/prod/vpc/core/config.json":    `{}`,
	}
	dir := writeRepo(t, files)
	for _, over := range []bool{false, true} {
		opts := model.BuildOptions{}
		if over {
			opts.Overrides = map[string][]byte{"iac/prod/app/parent/config.json": []byte(`{"karma":{"depends_on":["vpc/core"],"bogus":1},"size":"xl"}`)}
		}
		res, err := model.Build(context.Background(), dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"prod/app/parent": `{"from_base":1,"size":"s","tags":{"Env":"prod"}}`,
			"prod/app/child":  `{"from_base":1,"size":"m","tags":{"Env":"prod"}}`,
			"prod/app/grand":  `{"extra":true,"from_base":1,"size":"m","tags":{"Env":"prod"}}`,
			"prod/app/other":  `{"from_base":1,"size":"s","tags":{"Env":"prod"}}`,
		}
		if over {
			want = map[string]string{
				"prod/app/parent": `{"from_base":1,"size":"xl","tags":{"Tier":"web"}}`,
				"prod/app/child":  `{"from_base":1,"size":"m","tags":{"Tier":"web"}}`,
				"prod/app/grand":  `{"extra":true,"from_base":1,"size":"m","tags":{"Tier":"web"}}`,
				"prod/app/other":  `{"from_base":1,"size":"xl","tags":{"Tier":"web"}}`,
			}
		}
		deps := map[string]int{}
		for _, c := range res.Repo.Components {
			if w, ok := want[c.ID()]; ok && string(c.Resolved) != w {
				t.Errorf("overrides %v: %s resolved = %s, want %s", over, c.ID(), c.Resolved, w)
			}
			deps[c.ID()] = len(c.References)
		}
		// depends_on is inherited through extends, and replaced by a child's own
		if deps["prod/app/parent"] != 1 || deps["prod/app/child"] != 1 || deps["prod/app/grand"] != 1 || deps["prod/app/other"] != 0 {
			t.Errorf("overrides %v: references %v", over, deps)
		}
		var bogus []string
		for _, d := range res.Diagnostics {
			if strings.Contains(d.Message, "bogus") {
				bogus = append(bogus, d.String())
			}
		}
		if len(bogus) != 1 || !strings.HasPrefix(bogus[0], "iac/prod/app/parent/config.json: error [karma-block] at /karma/bogus") {
			t.Errorf("overrides %v: the parent's karma-block error, once: %v", over, bogus)
		}
	}
}
