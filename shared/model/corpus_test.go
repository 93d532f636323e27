package model_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/besidetest"
	"github.com/usekarma/karma/shared/model"
)

// corpusDir is the real users' data kept beside the checkout (../shared/corpus/usekarma), read
// in place; without it the test is skipped, saying so.
func corpusDir(t *testing.T) string {
	t.Helper()
	return besidetest.Dir(t, "corpus", "usekarma")
}

// TestCorpusLoads: every repository in the corpus loads; the one invalid file fails with its
// line and column, nothing else is an error.
func TestCorpusLoads(t *testing.T) {
	t.Parallel()
	root := corpusDir(t)
	cases := []struct {
		repo       string
		components int
		envs       string
		errors     []string
	}{
		{repo: "aws-config", components: 14, envs: "dev,prod"},
		{repo: "karma-dev-config", components: 4, envs: "dev,prod"},
		{repo: "aws-config/_history/3ce6bae-parent", components: 0, envs: "dev,prod"},
		{repo: "aws-config/_history/b2969f7-parent", components: 0, envs: "dev,prod"},
		{repo: "aws-config/_history/53f5e58-parent", components: 1, envs: "prod"},
		{repo: "aws-config/_history/5fb2e5d-parent", components: 1, envs: "prod",
			errors: []string{"iac/prod/serverless-rest/karma/config.json:4:27: error [invalid-json]: invalid character '<' looking for beginning of value"}},
	}
	for _, c := range cases {
		t.Run(c.repo, func(t *testing.T) {
			t.Parallel()
			res, err := model.Build(context.Background(), filepath.Join(root, c.repo), model.BuildOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(res.Repo.Components); got != c.components {
				t.Errorf("components = %d, want %d", got, c.components)
			}
			if got := strings.Join(res.Repo.Environments, ","); got != c.envs {
				t.Errorf("environments = %s, want %s", got, c.envs)
			}
			var errs []string
			for _, d := range res.Diagnostics.Errors() {
				errs = append(errs, d.String())
			}
			if strings.Join(errs, "\n") != strings.Join(c.errors, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(errs, "\n"), strings.Join(c.errors, "\n"))
			}
		})
	}
}

// TestCorpusDocExamples puts every documentation example in a repository as a component config:
// the valid ones load, the invalid one fails with a clear error, none crashes.
func TestCorpusDocExamples(t *testing.T) {
	t.Parallel()
	root := filepath.Join(corpusDir(t), "_doc-examples")
	index, err := os.ReadFile(filepath.Join(root, "INDEX.txt"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	invalid := map[string]bool{}
	n := 0
	for _, line := range strings.Split(string(index), "\n") {
		rel, rest, ok := strings.Cut(line, "  ")
		if !ok {
			continue
		}
		rel = strings.TrimPrefix(rel, "_doc-examples/")
		data, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		n++
		nick := strings.NewReplacer("/", "-", ".", "-").Replace(strings.TrimSuffix(rel, ".json"))
		path := "iac/docs/example/" + nick + "/config.json"
		files[path] = string(data)
		if strings.Contains(rest, "NOT valid") {
			invalid[path] = true
		}
	}
	if n < 30 {
		t.Fatalf("read only %d examples from INDEX.txt", n)
	}
	res := build(t, files)
	if got := len(res.Repo.Components); got != n {
		t.Errorf("components = %d, want %d", got, n)
	}
	missing := map[string]bool{}
	for _, d := range res.Diagnostics.Errors() {
		if d.Code == model.CodeMissingRef {
			missing[strings.Fields(d.Message)[2]] = true
		}
		switch {
		case d.Code == model.CodeInvalidJSON && invalid[d.File] && d.Line > 0:
		case d.Code == model.CodeMissingRef:
			// examples name components (vpc/core, ecs-cluster/core) that no example defines
		default:
			t.Errorf("unexpected: %s", d)
		}
	}
	// The examples' references are inferred as real modules read them (cluster_nickname names an
	// ecs-cluster); no example defines the targets, so they are reported as missing.
	for _, want := range []string{"vpc/core", "ecs-cluster/core"} {
		if !missing[want] {
			t.Errorf("reference to %s not inferred (missing targets: %v)", want, missing)
		}
	}
	if len(invalid) != 1 {
		t.Errorf("INDEX.txt marks %d invalid examples, want 1", len(invalid))
	}
}
