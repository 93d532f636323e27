package gitrepo

import (
	"context"
	"fmt"

	"github.com/go-git/go-git/v5"
)

// ReadCommit reads rev (a sha, branch, tag or "HEAD") of the repository containing dir, with
// the files it changed relative to the top of the git repository.
func ReadCommit(dir, rev string) (CommitInfo, error) {
	r, err := openTop(dir)
	if err != nil {
		return CommitInfo{}, err
	}
	sha, err := r.Resolve(rev)
	if err != nil {
		return CommitInfo{}, err
	}
	return r.CommitInfo(context.Background(), sha)
}

// Root returns the top folder of the repository containing dir.
func Root(dir string) (string, error) {
	r, err := OpenLocal(dir)
	if err != nil {
		return "", err
	}
	return r.Dir(), nil
}

// DiffRange lists the files that differ between two commits of the repository containing dir,
// relative to the top of the git repository.
func DiffRange(dir, before, after string) ([]Change, error) {
	r, err := openTop(dir)
	if err != nil {
		return nil, err
	}
	return r.Diff(context.Background(), before, after)
}

// openTop opens the repository containing dir with paths relative to its top folder.
func openTop(dir string) (*Repo, error) {
	r, err := OpenLocal(dir)
	if err != nil {
		return nil, err
	}
	if _, err := git.PlainOpen(r.Dir()); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, ErrNotRepository)
	}
	r.sub = ""
	return r, nil
}
