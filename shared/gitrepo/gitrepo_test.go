package gitrepo_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
)

var ctx = context.Background()

func configFiles(az string) map[string]string {
	return map[string]string{
		"karma.json":                        `{"prefix": "/iac"}`,
		"iac/prod/vpc/core/config.json":     `{"az_count": ` + az + `}`,
		"iac/prod/subnet/app/config.json":   `{"vpc_nickname": "core"}`,
		"components/vpc/main.tf":            `variable "config" {}`,
		"components/vpc/config.schema.json": `{"type": "object"}`,
	}
}

func readConfig(t *testing.T, fsys fs.FS) string {
	t.Helper()
	data, err := fs.ReadFile(fsys, "iac/prod/vpc/core/config.json")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestTreeFSIsTheCommitNotTheWorkingTree(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", configFiles("4"))
	a := o.Head(t)
	b := o.Commit(t, "five", map[string]string{"iac/prod/vpc/core/config.json": `{"az_count": 5}`})
	// An uncommitted edit in the checkout must not be read.
	os.WriteFile(filepath.Join(o.Work, "iac/prod/vpc/core/config.json"), []byte(`{"az_count": 99}`), 0o644)
	r, err := gitrepo.OpenLocal(o.Work)
	if err != nil {
		t.Fatal(err)
	}
	for sha, want := range map[string]string{a: `{"az_count": 4}`, b: `{"az_count": 5}`} {
		fsys, err := r.Tree(ctx, sha)
		if err != nil {
			t.Fatal(err)
		}
		if got := readConfig(t, fsys); got != want {
			t.Errorf("commit %s: config %s, want %s", sha[:8], got, want)
		}
		if err := fstest.TestFS(fsys, "karma.json", "iac/prod/vpc/core/config.json", "components/vpc/main.tf"); err != nil {
			t.Errorf("commit %s: %v", sha[:8], err)
		}
	}
}

func TestTreeFSRefusesSymlinks(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", configFiles("4"))
	secret := filepath.Join(t.TempDir(), "secrets.json")
	os.WriteFile(secret, []byte(`{"token": "s3cret"}`), 0o600)
	os.MkdirAll(filepath.Join(o.Work, "iac/prod/vpc/evil"), 0o755)
	if err := os.Symlink(secret, filepath.Join(o.Work, "iac/prod/vpc/evil/config.json")); err != nil {
		t.Fatal(err)
	}
	os.Symlink("prod", filepath.Join(o.Work, "iac/qa"))
	sha := o.Commit(t, "links", nil)
	r, err := gitrepo.OpenLocal(o.Work)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := r.Tree(ctx, sha)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"iac/prod/vpc/evil/config.json", "iac/qa/vpc/core/config.json"} {
		_, err := fs.ReadFile(fsys, name)
		if !errors.Is(err, gitrepo.ErrSymlink) {
			t.Errorf("ReadFile(%s) = %v, want ErrSymlink", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error shows the link's target content: %v", err)
		}
	}
	fi, err := fs.Lstat(fsys, "iac/prod/vpc/evil/config.json")
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("Lstat = %v, %v; want a symlink", fi, err)
	}
	entries, err := fs.ReadDir(fsys, "iac")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "qa" && e.Type()&fs.ModeSymlink == 0 {
			t.Errorf("iac/qa listed as %v, want a symlink", e.Type())
		}
	}
}

func TestFetchOverHTTPWithToken(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", configFiles("4"))
	root := filepath.Dir(o.Bare)
	srv := gittest.NewHTTPServer(t, root, "tok-123")
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("tok-123\n"), 0o600)
	remote := gitrepo.Remote{URL: srv.RepoURL(root, o.Bare), TokenFile: tokenFile}
	cache, err := gitrepo.OpenCache(filepath.Join(t.TempDir(), "cache"), remote, "")
	if err != nil {
		t.Fatal(err)
	}
	a := o.Head(t)
	fsys, err := cache.Tree(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if got := readConfig(t, fsys); got != `{"az_count": 4}` {
		t.Errorf("config at A = %s", got)
	}
	// A warm cache fetches the pushed commit.
	b := o.Commit(t, "five", map[string]string{"iac/prod/vpc/core/config.json": `{"az_count": 5}`})
	before := srv.Requests.Load()
	fsys, err = cache.Tree(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if got := readConfig(t, fsys); got != `{"az_count": 5}` {
		t.Errorf("config at B = %s", got)
	}
	if srv.Requests.Load() == before {
		t.Error("B was read without fetching")
	}
	// A commit already in the cache is not fetched again.
	before = srv.Requests.Load()
	if _, err := cache.Tree(ctx, a); err != nil {
		t.Fatal(err)
	}
	if n := srv.Requests.Load() - before; n != 0 {
		t.Errorf("reading a cached commit made %d requests", n)
	}
	head, err := cache.Head(ctx)
	if err != nil || head != b {
		t.Errorf("Head = %s, %v; want %s", head, err, b)
	}
	changes, err := cache.Diff(ctx, a, b)
	if err != nil || len(changes) != 1 || changes[0].Path != "iac/prod/vpc/core/config.json" {
		t.Errorf("Diff(A, B) = %v, %v", changes, err)
	}
	if ok, err := cache.IsAncestor(ctx, a, b); !ok || err != nil {
		t.Errorf("IsAncestor(A, B) = %v, %v", ok, err)
	}
	if ok, err := cache.IsAncestor(ctx, b, a); ok || err != nil {
		t.Errorf("IsAncestor(B, A) = %v, %v", ok, err)
	}
}

func TestFetchFailuresNameRepositoryAndCommit(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", configFiles("4"))
	root := filepath.Dir(o.Bare)
	srv := gittest.NewHTTPServer(t, root, "right-token")
	dir := t.TempDir()
	wrong := filepath.Join(dir, "wrong")
	os.WriteFile(wrong, []byte("wrong-token"), 0o600)
	right := filepath.Join(dir, "right")
	os.WriteFile(right, []byte("right-token"), 0o600)
	sha := o.Head(t)
	unknown := strings.Repeat("ab", 20)

	open := func(t *testing.T, r gitrepo.Remote) *gitrepo.Repo {
		c, err := gitrepo.OpenCache(filepath.Join(t.TempDir(), "cache"), r, "")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// A port that refuses connections: listen, note the address, close.
	closed := gittest.ClosedPort(t)
	cases := []struct {
		name   string
		remote gitrepo.Remote
		sha    string
		want   []string
	}{
		{"refused credentials", gitrepo.Remote{URL: srv.RepoURL(root, o.Bare), TokenFile: wrong}, sha, []string{srv.RepoURL(root, o.Bare), sha, "credentials"}},
		{"no credentials", gitrepo.Remote{URL: srv.RepoURL(root, o.Bare)}, sha, []string{sha, "set token_file"}},
		{"unreachable remote", gitrepo.Remote{URL: "http://" + closed + "/config.git", TokenFile: right}, sha, []string{closed, sha}},
		{"unknown sha", gitrepo.Remote{URL: srv.RepoURL(root, o.Bare), TokenFile: right}, unknown, []string{srv.RepoURL(root, o.Bare), unknown, "not found"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := open(t, tc.remote).Tree(ctx, tc.sha)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			for _, secret := range []string{"wrong-token", "right-token"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows the token", err)
				}
			}
		})
	}
}

func TestForcePushRemovedCommitIsNotFound(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", configFiles("4"))
	a := o.Head(t)
	cache, err := gitrepo.OpenCache(filepath.Join(t.TempDir(), "cache"), gitrepo.Remote{URL: o.Bare}, "")
	if err != nil {
		t.Fatal(err)
	}
	b := o.Commit(t, "five", map[string]string{"iac/prod/vpc/core/config.json": `{"az_count": 5}`})
	gittest.Git(t, o.Work, "reset", "-q", "--hard", a)
	gittest.Git(t, o.Work, "push", "-q", "--force", "origin", "HEAD:main")
	gittest.Git(t, o.Bare, "reflog", "expire", "--expire=now", "--all")
	gittest.Git(t, o.Bare, "gc", "-q", "--prune=now")
	_, err = cache.Tree(ctx, b)
	var nf *gitrepo.CommitNotFoundError
	if !errors.As(err, &nf) || !nf.Fetched || nf.SHA != b {
		t.Fatalf("Tree(removed commit) = %v, want CommitNotFoundError after a fetch", err)
	}
	if !strings.Contains(err.Error(), "force-push") {
		t.Errorf("error %q does not say what may have happened", err)
	}
}

func TestFetchOverSSHWithDeployKey(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", configFiles("4"))
	srv := gittest.NewSSHServer(t)
	remote := gitrepo.Remote{URL: srv.RepoURL(o.Bare), SSHKeyFile: srv.KeyFile, KnownHostsFile: srv.KnownHostsFile}
	cache, err := gitrepo.OpenCache(filepath.Join(t.TempDir(), "cache"), remote, "")
	if err != nil {
		t.Fatal(err)
	}
	b := o.Commit(t, "five", map[string]string{"iac/prod/vpc/core/config.json": `{"az_count": 5}`})
	fsys, err := cache.Tree(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if got := readConfig(t, fsys); got != `{"az_count": 5}` {
		t.Errorf("config = %s", got)
	}
	// A host key that is not the pinned one is refused.
	other := gittest.NewSSHServer(t)
	bad := gitrepo.Remote{URL: srv.RepoURL(o.Bare), SSHKeyFile: srv.KeyFile, KnownHostsFile: other.KnownHostsFile}
	c2, err := gitrepo.OpenCache(filepath.Join(t.TempDir(), "cache"), bad, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Tree(ctx, b); err == nil {
		t.Error("a server whose host key is not pinned was trusted")
	}
}

func TestFetchFromPathAndFileURL(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", configFiles("4"))
	sha := o.Head(t)
	for _, url := range []string{o.Bare, "file://" + o.Bare} {
		cache, err := gitrepo.OpenCache(filepath.Join(t.TempDir(), "cache"), gitrepo.Remote{URL: url}, "")
		if err != nil {
			t.Fatal(err)
		}
		fsys, err := cache.Tree(ctx, sha)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		if got := readConfig(t, fsys); got != `{"az_count": 4}` {
			t.Errorf("%s: config = %s", url, got)
		}
	}
}

func TestRemoteRefusesCredentialsInURL(t *testing.T) {
	for _, url := range []string{"https://user:ghp_secret@example.com/o/r.git", "https://ghp_secret@example.com/o/r.git"} {
		r := gitrepo.Remote{URL: url}
		err := r.Validate()
		if !errors.Is(err, gitrepo.ErrCredentialsInURL) {
			t.Errorf("%s: Validate = %v", url, err)
		}
		if err != nil && strings.Contains(err.Error(), "ghp_secret") {
			t.Errorf("the error shows the credential: %v", err)
		}
		if strings.Contains(r.String(), "ghp_secret") {
			t.Errorf("String shows the credential: %s", r.String())
		}
	}
}

func TestCommitFilesAndPush(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", configFiles("4"))
	root := filepath.Dir(o.Bare)
	srv := gittest.NewHTTPServer(t, root, "tok")
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("tok"), 0o600)
	cache, err := gitrepo.OpenCache(filepath.Join(t.TempDir(), "cache"), gitrepo.Remote{URL: srv.RepoURL(root, o.Bare), TokenFile: tokenFile}, "")
	if err != nil {
		t.Fatal(err)
	}
	head, err := cache.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	who := gitrepo.Signature{Name: "ada", Email: "ada@example.com"}
	karma := gitrepo.Signature{Name: "Karma", Email: "karma@localhost"}
	files := map[string][]byte{"iac/prod/vpc/core/config.json": []byte(`{"az_count": 6}`), "iac/prod/vpc/new/config.json": []byte(`{}`)}
	sha, err := cache.CommitFiles(ctx, head, files, who, karma, "karma change c1", time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.Push(ctx, sha, "main"); err != nil {
		t.Fatal(err)
	}
	gittest.Git(t, o.Work, "pull", "-q", "origin", "main")
	if got := gittest.Git(t, o.Work, "rev-parse", "HEAD"); got != sha {
		t.Errorf("remote main = %s, want %s", got, sha)
	}
	if got := gittest.Git(t, o.Work, "log", "-1", "--format=%an <%ae>|%cn|%s"); got != "ada <ada@example.com>|Karma|karma change c1" {
		t.Errorf("commit = %s", got)
	}
	if got := gittest.Git(t, o.Work, "show", "HEAD:iac/prod/vpc/core/config.json"); got != `{"az_count": 6}` {
		t.Errorf("file = %s", got)
	}
	gittest.Git(t, o.Work, "fsck", "--strict") // the trees Karma wrote are well formed
	// Someone pushes in between: a second push on the old head is refused, nothing is forced.
	o.Commit(t, "someone else", map[string]string{"README.md": "hi"})
	stale, err := cache.CommitFiles(ctx, sha, map[string][]byte{"iac/prod/vpc/core/config.json": []byte(`{"az_count": 7}`)}, who, karma, "karma change c2", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.Push(ctx, stale, "main"); !errors.Is(err, gitrepo.ErrBranchMoved) {
		t.Errorf("push on a moved branch = %v, want ErrBranchMoved", err)
	}
	// A change branch of its own is always a fast-forward.
	if err := cache.Push(ctx, stale, "karma/change/c2"); err != nil {
		t.Fatalf("push to a new branch: %v", err)
	}
	// A remote that may not be written refuses, and the error names repository and branch.
	gittest.Git(t, o.Bare, "config", "http.receivepack", "false")
	err = cache.Push(ctx, stale, "karma/change/c3")
	var pe *gitrepo.PushError
	if !errors.As(err, &pe) || pe.Branch != "karma/change/c3" || !strings.Contains(err.Error(), srv.RepoURL(root, o.Bare)) {
		t.Errorf("push to a read-only remote = %v, want a PushError naming it", err)
	}
}

func TestCommitCheckout(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", configFiles("4"))
	r, err := gitrepo.OpenLocal(o.Work)
	if err != nil {
		t.Fatal(err)
	}
	who := gitrepo.Signature{Name: "ada", Email: "ada@example.com"}
	path := "iac/prod/vpc/core/config.json"
	// An uncommitted edit of the file is never overwritten.
	os.WriteFile(filepath.Join(o.Work, path), []byte(`{"az_count": 99}`), 0o644)
	if _, err := r.CommitCheckout(ctx, map[string][]byte{path: []byte(`{"az_count": 6}`)}, who, who, "c", time.Now()); !errors.Is(err, gitrepo.ErrDirty) {
		t.Fatalf("commit over a dirty file = %v, want ErrDirty", err)
	}
	gittest.Git(t, o.Work, "checkout", "-q", "--", path)
	// Another file's staged change stays staged, out of Karma's commit.
	os.WriteFile(filepath.Join(o.Work, "README.md"), []byte("draft"), 0o644)
	gittest.Git(t, o.Work, "add", "README.md")
	sha, err := r.CommitCheckout(ctx, map[string][]byte{path: []byte(`{"az_count": 6}`)}, who, who, "karma change c1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := gittest.Git(t, o.Work, "rev-parse", "HEAD"); got != sha {
		t.Errorf("HEAD = %s, want %s", got, sha)
	}
	if got := gittest.Git(t, o.Work, "show", "--name-only", "--format=", "HEAD"); got != path {
		t.Errorf("the commit holds %q, want only %s", got, path)
	}
	if got := gittest.Git(t, o.Work, "status", "--porcelain"); got != "A  README.md" {
		t.Errorf("git status = %q, want only the staged README", got)
	}
}

// A commit is on a branch while the branch's tip is it or descends from it. Once a force push
// rewinds the branch past it, it is not, though the cache holds it still (fetched before); a
// branch that does not exist holds nothing. The same from a local clone's own refs.
func TestOnBranchAfterAForcePush(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", configFiles("4"))
	a := o.Head(t)
	b := o.Commit(t, "five", map[string]string{"iac/prod/vpc/core/config.json": `{"az_count": 5}`})
	cache, err := gitrepo.OpenCache(filepath.Join(t.TempDir(), "cache"), gitrepo.Remote{URL: o.Bare, Branch: "main"}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	local, err := gitrepo.OpenLocal(o.Work)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	check := func(when string, r *gitrepo.Repo, sha, branch string, want bool) {
		t.Helper()
		got, err := r.OnBranch(ctx, sha, branch)
		if err != nil || got != want {
			t.Errorf("%s: %s on %q = %v, %v; want %v", when, sha[:8], branch, got, err, want)
		}
	}
	if err := cache.Fetch(ctx, b); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*gitrepo.Repo{cache, local} {
		check("before the force push", r, a, "main", true)
		check("before the force push", r, b, "main", true)
		check("before the force push", r, b, "", true)
		check("a branch that does not exist", r, a, "nope", false)
	}
	// main rewound past b, and a new commit c on it.
	gittest.Git(t, o.Work, "reset", "-q", "--hard", a)
	if err := os.WriteFile(filepath.Join(o.Work, "iac/prod/vpc/core/config.json"), []byte(`{"az_count": 6}`), 0o644); err != nil {
		t.Fatal(err)
	}
	gittest.Git(t, o.Work, "commit", "-q", "-am", "six")
	gittest.Git(t, o.Work, "push", "-q", "-f", "origin", "HEAD:main")
	c := o.Head(t)
	if _, err := cache.Tree(ctx, b); err != nil {
		t.Fatalf("the cache lost b: %v", err)
	}
	for _, r := range []*gitrepo.Repo{cache, local} {
		check("after the force push", r, b, "main", false)
		check("after the force push", r, b, "", false)
		check("after the force push", r, a, "main", true)
		check("after the force push", r, c, "main", true)
	}
}

// Authors lists who wrote the commits a push brought (git log before..after), merged branches
// included, each once: what resolve asks when a push's payload listed only part of its commits.
func TestAuthorsOfTheCommitsBetween(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", configFiles("4"))
	commitBy := func(who, file string) string {
		t.Helper()
		if err := os.WriteFile(filepath.Join(o.Work, file), []byte(who), 0o644); err != nil {
			t.Fatal(err)
		}
		gittest.Git(t, o.Work, "add", "-A")
		gittest.Git(t, o.Work, "commit", "-q", "--author="+who+" <"+strings.ToLower(who)+"@example.com>", "-m", who)
		return o.Head(t)
	}
	a := o.Head(t)
	commitBy("Mallory", "m.txt")
	c := commitBy("Ada", "a.txt")
	gittest.Git(t, o.Work, "checkout", "-q", "-b", "side", a)
	commitBy("Carol", "c.txt")
	gittest.Git(t, o.Work, "checkout", "-q", "main")
	gittest.Git(t, o.Work, "merge", "-q", "--no-edit", "side")
	gittest.Git(t, o.Work, "commit", "-q", "--amend", "--no-edit", "--author=Ada <ada@example.com>")
	merge := o.Head(t)
	gittest.Git(t, o.Work, "push", "-q", "origin", "HEAD:main")
	r, err := gitrepo.OpenLocal(o.Work)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, tc := range []struct {
		before, after string
		want          []string
	}{
		{a, c, []string{"Ada <ada@example.com>", "Mallory <mallory@example.com>"}},
		{c, merge, []string{"Ada <ada@example.com>", "Carol <carol@example.com>"}},
		{merge, merge, nil},
	} {
		got, err := r.Authors(ctx, tc.before, tc.after)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Authors(%.8s, %.8s) = %q, %v; want %q", tc.before, tc.after, got, err, tc.want)
		}
	}
	// What karma ingest commit names: the commits of the head's history up to those handed over
	// already, along every line of a merge; with none handed over, the whole history.
	first := gittest.Git(t, o.Work, "log", "--format=%an <%ae>", "-1", a)
	for _, tc := range []struct {
		known, bases []string
		want         []string
	}{
		{[]string{a, c}, sortedOnce(a, c), []string{"Ada <ada@example.com>", "Carol <carol@example.com>"}},
		{[]string{c}, []string{c}, sortedOnce("Ada <ada@example.com>", "Carol <carol@example.com>", strings.TrimSpace(first))},
		{nil, nil, sortedOnce("Ada <ada@example.com>", "Carol <carol@example.com>", "Mallory <mallory@example.com>", strings.TrimSpace(first))},
	} {
		got, bases, err := r.AuthorsSince(ctx, merge, func(sha string) (bool, error) { return slices.Contains(tc.known, sha), nil })
		if err != nil || !slices.Equal(got, tc.want) || !slices.Equal(bases, tc.bases) {
			t.Errorf("AuthorsSince(%.8s) knowing %.8s = %q, bases %.8s, %v; want %q, bases %.8s", merge, tc.known, got, bases, err, tc.want, tc.bases)
		}
	}
}

func sortedOnce(s ...string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// ReadFileBefore reads a file as the commit's first parent has it; a file the commit added, or a
// commit without a parent, has no such version. LookupFileAt reads it as the commit has it.
func TestReadFileBefore(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", configFiles("4"))
	first := o.Head(t)
	if err := os.WriteFile(filepath.Join(o.Work, "iac/prod/vpc/core/config.json"), []byte(`{"az_count": 5}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(o.Work, "new.json"), []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	gittest.Git(t, o.Work, "add", "-A")
	gittest.Git(t, o.Work, "commit", "-q", "-m", "five")
	second := o.Head(t)
	r, err := gitrepo.OpenLocal(o.Work)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if data, found, err := r.ReadFileBefore(ctx, second, "iac/prod/vpc/core/config.json"); err != nil || !found || string(data) != `{"az_count": 4}` {
		t.Errorf("before %.8s: %q, %v, %v; want the first commit's", second, data, found, err)
	}
	if data, found, err := r.ReadFileBefore(ctx, second, "new.json"); err != nil || found {
		t.Errorf("a file the commit added: %q, %v, %v; want none", data, found, err)
	}
	if data, found, err := r.ReadFileBefore(ctx, first, "iac/prod/vpc/core/config.json"); err != nil || found {
		t.Errorf("before the first commit: %q, %v, %v; want none", data, found, err)
	}
	if data, found, err := r.LookupFileAt(ctx, second, "iac/prod/vpc/core/config.json"); err != nil || !found || string(data) != `{"az_count": 5}` {
		t.Errorf("at %.8s: %q, %v, %v; want its own", second, data, found, err)
	}
	if data, found, err := r.LookupFileAt(ctx, first, "new.json"); err != nil || found {
		t.Errorf("a file the commit does not have: %q, %v, %v; want none", data, found, err)
	}
}
