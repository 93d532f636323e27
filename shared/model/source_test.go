package model_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/model/modeltest"
)

// A component's config.json (or any folder on the way) that is a symbolic link is refused, from
// a directory and from a commit alike: its target could be any file the server can read.
func TestSymlinksAreRefusedFromDirectoryAndCommit(t *testing.T) {
	gittest.Need(t)
	o := gittest.NewOrigin(t, "config.git", map[string]string{
		"iac/prod/vpc/core/config.json": `{"cidr": "10.0.0.0/16"}`,
	})
	secret := filepath.Join(t.TempDir(), "webhook-secrets.json")
	os.WriteFile(secret, []byte(`{"github:*": "hunter2"}`), 0o600)
	os.MkdirAll(filepath.Join(o.Work, "iac/prod/vpc/evil"), 0o755)
	must(t, os.Symlink(secret, filepath.Join(o.Work, "iac/prod/vpc/evil/config.json")))
	must(t, os.Symlink(filepath.Join(o.Work, "iac/prod"), filepath.Join(o.Work, "iac/qa")))
	must(t, os.Symlink(secret, filepath.Join(o.Work, "karma.json.link")))
	sha := o.Commit(t, "links", nil)
	repo, err := gitrepo.OpenLocal(o.Work)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := repo.Tree(context.Background(), sha)
	if err != nil {
		t.Fatal(err)
	}
	for name, load := range map[string]func() (*model.Repo, error){
		"directory": func() (*model.Repo, error) { return model.Load(o.Work, model.LoadOptions{}) },
		"commit":    func() (*model.Repo, error) { return model.LoadFS(tree, "config@"+sha[:8], model.LoadOptions{}) },
	} {
		t.Run(name, func(t *testing.T) {
			r, err := load()
			if err != nil {
				t.Fatal(err)
			}
			refused := map[string]bool{}
			for _, d := range r.Diagnostics.Errors() {
				if strings.Contains(d.Message, "symbolic link") {
					refused[d.File] = true
				}
				if strings.Contains(d.String(), "hunter2") {
					t.Errorf("a diagnostic shows the link target's content: %s", d)
				}
			}
			for _, f := range []string{"iac/prod/vpc/evil/config.json", "iac/qa"} {
				if !refused[f] {
					t.Errorf("%s: not refused (diagnostics: %v)", f, r.Diagnostics)
				}
			}
			for _, c := range r.Components {
				if c.Env != "prod" || c.Nickname != "core" {
					t.Errorf("component %s was loaded through a link", c.ID())
				}
			}
		})
	}
}

func TestSettingsLinkAndModulesOutsideAreRefused(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(t.TempDir(), "s.json")
	os.WriteFile(secret, []byte(`{"prefix": "/x"}`), 0o600)
	must(t, os.Symlink(secret, filepath.Join(dir, "karma.json")))
	if _, err := model.Load(dir, model.LoadOptions{}); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("karma.json as a link: Load = %v", err)
	}
	os.Remove(filepath.Join(dir, "karma.json"))
	for _, md := range []string{"../modules", "/etc"} {
		os.WriteFile(filepath.Join(dir, "karma.json"), []byte(`{"modules_dir": "`+md+`"}`), 0o644)
		if _, err := model.Load(dir, model.LoadOptions{}); err == nil || !strings.Contains(err.Error(), "modules_dir") {
			t.Errorf("modules_dir %s: Load = %v", md, err)
		}
	}
}

// The same repository gives the same graph from its directory and from its commit.
func TestBuildFromCommitEqualsBuildFromDirectory(t *testing.T) {
	gittest.Need(t)
	dir := t.TempDir()
	if _, err := modeltest.Generate(dir, modeltest.Spec{Components: 300, Envs: []string{"dev", "prod"}, Layers: 5, RefsPerComponent: 3, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	sha := commitAll(t, dir)
	fromDir, err := model.Build(context.Background(), dir, model.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	repo, err := gitrepo.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := repo.Tree(context.Background(), sha)
	if err != nil {
		t.Fatal(err)
	}
	fromCommit, err := model.BuildFS(context.Background(), tree, "repo@"+sha, model.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := len(fromDir.Repo.Components), len(fromCommit.Repo.Components); a != b || a == 0 {
		t.Fatalf("components: directory %d, commit %d", a, b)
	}
	for i, c := range fromDir.Repo.Components {
		d := fromCommit.Repo.Components[i]
		if c.ID() != d.ID() || c.Hash != d.Hash {
			t.Errorf("component %d: directory %s %s, commit %s %s", i, c.ID(), c.Hash, d.ID(), d.Hash)
		}
	}
	if a, b := len(fromDir.Graph.Edges), len(fromCommit.Graph.Edges); a != b {
		t.Errorf("edges: directory %d, commit %d", a, b)
	}
}

func commitAll(t testing.TB, dir string) string {
	gittest.Git(t, dir, "init", "-q", "-b", "main")
	gittest.Git(t, dir, "add", "-A")
	gittest.Git(t, dir, "-c", "gc.auto=0", "commit", "-q", "-m", "generated")
	return gittest.Git(t, dir, "rev-parse", "HEAD")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkBuildFromCommit10k builds the 10,000-component repository of BenchmarkBuild10k from a
// commit's tree (packed, as a clone or a fetch leaves it). Target: within 1.5x of the build from
// the directory (docs/performance.md).
func BenchmarkBuildFromCommit10k(b *testing.B) {
	gittest.Need(b)
	dir := b.TempDir()
	if _, err := modeltest.Generate(dir, modeltest.Spec{Components: 10_000, Envs: []string{"dev", "prod"}, Layers: 10, RefsPerComponent: 3, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	sha := commitAll(b, dir)
	gittest.Git(b, dir, "repack", "-adq")
	repo, err := gitrepo.OpenLocal(dir)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		tree, err := repo.Tree(context.Background(), sha)
		if err != nil {
			b.Fatal(err)
		}
		res, err := model.BuildFS(context.Background(), tree, "repo@"+sha, model.BuildOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Repo.Components) == 0 {
			b.Fatal("no components")
		}
	}
	b.ReportMetric(float64(10_000)*float64(b.N)/b.Elapsed().Seconds(), "components/s")
}

// A submodule where the layout expects a folder (iac, an environment, a type, a component) is
// refused with an error naming it, as a symbolic link is: its content is not part of the commit,
// and ignoring it with a warning dropped the components it stood for (a commit turning a
// component's folder into a submodule deployed nothing and destroyed it).
func TestSubmodulesAreRefused(t *testing.T) {
	gittest.Need(t)
	o := gittest.NewOrigin(t, "config.git", map[string]string{
		"iac/prod/vpc/core/config.json": `{"cidr": "10.0.0.0/16"}`,
	})
	head := o.Head(t)
	for _, p := range []string{"iac/prod/vpc/edge", "iac/prod/queue", "iac/qa"} {
		gittest.Git(t, o.Work, "update-index", "--add", "--cacheinfo", "160000,"+head+","+p)
	}
	gittest.Git(t, o.Work, "commit", "-q", "-m", "submodules")
	sha := o.Head(t)
	repo, err := gitrepo.OpenLocal(o.Work)
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	tree, err := repo.Tree(context.Background(), sha)
	if err != nil {
		t.Fatal(err)
	}
	res, err := model.BuildFS(context.Background(), tree, "config@"+sha[:8], model.BuildOptions{LoadOptions: model.LoadOptions{Env: "prod"}})
	if err != nil {
		t.Fatal(err)
	}
	refused := map[string]bool{}
	for _, d := range res.Diagnostics.Errors() {
		if strings.Contains(d.Message, "submodule") {
			refused[d.File] = true
		}
	}
	for _, f := range []string{"iac/prod/vpc/edge", "iac/prod/queue", "iac/qa"} {
		if !refused[f] {
			t.Errorf("%s: not refused as a submodule (diagnostics: %v)", f, res.Diagnostics)
		}
	}
}
