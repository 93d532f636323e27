package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"

	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/policy"
)

// Source is the config repository read at commits: the local clone the configuration's Repo is
// in (RepoLocal), or a cache clone under <cache dir>/git of Git.URL — by default of the local
// clone itself, read as a remote (RepoCache). Each commit's modules are written under
// <cache dir>/modules.
func (a *App) Source(ctx context.Context) (*configrepo.Source, error) {
	a.mu.Lock()
	if a.src != nil {
		defer a.mu.Unlock()
		return a.src, nil
	}
	a.mu.Unlock()
	repo, err := a.openRepo(ctx)
	if err != nil {
		return nil, err
	}
	src := &configrepo.Source{Repo: repo, Settings: model.Settings{Prefix: a.Config.Prefix, ModulesDir: a.Config.ModulesDir},
		ModulesRoot: filepath.Join(a.Config.Cache(), "modules"),
		Params: func(env string) params.Store {
			st, err := a.Params(ctx, env)
			if err != nil {
				return nil
			}
			return st
		}}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.src != nil { // opened meanwhile
		repo.Close()
		return a.src, nil
	}
	a.src = src
	a.closers = append(a.closers, repo.Close)
	return src, nil
}

func (a *App) openRepo(ctx context.Context) (*gitrepo.Repo, error) {
	gc := a.Config.Git
	if a.opts.Repo == RepoLocal {
		repo, err := gitrepo.OpenLocal(a.Config.Repo)
		if err != nil {
			return nil, fmt.Errorf("repository %s: the pipeline deploys Git commits, and this folder is not in a git repository "+
				"(git init, then commit the configs): %w", a.Config.Repo, err)
		}
		return repo, nil
	}
	if gc.TokenFile == "" && gc.TokenSecret != "" {
		cfg, err := a.awsConfig(ctx)
		if err != nil {
			return nil, err
		}
		if gc.TokenFile, err = gitTokenFile(ctx, cfg, gc.TokenSecret, a.Config.Cache()); err != nil {
			return nil, err
		}
	}
	remote := gitrepo.Remote{URL: gc.URL, TokenFile: gc.TokenFile, TokenUser: gc.TokenUser, SSHKeyFile: gc.SSHKeyFile,
		KnownHostsFile: gc.KnownHostsFile, Branch: gc.Branch}
	sub := gc.Subdir
	if remote.URL == "" && a.opts.RemoteOnly {
		return nil, fmt.Errorf("KARMA_GIT_URL is not set (the config repository, fetched into %s on demand)", filepath.Join(a.Config.Cache(), "git"))
	}
	if remote.URL == "" {
		local, err := gitrepo.OpenLocal(a.Config.Repo)
		if err != nil {
			return nil, fmt.Errorf("the config repository is fetched from KARMA_GIT_URL, or from the git repository %s is in: %w", a.Config.Repo, err)
		}
		remote.URL, sub = local.Dir(), local.Sub()
		if remote.Branch == "" {
			remote.Branch = local.Branch()
		}
		local.Close()
	}
	sum := sha256.Sum256([]byte(remote.URL + "\x00" + sub))
	return gitrepo.OpenCache(filepath.Join(a.Config.Cache(), "git", hex.EncodeToString(sum[:8])), remote, sub)
}

// Policies is the one policy engine of the App: the Rego policies of each commit of the
// configuration repository, compiled once per commit, for resolve and apply (shared/policy).
func (a *App) Policies(ctx context.Context) (*policy.Engine, error) {
	src, err := a.Source(ctx)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pol == nil {
		e := &policy.Engine{Source: src}
		if dir := a.Config.Policies; dir != "" { // the operator's, beside every commit's
			if e.Floor, err = policy.LoadDir(ctx, dir); err != nil {
				return nil, err
			}
		}
		a.pol = e
	}
	return a.pol, nil
}
