// Package configrepo is the config repository as the pipeline's stages see it, the same in the
// CLI, karma serve and the Lambda functions: graphs built at a commit (cached per commit and
// environment), the deploy branch's head, the files between two commits, and each commit's
// Terraform modules materialized on disk for plan and apply. Nothing is read from a working
// tree: what a change set deploys is byte for byte the commit its lineage names.
package configrepo

import (
	"context"
	"fmt"
	"sync"

	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
)

// Source reads the config repository at commits. It implements resolve.Graphs,
// resolve.Commits, graphwrite.Graphs and terraform.Modules.
type Source struct {
	Repo *gitrepo.Repo
	// Settings override the repository's karma.json (e.g. the prefix given on the command line).
	Settings model.Settings
	// Params returns an environment's parameter store, read by builds for runtime status; nil
	// leaves the status unknown.
	Params func(env string) params.Store
	// ModulesRoot is where each commit's modules folder is written, one folder per content
	// (e.g. <state dir>/modules, or /tmp/karma-modules in Lambda).
	ModulesRoot string

	mu      sync.Mutex
	cache   map[buildKey]*model.Result
	order   []buildKey               // oldest first, for eviction
	modules map[modulesKey]modulesAt // by commit (modules.go)
}

type buildKey struct{ commit, env string }

// cacheSize bounds the graphs kept: a long-running service sees a commit per push.
const cacheSize = 16

// Build builds env's graph at commit. Without overrides the result is cached per commit and
// environment. With overrides (a change request upcast from v2) the files are replaced first and
// the result is not cached: it is derived from the cached build without overrides, re-resolving
// only the components the overridden files reach (model.BuildDerived); the parameter store is
// read again either way.
func (s *Source) Build(ctx context.Context, env, commit string, overrides map[string][]byte) (*model.Result, error) {
	opts := model.BuildOptions{LoadOptions: model.LoadOptions{Env: env, Settings: s.Settings, Overrides: overrides, Derivable: true}, Params: s.Params}
	if len(overrides) > 0 {
		base, err := s.Build(ctx, env, commit, nil)
		if err != nil {
			return nil, err
		}
		return model.BuildDerived(ctx, base.Repo, opts)
	}
	key := buildKey{commit, env}
	s.mu.Lock()
	res, ok := s.cache[key]
	s.mu.Unlock()
	if ok {
		return res, nil
	}
	tree, err := s.Repo.Tree(ctx, commit)
	if err != nil {
		return nil, err
	}
	res, err = model.BuildFS(ctx, tree, tree.String(), opts)
	if err != nil {
		return res, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cache == nil {
		s.cache = map[buildKey]*model.Result{}
	}
	if _, ok := s.cache[key]; !ok {
		s.cache[key] = res
		s.order = append(s.order, key)
		if len(s.order) > cacheSize {
			delete(s.cache, s.order[0])
			s.order = s.order[1:]
		}
	}
	return res, nil
}

// Current is the build of env at commit (Build's, kept per commit) with the runtimes the
// parameter stores hold now (model.Result.Refreshed): what is shown as the head's graph. The
// kept build is replaced when they changed, so the next comparison starts from them.
func (s *Source) Current(ctx context.Context, env, commit string) (*model.Result, error) {
	res, err := s.Build(ctx, env, commit, nil)
	if err != nil || s.Params == nil {
		return res, err
	}
	fresh, err := res.Refreshed(ctx, model.BuildOptions{Params: s.Params})
	if err != nil || fresh == res {
		return res, err
	}
	s.mu.Lock()
	if s.cache[buildKey{commit, env}] == res {
		s.cache[buildKey{commit, env}] = fresh
	}
	s.mu.Unlock()
	return fresh, nil
}

// Environments lists the repository's environments at commit.
func (s *Source) Environments(ctx context.Context, commit string) ([]string, error) {
	tree, err := s.Repo.Tree(ctx, commit)
	if err != nil {
		return nil, err
	}
	repo, err := model.LoadFS(tree, tree.String(), model.LoadOptions{Settings: s.Settings})
	if err != nil {
		return nil, err
	}
	return repo.Environments, nil
}

// Fetch makes sure commit sha is in the repository (gitrepo.Repo.Fetch).
func (s *Source) Fetch(ctx context.Context, sha string) error { return s.Repo.Fetch(ctx, sha) }

// Head is the deploy branch's head (a local clone: its HEAD).
func (s *Source) Head(ctx context.Context) (string, error) { return s.Repo.Head(ctx) }

// Diff lists the files that differ between two commits.
func (s *Source) Diff(ctx context.Context, before, after string) ([]model.ChangedFile, error) {
	changes, err := s.Repo.Diff(ctx, before, after)
	if err != nil {
		return nil, err
	}
	out := make([]model.ChangedFile, len(changes))
	for i, c := range changes {
		out[i] = model.ChangedFile{Path: c.Path, Removed: c.Removed}
	}
	return out, nil
}

// Authors lists the authors of the commits before..after (gitrepo.Repo.Authors).
func (s *Source) Authors(ctx context.Context, before, after string) ([]string, error) {
	return s.Repo.Authors(ctx, before, after)
}

// OnBranch reports whether commit sha is on branch now ("" = the deploy branch):
// gitrepo.Repo.OnBranch.
func (s *Source) OnBranch(ctx context.Context, sha, branch string) (bool, error) {
	return s.Repo.OnBranch(ctx, sha, branch)
}

// FileAt reads file p as commit has it (gitrepo.Repo.LookupFileAt): found is false when it
// has none.
func (s *Source) FileAt(ctx context.Context, commit, p string) ([]byte, bool, error) {
	return s.Repo.LookupFileAt(ctx, commit, p)
}

// FileBefore reads file p as commit's first parent has it (gitrepo.Repo.ReadFileBefore): found
// is false when the parent has none, or commit has no parent.
func (s *Source) FileBefore(ctx context.Context, commit, p string) ([]byte, bool, error) {
	return s.Repo.ReadFileBefore(ctx, commit, p)
}

// IsAncestor reports whether commit a is an ancestor of commit b.
func (s *Source) IsAncestor(ctx context.Context, a, b string) (bool, error) {
	return s.Repo.IsAncestor(ctx, a, b)
}

// SettingsAt reads the repository's settings at commit (karma.json with the overrides).
func (s *Source) SettingsAt(ctx context.Context, commit string) (model.Settings, error) {
	tree, err := s.Repo.Tree(ctx, commit)
	if err != nil {
		return model.Settings{}, err
	}
	st, err := model.LoadSettingsFS(tree, s.Settings)
	if err != nil {
		return st, fmt.Errorf("%s: %w", tree, err)
	}
	return st, nil
}
