package gitrepo

import (
	"fmt"
	"sort"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Change is one file a commit changed, relative to the repository root.
type Change struct {
	Path    string
	Removed bool
}

// CommitInfo describes a commit and what it changed against its first parent (everything, for
// a root commit).
type CommitInfo struct {
	SHA     string
	Author  string // "Name <email>"
	Message string
	Files   []Change
}

// ReadCommit reads rev (a sha, branch, tag or "HEAD") of the repository containing dir.
func ReadCommit(dir, rev string) (CommitInfo, error) {
	r, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return CommitInfo{}, fmt.Errorf("%s: %w (%v)", dir, ErrNotRepository, err)
	}
	h, err := r.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return CommitInfo{}, fmt.Errorf("%s: revision %q: %w", dir, rev, err)
	}
	c, err := r.CommitObject(*h)
	if err != nil {
		return CommitInfo{}, fmt.Errorf("%s: commit %s: %w", dir, h, err)
	}
	info := CommitInfo{SHA: c.Hash.String(), Author: fmt.Sprintf("%s <%s>", c.Author.Name, c.Author.Email), Message: c.Message}
	tree, err := c.Tree()
	if err != nil {
		return info, err
	}
	var parentTree *object.Tree
	if c.NumParents() > 0 {
		p, err := c.Parent(0)
		if err != nil {
			return info, err
		}
		if parentTree, err = p.Tree(); err != nil {
			return info, err
		}
	}
	changes, err := object.DiffTree(parentTree, tree)
	if err != nil {
		return info, err
	}
	for _, ch := range changes {
		if ch.To.Name == "" {
			info.Files = append(info.Files, Change{Path: ch.From.Name, Removed: true})
			continue
		}
		info.Files = append(info.Files, Change{Path: ch.To.Name})
		if ch.From.Name != "" && ch.From.Name != ch.To.Name {
			info.Files = append(info.Files, Change{Path: ch.From.Name, Removed: true})
		}
	}
	sort.Slice(info.Files, func(i, j int) bool { return info.Files[i].Path < info.Files[j].Path })
	return info, nil
}

// Root returns the top folder of the repository containing dir.
func Root(dir string) (string, error) {
	r, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return "", fmt.Errorf("%s: %w", dir, ErrNotRepository)
	}
	wt, err := r.Worktree()
	if err != nil {
		return "", err
	}
	return wt.Filesystem.Root(), nil
}
