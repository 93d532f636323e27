package gitrepo

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// FetchError is a fetch that failed: refused credentials, an unreachable remote, a repository
// that does not exist. It names the repository and the commit asked for, never a credential,
// and is transient: the pipeline retries it with backoff and dead-letters it with this reason.
type FetchError struct {
	Repo, SHA string
	Err       error
}

func (e *FetchError) Error() string {
	what := "fetching"
	if e.SHA != "" {
		what = "fetching commit " + e.SHA + " from"
	}
	return fmt.Sprintf("%s repository %s: %v%s", what, e.Repo, e.Err, hint(e.Err))
}
func (e *FetchError) Unwrap() error   { return e.Err }
func (e *FetchError) Transient() bool { return true }

func hint(err error) string {
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired):
		return " (the remote wants credentials: set token_file or ssh_key_file)"
	case errors.Is(err, transport.ErrAuthorizationFailed):
		return " (the remote refused the credentials: check the token's or deploy key's access)"
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return " (check the URL, and that the credentials may read it)"
	}
	return ""
}

// Fetch makes sure commit sha is in the repository. A cache that lacks it fetches every branch
// of the remote (only the objects it does not have), then, if the commit is on no branch, asks
// for it by id (servers that allow it). A local clone fetches nothing.
func (r *Repo) Fetch(ctx context.Context, sha string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.has(sha) {
		return nil
	}
	if r.remote == nil {
		return &CommitNotFoundError{Repo: r.label, SHA: sha}
	}
	if err := r.fetch(ctx, "+refs/heads/*:refs/remotes/origin/*"); err != nil {
		return &FetchError{Repo: r.label, SHA: sha, Err: err}
	}
	if r.has(sha) {
		return nil
	}
	_ = r.fetch(ctx, config.RefSpec(sha+":refs/karma/fetched/"+sha)) // refused by most servers: fine
	if r.has(sha) {
		return nil
	}
	return &CommitNotFoundError{Repo: r.label, SHA: sha, Fetched: true}
}

// fetch runs one fetch of specs. Called with r.mu held.
func (r *Repo) fetch(ctx context.Context, specs ...config.RefSpec) error {
	auth, err := r.remote.auth()
	if err != nil {
		return err
	}
	err = r.git.FetchContext(ctx, &git.FetchOptions{RemoteName: "origin", RefSpecs: specs, Auth: auth, Tags: git.NoTags, Force: true})
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	return err
}

// Head returns the commit the deploy branch points at: for a cache, on the remote (fetched
// now); for a local clone, HEAD of its checkout.
func (r *Repo) Head(ctx context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.remote == nil {
		h, err := r.git.Head()
		if err != nil {
			return "", fmt.Errorf("repository %s: HEAD: %w", r.label, err)
		}
		return h.Hash().String(), nil
	}
	branch := r.remote.BranchOrDefault()
	spec := config.RefSpec("+refs/heads/" + branch + ":refs/remotes/origin/" + branch)
	if err := r.fetch(ctx, spec); err != nil {
		return "", &FetchError{Repo: r.label, Err: fmt.Errorf("branch %s: %w", branch, err)}
	}
	ref, err := r.git.Reference(plumbing.NewRemoteReferenceName("origin", branch), true)
	if err != nil {
		return "", fmt.Errorf("repository %s: branch %s: %w", r.label, branch, err)
	}
	return ref.Hash().String(), nil
}

// Branch is the deploy branch: the configured branch of a cache, the checked-out branch of a
// local clone ("" when HEAD is detached).
func (r *Repo) Branch() string {
	if r.remote != nil {
		return r.remote.BranchOrDefault()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	h, err := r.git.Head()
	if err != nil || !h.Name().IsBranch() {
		return ""
	}
	return h.Name().Short()
}
