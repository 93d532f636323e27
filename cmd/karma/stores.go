package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/params/ssm"
)

// session holds what one command opened; close it when done.
type session struct {
	g      *globals
	db     *embedded.DB
	ssm    params.Store
	mu     sync.Mutex // guards db and stores: stages open them concurrently
	stores map[string]params.Store
	src    *configrepo.Source
}

// source is the config repository read at commits: the local clone --repo is in (karma serve
// sets a cache clone of a remote instead, see serveSource). The pipeline deploys commits, never
// the working tree.
func (s *session) source() (*configrepo.Source, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.src != nil {
		return s.src, nil
	}
	repo, err := gitrepo.OpenLocal(s.g.repo)
	if err != nil {
		return nil, fmt.Errorf("--repo %s: the pipeline deploys Git commits, and this folder is not in a git repository "+
			"(git init, then commit the configs): %w", s.g.repo, err)
	}
	s.src = s.newSource(repo)
	return s.src, nil
}

func (s *session) newSource(repo *gitrepo.Repo) *configrepo.Source {
	return &configrepo.Source{Repo: repo, Settings: model.Settings{Prefix: s.g.prefix},
		ModulesRoot: filepath.Join(s.g.stateDir, "modules"),
		Params: func(e string) params.Store {
			st, err := s.params(e)
			if err != nil {
				return nil
			}
			return st
		}}
}

func (g *globals) open(ctx context.Context) (*session, error) {
	s := &session{g: g, stores: map[string]params.Store{}}
	if g.paramsBackend == "ssm" {
		st, err := ssm.NewFromConfig(ctx, "")
		if err != nil {
			return nil, fmt.Errorf("ssm: %w", err)
		}
		s.ssm = st
	}
	return s, nil
}

// embeddedDB opens the state file on first use.
func (s *session) embeddedDB() (*embedded.DB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.embeddedDBLocked()
}

func (s *session) embeddedDBLocked() (*embedded.DB, error) {
	if s.db != nil {
		return s.db, nil
	}
	db, err := embedded.Open(s.g.dbPath())
	if err != nil {
		return nil, fmt.Errorf("opening embedded state %s: %w", s.g.dbPath(), err)
	}
	s.db = db
	return db, nil
}

// params returns the parameter store of env's account (nil for backend "none"). The embedded
// store keeps one namespace per environment, standing in for one AWS account each; with SSM,
// the caller's credentials choose the account and <prefix>/environment says which env it is.
func (s *session) params(env string) (params.Store, error) {
	switch s.g.paramsBackend {
	case "none":
		return nil, nil
	case "ssm":
		return s.ssm, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.stores[env]; ok {
		return st, nil
	}
	db, err := s.embeddedDBLocked()
	if err != nil {
		return nil, err
	}
	st, err := embedded.NewParamStore(db, env)
	if err != nil {
		return nil, err
	}
	s.stores[env] = st
	return st, nil
}

func (s *session) close() {
	if s.db != nil {
		s.db.Close()
	}
	if s.src != nil {
		s.src.Repo.Close()
	}
}

// build loads, reads parameters and validates. With SSM only the selected env's account is read.
func (s *session) build(ctx context.Context, env string) (*model.Result, error) {
	return s.buildWith(ctx, env, nil)
}

// buildWith is build with config file overrides (a proposed change).
func (s *session) buildWith(ctx context.Context, env string, overrides map[string][]byte) (*model.Result, error) {
	var openErr error
	opts := model.BuildOptions{
		LoadOptions: model.LoadOptions{Env: env, Settings: model.Settings{Prefix: s.g.prefix}, Overrides: overrides},
		Params: func(e string) params.Store {
			if s.g.paramsBackend == "ssm" && e != env {
				return nil
			}
			st, err := s.params(e)
			if err != nil && openErr == nil {
				openErr = err
			}
			return st
		},
	}
	res, err := model.Build(ctx, s.g.repo, opts)
	if openErr != nil {
		return nil, openErr
	}
	return res, err
}

// graphStore is the embedded graph store (Neptune arrives behind the same interface).
func (s *session) graphStore() (graph.Store, error) {
	db, err := s.embeddedDB()
	if err != nil {
		return nil, err
	}
	return embedded.NewGraphStore(context.Background(), db)
}
