package configrepo_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
	"github.com/usekarma/karma/shared/terraform"
)

var ctx = context.Background()

func files(az string) map[string]string {
	return map[string]string{
		"iac/prod/vpc/core/config.json":       `{"az_count": ` + az + `}`,
		"iac/prod/subnet/app/config.json":     `{"vpc_nickname": "core"}`,
		"components/vpc/main.tf":              "variable \"config\" {}\n",
		"components/subnet/main.tf":           "variable \"config\" {}\n",
		"components/subnet/scripts/run.sh":    "#!/bin/sh\necho hi\n",
		"components/vpc/config.schema.json":   `{"type": "object", "properties": {"az_count": {"type": "integer"}}}`,
		"account_environments/prod.json":      `{"environment": "prod"}`,
		"docs/README.md":                      "not deployed\n",
		"iac/prod/vpc/core/notes/extra.json":  `{}`,
		"components/subnet/variables.tf.json": `{}`,
	}
}

func newSource(t *testing.T, url string) *configrepo.Source {
	t.Helper()
	repo, err := gitrepo.OpenCache(filepath.Join(t.TempDir(), "cache"), gitrepo.Remote{URL: url}, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close() })
	return &configrepo.Source{Repo: repo, ModulesRoot: filepath.Join(t.TempDir(), "modules")}
}

func TestBuildIsOfTheCommitAsked(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", files("3"))
	a := o.Head(t)
	b := o.Commit(t, "four", map[string]string{"iac/prod/vpc/core/config.json": `{"az_count": 4}`})
	src := newSource(t, o.Bare)
	for sha, want := range map[string]string{a: `{"az_count":3}`, b: `{"az_count":4}`} {
		res, err := src.Build(ctx, "prod", sha, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range res.Repo.Components {
			if c.ID() == "prod/vpc/core" && string(c.Resolved) != want {
				t.Errorf("at %.8s: vpc/core resolved %s, want %s", sha, c.Resolved, want)
			}
		}
	}
	// A schema of the commit applies: az_count must be an integer there.
	c := o.Commit(t, "bad", map[string]string{"iac/prod/vpc/core/config.json": `{"az_count": "many"}`})
	res, err := src.Build(ctx, "prod", c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Diagnostics.Errors()) == 0 {
		t.Error("the commit's schema was not applied")
	}
	head, err := src.Head(ctx)
	if err != nil || head != c {
		t.Errorf("Head = %s, %v; want %s", head, err, c)
	}
}

func TestModulesDirIsTheCommitsModules(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", files("3"))
	os.Chmod(filepath.Join(o.Work, "components", "subnet", "scripts", "run.sh"), 0o755)
	a := o.Commit(t, "executable script", nil)
	src := newSource(t, o.Bare)
	dirA, err := src.ModulesDir(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dirA, "vpc", "main.tf")); string(got) != "variable \"config\" {}\n" {
		t.Errorf("vpc/main.tf = %q", got)
	}
	if fi, err := os.Stat(filepath.Join(dirA, "subnet", "scripts", "run.sh")); err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("nested executable module file: %v, %v; want it present and executable", fi, err)
	}
	// A commit that does not touch the modules shares the folder; one that does gets its own.
	b := o.Commit(t, "config only", map[string]string{"iac/prod/vpc/core/config.json": `{"az_count": 4}`})
	dirB, err := src.ModulesDir(ctx, b)
	if err != nil || dirB != dirA {
		t.Errorf("modules of B = %s, %v; want A's %s (same content)", dirB, err, dirA)
	}
	c := o.Commit(t, "module", map[string]string{"components/vpc/main.tf": "variable \"config\" {}\noutput \"x\" { value = 1 }\n"})
	dirC, err := src.ModulesDir(ctx, c)
	if err != nil || dirC == dirA {
		t.Fatalf("modules of C = %s, %v; want a new folder", dirC, err)
	}
	if got, _ := os.ReadFile(filepath.Join(dirA, "vpc", "main.tf")); strings.Contains(string(got), "output") {
		t.Error("A's modules were changed by C")
	}
	// A half-written folder (a crash) is written again.
	os.Remove(filepath.Join(dirA, ".karma-complete"))
	os.Remove(filepath.Join(dirA, "vpc", "main.tf"))
	if again, err := src.ModulesDir(ctx, a); err != nil || again != dirA {
		t.Fatalf("rewrite = %s, %v", again, err)
	}
	if _, err := os.Stat(filepath.Join(dirA, "vpc", "main.tf")); err != nil {
		t.Errorf("the half-written folder was not completed: %v", err)
	}
}

// A folder of the modules folder that is no type (components/common/, called by the types'
// modules as "../common") is written with the types' modules, as the commit has it: a plan
// and apply take it from the same tree as the rest.
func TestModulesDirHasTheCommitsSharedFolders(t *testing.T) {
	fs := files("3")
	fs["components/vpc/main.tf"] = "module \"tags\" {\n  source = \"../common\"\n}\n"
	fs["components/common/tags.tf"] = "output \"tags\" { value = { v = 1 } }\n"
	fs["components/modules/network/main.tf"] = "# nested\n"
	o := gittest.NewOrigin(t, "config.git", fs)
	a := o.Head(t)
	b := o.Commit(t, "common", map[string]string{"components/common/tags.tf": "output \"tags\" { value = { v = 2 } }\n",
		"components/modules/network/main.tf": "# nested, changed\n"})
	src := newSource(t, o.Bare)
	want := map[string][2]string{a: {"v = 1", "# nested\n"}, b: {"v = 2", "# nested, changed\n"}}
	dirs := map[string]bool{}
	for _, sha := range []string{a, b} {
		dir, err := src.ModulesDir(ctx, sha)
		if err != nil {
			t.Fatal(err)
		}
		dirs[dir] = true
		if got, _ := os.ReadFile(filepath.Join(dir, "common", "tags.tf")); !strings.Contains(string(got), want[sha][0]) {
			t.Errorf("at %.8s: common/tags.tf = %q, want the commit's (%s)", sha, got, want[sha][0])
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "modules", "network", "main.tf")); string(got) != want[sha][1] {
			t.Errorf("at %.8s: modules/network/main.tf = %q, want %q", sha, got, want[sha][1])
		}
	}
	if len(dirs) != 2 {
		t.Errorf("the commits share one modules folder %v: a change to a shared folder must get its own", dirs)
	}
}

func TestModulesWithASymlinkAreRefused(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", files("3"))
	if err := os.Symlink("/etc/passwd", filepath.Join(o.Work, "components", "vpc", "passwd.tf")); err != nil {
		t.Fatal(err)
	}
	sha := o.Commit(t, "link", nil)
	src := newSource(t, o.Bare)
	if _, err := src.ModulesDir(ctx, sha); !errors.Is(err, gitrepo.ErrSymlink) || !strings.Contains(err.Error(), "passwd.tf") {
		t.Errorf("ModulesDir = %v, want ErrSymlink naming the file", err)
	}
}

// A workspace of a commit's modules is confined to them (terraform refuses module calls leaving
// the materialized folder); one of a modules folder outside the repository (KARMA_MODULES_DIR,
// an absolute path) is not.
func TestWorkspacesOfACommitsModulesAreConfined(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", files("3"))
	sha := o.Head(t)
	src := newSource(t, o.Bare)
	ws, err := terraform.Workspaces{WorkDir: t.TempDir(), Modules: src}.For(ctx, "prod/vpc/core", sha, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ws.Confine == "" || filepath.Dir(ws.ModuleDir) != ws.Confine || filepath.Dir(ws.Confine) != src.ModulesRoot {
		t.Errorf("workspace of the commit's modules: Confine %q, ModuleDir %q", ws.Confine, ws.ModuleDir)
	}
	static := t.TempDir()
	src.Settings.ModulesDir = static
	ws, err = terraform.Workspaces{WorkDir: t.TempDir(), Modules: src}.For(ctx, "prod/vpc/core", sha, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ws.Confine != "" || ws.ModuleDir != filepath.Join(static, "vpc") {
		t.Errorf("workspace of modules outside the repository: Confine %q, ModuleDir %q", ws.Confine, ws.ModuleDir)
	}
}

// A module file whose blob is a Git LFS pointer or git-crypt ciphertext — what a checkout's
// filters replace by the real content, but not the commit's objects Karma deploys — is refused
// by name, and nothing is materialized: the pointer would have been deployed as the file.
func TestModulesWithFilteredBlobsAreRefused(t *testing.T) {
	for name, content := range map[string]string{
		"lfs":       "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n",
		"git-crypt": "\x00GITCRYPT\x00\x8f\x01ciphertext",
	} {
		t.Run(name, func(t *testing.T) {
			o := gittest.NewOrigin(t, "config.git", files("3"))
			sha := o.Commit(t, "a binary", map[string]string{"components/vpc/lambda/function.zip": content})
			src := newSource(t, o.Bare)
			_, err := src.ModulesDir(ctx, sha)
			if !errors.Is(err, configrepo.ErrFilteredBlob) || !strings.Contains(err.Error(), "vpc/lambda/function.zip") {
				t.Errorf("ModulesDir = %v, want ErrFilteredBlob naming the file", err)
			}
			if entries, _ := os.ReadDir(src.ModulesRoot); len(entries) > 0 {
				t.Errorf("materialized anyway: %v", entries)
			}
		})
	}
	// A file that merely mentions LFS is a file like any other.
	o := gittest.NewOrigin(t, "config.git", files("3"))
	sha := o.Commit(t, "readme", map[string]string{"components/vpc/README.md": "see version https://git-lfs.github.com/spec/v1\n"})
	if _, err := newSource(t, o.Bare).ModulesDir(ctx, sha); err != nil {
		t.Errorf("a README mentioning LFS: %v", err)
	}
}

// A submodule in the modules folder (a module kept in another repository) is refused by name as
// a submodule: its content is not part of the commit, and nothing is materialized.
func TestModulesWithASubmoduleAreRefused(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", files("3"))
	gittest.Git(t, o.Work, "update-index", "--add", "--cacheinfo", "160000,"+o.Head(t)+",components/vpc/network")
	gittest.Git(t, o.Work, "commit", "-q", "-m", "submodule")
	gittest.Git(t, o.Work, "push", "-q", "origin", "HEAD:main")
	src := newSource(t, o.Bare)
	if _, err := src.ModulesDir(ctx, o.Head(t)); !errors.Is(err, gitrepo.ErrSubmodule) || !strings.Contains(err.Error(), "vpc/network") {
		t.Errorf("ModulesDir = %v, want ErrSubmodule naming the folder", err)
	}
	if entries, _ := os.ReadDir(src.ModulesRoot); len(entries) > 0 {
		t.Errorf("materialized anyway: %v", entries)
	}
}

func proposal(t *testing.T, src *configrepo.Source, az string) configrepo.Proposal {
	t.Helper()
	head, err := src.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return configrepo.Proposal{ID: "chg-" + az, Base: head, Files: map[string][]byte{"iac/prod/vpc/core/config.json": []byte(`{"az_count": ` + az + `}`)},
		Requester: gitrepo.Signature{Name: "Grace", Email: "grace@example.com"}, Summary: "vpc/core in prod"}
}

func TestWriterModes(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", files("3"))
	src := newSource(t, o.Bare)
	karma := gitrepo.Signature{Name: "Karma", Email: "karma@example.com"}
	now := func() time.Time { return time.Unix(1_800_000_000, 0) }

	t.Run("none refuses", func(t *testing.T) {
		w := &configrepo.Writer{Repo: src.Repo, Mode: configrepo.WriteNone}
		if _, err := w.Commit(ctx, proposal(t, src, "9")); !errors.Is(err, configrepo.ErrReadOnly) {
			t.Errorf("Commit = %v, want ErrReadOnly", err)
		}
	})
	t.Run("branch pushes to the deploy branch", func(t *testing.T) {
		w := &configrepo.Writer{Repo: src.Repo, Mode: configrepo.WriteBranch, Committer: karma, Now: now}
		p := proposal(t, src, "4")
		sha, err := w.Commit(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		gittest.Git(t, o.Work, "pull", "-q", "origin", "main")
		if got := o.Head(t); got != sha {
			t.Fatalf("main = %s, want %s", got, sha)
		}
		msg := gittest.Git(t, o.Work, "log", "-1", "--format=%an|%cn|%B")
		if !strings.HasPrefix(msg, "Grace|Karma|karma change chg-4: vpc/core in prod") || !strings.Contains(msg, "Karma-Change: chg-4") {
			t.Errorf("commit = %q", msg)
		}
	})
	t.Run("branch moved: made again on the new head", func(t *testing.T) {
		p := proposal(t, src, "5")
		other := o.Commit(t, "someone else", map[string]string{"docs/README.md": "changed\n"})
		w := &configrepo.Writer{Repo: src.Repo, Mode: configrepo.WriteBranch, Committer: karma, Now: now}
		sha, err := w.Commit(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		gittest.Git(t, o.Work, "pull", "-q", "origin", "main")
		if got := gittest.Git(t, o.Work, "rev-parse", "HEAD~1"); got != other || o.Head(t) != sha {
			t.Errorf("history: HEAD %s parent %s; want the proposal on top of %s", o.Head(t), got, other)
		}
		if got := gittest.Git(t, o.Work, "show", "HEAD:docs/README.md"); got != "changed" {
			t.Errorf("the other commit's change was lost: %q", got)
		}
	})
	t.Run("the same file changed meanwhile: conflict", func(t *testing.T) {
		p := proposal(t, src, "6")
		o.Commit(t, "someone else edits vpc", map[string]string{"iac/prod/vpc/core/config.json": `{"az_count": 7}`})
		w := &configrepo.Writer{Repo: src.Repo, Mode: configrepo.WriteBranch, Committer: karma, Now: now}
		if _, err := w.Commit(ctx, p); !errors.Is(err, configrepo.ErrConflict) || !strings.Contains(err.Error(), "iac/prod/vpc/core/config.json") {
			t.Errorf("Commit = %v, want ErrConflict naming the file", err)
		}
		gittest.Git(t, o.Work, "pull", "-q", "origin", "main")
		if got := gittest.Git(t, o.Work, "show", "HEAD:iac/prod/vpc/core/config.json"); got != `{"az_count": 7}` {
			t.Errorf("someone's commit was overwritten: %s", got)
		}
	})
	t.Run("change-branch pushes karma/change/<id>", func(t *testing.T) {
		w := &configrepo.Writer{Repo: src.Repo, Mode: configrepo.WriteChangeBranch, Committer: karma, Now: now}
		p := proposal(t, src, "8")
		sha, err := w.Commit(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if got := gittest.Git(t, o.Bare, "rev-parse", "refs/heads/karma/change/chg-8"); got != sha {
			t.Errorf("karma/change/chg-8 = %s, want %s", got, sha)
		}
	})
	t.Run("unknown mode", func(t *testing.T) {
		w := &configrepo.Writer{Repo: src.Repo, Mode: "force"}
		if _, err := w.Commit(ctx, proposal(t, src, "1")); err == nil || !strings.Contains(err.Error(), `write mode "force"`) {
			t.Errorf("Commit = %v", err)
		}
	})
}

// A modules folder written before and changed on disk since — a module that wrote under
// path.module (an archive, a rendered file), a person editing it — is not trusted because it
// was once complete: ModulesDir finds it no longer holds the tree and writes it anew, so every
// later commit with that tree deploys the commit's bytes, none of what was written there.
func TestModulesDirChangedOnDiskIsWrittenAnew(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", files("3"))
	a := o.Head(t)
	src := newSource(t, o.Bare)
	dir, err := src.ModulesDir(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(dir, "vpc", "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vpc", "main.tf"), []byte("output \"x\" { value = \"tampered\" }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vpc", "lambda.zip"), []byte("written by a plan"), 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := src.ModulesDir(ctx, a)
	if err != nil || again != dir {
		t.Fatalf("ModulesDir again = %s, %v; want %s", again, err, dir)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "vpc", "main.tf")); string(got) != string(want) {
		t.Errorf("vpc/main.tf = %q, want the commit's %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "vpc", "lambda.zip")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file the commit does not have is still there: %v", err)
	}
	if id, err := gitrepo.DirTreeID(dir, filepath.Base(dir), ".karma-complete"); err != nil || id != filepath.Base(dir) {
		t.Errorf("the folder hashes to %s, %v; want its tree %s", id, err, filepath.Base(dir))
	}
	// Nothing is left beside it (the folder moved aside, the temporary one).
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".*")); len(left) > 0 {
		t.Errorf("left in the modules root: %v", left)
	}
}
