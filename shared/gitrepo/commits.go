package gitrepo

import (
	"fmt"
	"sort"
	"strings"

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

// DiffRange lists the files that differ between two commits of the repository containing dir
// (before may be all zeros or "" for a new branch: everything in after counts as changed). It is
// what a push whose payload truncated its commits or file lists is turned into.
func DiffRange(dir, before, after string) ([]Change, error) {
	r, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return nil, fmt.Errorf("%s: %w (%v)", dir, ErrNotRepository, err)
	}
	tree := func(rev string) (*object.Tree, error) {
		if rev == "" || strings.Trim(rev, "0") == "" {
			return nil, nil
		}
		h, err := r.ResolveRevision(plumbing.Revision(rev))
		if err != nil {
			return nil, fmt.Errorf("%s: revision %q: %w", dir, rev, err)
		}
		c, err := r.CommitObject(*h)
		if err != nil {
			return nil, fmt.Errorf("%s: commit %s: %w", dir, rev, err)
		}
		return c.Tree()
	}
	from, err := tree(before)
	if err != nil {
		return nil, err
	}
	to, err := tree(after)
	if err != nil {
		return nil, err
	}
	changes, err := object.DiffTree(from, to)
	if err != nil {
		return nil, err
	}
	var out []Change
	for _, ch := range changes {
		switch {
		case ch.To.Name == "":
			out = append(out, Change{Path: ch.From.Name, Removed: true})
		case ch.From.Name != "" && ch.From.Name != ch.To.Name:
			out = append(out, Change{Path: ch.From.Name, Removed: true}, Change{Path: ch.To.Name})
		default:
			out = append(out, Change{Path: ch.To.Name})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}
