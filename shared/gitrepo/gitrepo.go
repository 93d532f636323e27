// Package gitrepo reads the config repository at commits, with a pure-Go git implementation
// (go-git), so that the same code runs where there is no git binary (Lambda).
//
// A Repo is either a local clone (the CLI's checkout: nothing is fetched, commits are what its
// .git holds) or a cache clone of a remote (karma serve: under the state directory; Lambda:
// under /tmp) that fetches what it lacks when a commit is asked for: on each push only the
// objects that are new are transferred. Builds read a commit's tree (TreeFS), never a working
// tree, so a deployment's config is byte for byte the commit its lineage names.
//
// go-git repositories are not safe for concurrent use: every operation of a Repo, and every
// object read of its TreeFS values, holds the Repo's lock.
package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	"github.com/go-git/go-git/v5/plumbing/transport/server"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

func init() {
	// file:// URLs and local paths are served in process by go-git itself instead of by the
	// git-upload-pack binary, which a Lambda function does not have.
	client.InstallProtocol("file", server.DefaultServer)
}

// NoCommit is reported when the directory is not inside a git repository.
const NoCommit = "none"

// ErrNotRepository is returned when a directory is not inside a git repository.
var ErrNotRepository = errors.New("gitrepo: not a git repository")

// CommitNotFoundError says a commit is not in the repository, even after fetching every branch
// of the remote: an unknown sha, or a commit a force-push removed.
type CommitNotFoundError struct {
	Repo, SHA string
	Fetched   bool // the remote was fetched before giving up
}

func (e *CommitNotFoundError) Error() string {
	if e.Fetched {
		return fmt.Sprintf("repository %s: commit %s not found after fetching every branch (an unknown sha, or a force-push removed it): nothing is deployed from another tree", e.Repo, e.SHA)
	}
	return fmt.Sprintf("repository %s: commit %s not found", e.Repo, e.SHA)
}

// Repo is a config repository read at commits.
type Repo struct {
	mu     sync.Mutex
	git    *git.Repository
	remote *Remote // nil: a local clone, nothing is fetched
	sub    string  // the config repository's folder inside the git repository ("" = its top)
	label  string  // the remote without credentials, or the local path
	dir    string  // the work tree (local clone) or the cache's git directory
}

// OpenLocal opens the git repository containing dir (a checkout). When dir is a folder inside
// the repository, trees are read from that folder.
func OpenLocal(dir string) (*Repo, error) {
	found, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return nil, fmt.Errorf("%s: %w (%v)", dir, ErrNotRepository, err)
	}
	wt, err := found.Worktree()
	if err != nil {
		return nil, fmt.Errorf("%s: %w (a bare repository has no checkout: configure it as a remote instead)", dir, err)
	}
	root := realPath(wt.Filesystem.Root())
	r := found
	if st, err := os.Stat(filepath.Join(root, ".git")); err == nil && st.IsDir() {
		// Reopen with pack files kept open: reading a tree opens them once, not once an object.
		r, err = git.Open(storage(filepath.Join(root, ".git")), osfs.New(root))
		if err != nil {
			return nil, fmt.Errorf("%s: %w (%v)", dir, ErrNotRepository, err)
		}
	}
	repo := &Repo{git: r, label: dir}
	rel, err := filepath.Rel(root, realPath(dir))
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil, fmt.Errorf("%s is not inside its git repository %s", dir, root)
	}
	if rel != "." {
		repo.sub = filepath.ToSlash(rel)
	}
	repo.dir = root
	return repo, nil
}

// OpenCache opens (creating when missing) a bare cache clone of remote under dir. Nothing is
// fetched until a commit is asked for. sub is the config repository's folder inside the git
// repository ("" = its top).
func OpenCache(dir string, remote Remote, sub string) (*Repo, error) {
	if err := remote.Validate(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("repository cache %s: %w", dir, err)
		}
		if _, err := git.PlainInit(dir, true); err != nil {
			return nil, fmt.Errorf("repository cache %s: %w", dir, err)
		}
	}
	r, err := git.Open(storage(dir), nil)
	if err != nil {
		return nil, fmt.Errorf("repository cache %s: %w", dir, err)
	}
	url := localGitDir(remote.URL)
	if err := setOrigin(r, url); err != nil {
		return nil, fmt.Errorf("repository cache %s: %w", dir, err)
	}
	rm := remote
	return &Repo{git: r, remote: &rm, sub: strings.Trim(sub, "/"), label: remote.String(), dir: dir}, nil
}

// localGitDir turns a local path or file:// URL into a file:// URL of the git directory itself
// (path/.git for a repository with a work tree): go-git serves local fetches from a git
// directory. Other URLs are returned as they are.
func localGitDir(url string) string {
	path, isFile := strings.CutPrefix(url, "file://")
	if !isFile && (strings.Contains(url, "://") || !(strings.HasPrefix(url, "/") || strings.HasPrefix(url, "."))) {
		return url
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if st, err := os.Stat(filepath.Join(path, ".git")); err == nil && st.IsDir() {
		path = filepath.Join(path, ".git")
	}
	return "file://" + path
}

func setOrigin(r *git.Repository, url string) error {
	cfg, err := r.Config()
	if err != nil {
		return err
	}
	want := &config.RemoteConfig{Name: "origin", URLs: []string{url},
		Fetch: []config.RefSpec{"+refs/heads/*:refs/remotes/origin/*"}}
	if cur, ok := cfg.Remotes["origin"]; ok && len(cur.URLs) == 1 && cur.URLs[0] == url {
		return nil
	}
	cfg.Remotes["origin"] = want
	return r.SetConfig(cfg)
}

// storage is the object storage of a git directory, keeping up to 64 pack files open between
// reads (go-git otherwise opens the pack again for every object).
func storage(gitDir string) *filesystem.Storage {
	return filesystem.NewStorageWithOptions(osfs.New(gitDir), cache.NewObjectLRUDefault(), filesystem.Options{MaxOpenDescriptors: 64})
}

// Close releases the pack files the Repo keeps open.
func (r *Repo) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.git.Storer.(*filesystem.Storage); ok {
		return s.Close()
	}
	return nil
}

// String names the repository (without credentials).
func (r *Repo) String() string { return r.label }

// Dir is the local work tree (local clone) or the cache's directory.
func (r *Repo) Dir() string { return r.dir }

// Sub is the config repository's folder inside the git repository ("" = its top).
func (r *Repo) Sub() string { return r.sub }

// Local reports whether this is a local clone (nothing is fetched).
func (r *Repo) Local() bool { return r.remote == nil }

// Tree returns the config repository's tree at commit sha (fetching it first when the Repo is
// a cache and lacks it).
func (r *Repo) Tree(ctx context.Context, sha string) (*TreeFS, error) {
	c, err := r.commit(ctx, sha)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	tree, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("repository %s: commit %s: %w", r, short(sha), err)
	}
	if r.sub != "" {
		if tree, err = tree.Tree(r.sub); err != nil {
			return nil, fmt.Errorf("repository %s: commit %s has no folder %s: %w", r, short(sha), r.sub, err)
		}
	}
	return newTreeFS(&r.mu, r.git.Storer, tree, c.Committer.When, r.label+"@"+short(sha)), nil
}

// commit returns the commit object of sha, fetching it when missing.
func (r *Repo) commit(ctx context.Context, sha string) (*object.Commit, error) {
	if !isFullSHA(sha) {
		return nil, fmt.Errorf("repository %s: commit %q: want the full 40 hex digits", r, sha)
	}
	if err := r.Fetch(ctx, sha); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.git.CommitObject(plumbing.NewHash(sha))
	if err != nil {
		return nil, fmt.Errorf("repository %s: commit %s: %w", r, short(sha), err)
	}
	return c, nil
}

// has reports whether the commit object is present. Called with r.mu held.
func (r *Repo) has(sha string) bool {
	_, err := r.git.CommitObject(plumbing.NewHash(sha))
	return err == nil
}

func isFullSHA(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

func realPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		p = a
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	return p
}

// HeadCommit returns the commit HEAD points at for the repository containing dir, or NoCommit.
func HeadCommit(dir string) string {
	r, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return NoCommit
	}
	h, err := r.Head()
	if err != nil {
		return NoCommit
	}
	return h.Hash().String()
}
