package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Change is one file a commit changed, relative to the config repository's folder.
type Change struct {
	Path    string
	Removed bool
}

// CommitInfo describes a commit and what it changed against its first parent (everything, for
// a root commit).
type CommitInfo struct {
	SHA     string
	Parent  string // first parent, "" for a root commit
	Author  string // "Name <email>"
	Message string
	Files   []Change
}

// Resolve turns a revision (sha, branch, tag, "HEAD", "HEAD~1") into a full commit sha. It
// reads what the repository holds; a cache is not fetched for it.
func (r *Repo) Resolve(rev string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, err := r.git.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return "", fmt.Errorf("repository %s: revision %q: %w", r.label, rev, err)
	}
	return h.String(), nil
}

// CommitInfo reads commit sha and the files it changed against its first parent.
func (r *Repo) CommitInfo(ctx context.Context, sha string) (CommitInfo, error) {
	c, err := r.commit(ctx, sha)
	if err != nil {
		return CommitInfo{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	info := CommitInfo{SHA: c.Hash.String(), Author: fmt.Sprintf("%s <%s>", c.Author.Name, c.Author.Email), Message: c.Message}
	tree, err := c.Tree()
	if err != nil {
		return info, err
	}
	var parentTree *object.Tree
	if c.NumParents() > 0 {
		p, err := c.Parent(0)
		if err != nil {
			return info, fmt.Errorf("repository %s: parent of %s: %w", r.label, short(sha), err)
		}
		info.Parent = p.Hash.String()
		if parentTree, err = p.Tree(); err != nil {
			return info, err
		}
	}
	info.Files, err = r.diffTrees(parentTree, tree)
	return info, err
}

// Diff lists the files that differ between two commits (before may be "" or all zeros for a new
// branch: everything in after counts as changed). It is what a push whose payload truncated its
// commits or file lists is turned into. Both commits are fetched when missing.
func (r *Repo) Diff(ctx context.Context, before, after string) ([]Change, error) {
	var from *object.Tree
	if before != "" && strings.Trim(before, "0") != "" {
		c, err := r.commit(ctx, before)
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		from, err = c.Tree()
		r.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	c, err := r.commit(ctx, after)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	to, err := c.Tree()
	if err != nil {
		return nil, err
	}
	return r.diffTrees(from, to)
}

// diffTrees lists changed paths relative to r.sub (paths outside it are left out). Called with
// r.mu held.
func (r *Repo) diffTrees(from, to *object.Tree) ([]Change, error) {
	changes, err := object.DiffTree(from, to)
	if err != nil {
		return nil, err
	}
	var out []Change
	add := func(p string, removed bool) {
		if r.sub != "" {
			var ok bool
			if p, ok = strings.CutPrefix(p, r.sub+"/"); !ok {
				return
			}
		}
		out = append(out, Change{Path: p, Removed: removed})
	}
	for _, ch := range changes {
		switch {
		case ch.To.Name == "":
			add(ch.From.Name, true)
		case ch.From.Name != "" && ch.From.Name != ch.To.Name:
			add(ch.From.Name, true)
			add(ch.To.Name, false)
		default:
			add(ch.To.Name, false)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Authors lists the authors ("Name <email>") of the commits after has that before has not —
// git log before..after —, sorted, each once: who wrote what a push from before to after
// brought, when its payload listed only part of its commits. Both commits are fetched when
// missing. It reads before's whole history once.
func (r *Repo) Authors(ctx context.Context, before, after string) ([]string, error) {
	cb, err := r.commit(ctx, before)
	if err != nil {
		return nil, err
	}
	ca, err := r.commit(ctx, after)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	had := map[plumbing.Hash]bool{}
	err = object.NewCommitPreorderIter(cb, nil, nil).ForEach(func(c *object.Commit) error {
		had[c.Hash] = true
		return ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("repository %s: the history of %s: %w", r.label, short(before), err)
	}
	out, _, err := authorsUntil(ctx, ca, func(h plumbing.Hash) (bool, error) { return had[h], nil })
	if err != nil {
		return nil, fmt.Errorf("repository %s: the commits of %s..%s: %w", r.label, short(before), short(after), err)
	}
	return out, nil
}

// AuthorsSince lists the authors of after and of every commit of its history up to the commits
// known says were handed over already (ingested: their change is recorded) — the commits after
// brings that were never handed over, as a push from the branch's previous head lists them —,
// sorted, each once, and those known commits (bases, sorted: what after is diffed against; none
// when no commit of its history is known). A known commit ends the walk along its line (its
// history was handed over with it); after itself is always counted, and a history without a
// known commit is counted whole. known is called with the repository locked: it must not call
// the Repo.
func (r *Repo) AuthorsSince(ctx context.Context, after string, known func(sha string) (bool, error)) (authors, bases []string, err error) {
	ca, err := r.commit(ctx, after)
	if err != nil {
		return nil, nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	authors, stopped, err := authorsUntil(ctx, ca, func(h plumbing.Hash) (bool, error) {
		if h == ca.Hash {
			return false, nil
		}
		return known(h.String())
	})
	if err != nil {
		return nil, nil, fmt.Errorf("repository %s: the commits of %s not handed over before: %w", r.label, short(after), err)
	}
	for _, h := range stopped {
		bases = append(bases, h.String())
	}
	sort.Strings(bases)
	return authors, bases, nil
}

// authorsUntil lists, sorted and each once, the authors of from and of its ancestors, not
// walking past a commit stop says to stop at (nor counting it), and the commits it stopped at.
// Called with r.mu held.
func authorsUntil(ctx context.Context, from *object.Commit, stop func(plumbing.Hash) (bool, error)) ([]string, []plumbing.Hash, error) {
	seen := map[string]bool{}
	var out []string
	var stopped []plumbing.Hash
	visited := map[plumbing.Hash]bool{}
	todo := []*object.Commit{from}
	for len(todo) > 0 {
		c := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if visited[c.Hash] {
			continue
		}
		visited[c.Hash] = true
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if end, err := stop(c.Hash); err != nil {
			return nil, nil, err
		} else if end {
			stopped = append(stopped, c.Hash)
			continue
		}
		if a := fmt.Sprintf("%s <%s>", c.Author.Name, c.Author.Email); !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
		err := c.Parents().ForEach(func(p *object.Commit) error {
			if !visited[p.Hash] {
				todo = append(todo, p)
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	sort.Strings(out)
	return out, stopped, nil
}

// IsAncestor reports whether commit a is an ancestor of (or the same as) commit b.
func (r *Repo) IsAncestor(ctx context.Context, a, b string) (bool, error) {
	ca, err := r.commit(ctx, a)
	if err != nil {
		return false, err
	}
	cb, err := r.commit(ctx, b)
	if err != nil {
		return false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return ca.IsAncestor(cb)
}

// OnBranch reports whether commit sha is on branch now: its tip or an ancestor of it. For a
// cache the branch is read from the remote (fetched now), for a local clone from its own refs;
// "" is the deploy branch (Branch; a local clone with a detached HEAD: HEAD). A branch that does
// not exist (deleted) holds no commit. A commit a force push removed from the branch is not on
// it, though the repository may still hold it (fetched before, or by id).
func (r *Repo) OnBranch(ctx context.Context, sha, branch string) (bool, error) {
	if !isFullSHA(sha) {
		return false, fmt.Errorf("repository %s: commit %q: want the full 40 hex digits", r, sha)
	}
	tip, found, err := r.branchTip(ctx, branch)
	if err != nil || !found {
		return false, err
	}
	if tip == sha {
		return true, nil
	}
	return r.IsAncestor(ctx, sha, tip)
}

// branchTip is the commit branch points at (see OnBranch); found is false when it does not exist.
func (r *Repo) branchTip(ctx context.Context, branch string) (tip string, found bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var name plumbing.ReferenceName
	if r.remote == nil {
		name = plumbing.HEAD
		if branch != "" {
			name = plumbing.NewBranchReferenceName(branch)
		}
	} else {
		if branch == "" {
			branch = r.remote.BranchOrDefault()
		}
		spec := config.RefSpec("+refs/heads/" + branch + ":refs/remotes/origin/" + branch)
		if err := r.fetch(ctx, spec); errors.As(err, &git.NoMatchingRefSpecError{}) {
			return "", false, nil
		} else if err != nil {
			return "", false, &FetchError{Repo: r.label, Err: fmt.Errorf("branch %s: %w", branch, err)}
		}
		name = plumbing.NewRemoteReferenceName("origin", branch)
	}
	ref, err := r.git.Reference(name, true)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("repository %s: %s: %w", r.label, name, err)
	}
	return ref.Hash().String(), true, nil
}
