package main

import (
	"context"
	"fmt"

	"github.com/usekarma/karma/shared/app"
	"github.com/usekarma/karma/shared/config"
	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
)

// session is what one command opened: the composition root (shared/app) over the configuration
// with the command line's overrides. Close it when done.
type session struct {
	g   *globals
	app *app.App
}

// config is the one configuration with the global flags applied.
func (g *globals) config() config.Config {
	c := g.cfg
	c.Repo, c.StateDir, c.Prefix = g.repo, g.stateDir, g.prefix
	switch g.paramsBackend {
	case "ssm", config.AWS:
		c.Params = config.AWS
	default:
		c.Params = g.paramsBackend
	}
	return c
}

// open opens a session reading the config repository from the local clone --repo is in.
func (g *globals) open(ctx context.Context) (*session, error) {
	return g.openWith(ctx, app.RepoLocal)
}

// openWith opens a session reading the config repository as repoMode says (karma serve: a
// cache clone of KARMA_GIT_URL, or of the local clone).
func (g *globals) openWith(_ context.Context, repoMode string) (*session, error) {
	a := app.New(g.config(), app.Options{Repo: repoMode, Terraform: g.testRunner, Transport: g.testTransport, RetryBase: g.testRetryBase})
	return &session{g: g, app: a}, nil
}

func (s *session) close() { s.app.Close() }

// embeddedDB opens the state file on first use.
func (s *session) embeddedDB() (*embedded.DB, error) { return s.app.DB() }

// params returns the parameter store of env's account (nil for backend "none"). The embedded
// store keeps one namespace per environment, standing in for one AWS account each; with SSM,
// the caller's credentials choose the account and <prefix>/environment says which env it is.
func (s *session) params(env string) (params.Store, error) {
	return s.app.Params(context.Background(), env)
}

// source is the config repository read at commits.
func (s *session) source() (*configrepo.Source, error) { return s.app.Source(context.Background()) }

// graphStore is where the live graph is written: the embedded file, or Neptune.
func (s *session) graphStore() (graph.Store, error) { return s.app.GraphStore(context.Background()) }

// build loads, reads parameters and validates. With SSM only the selected env's account is read.
func (s *session) build(ctx context.Context, env string) (*model.Result, error) {
	return s.buildWith(ctx, env, nil)
}

// buildWith is build with config file overrides (a proposed change), from the working tree of
// --repo: what `graph build`, `impact` and `params publish` look at.
func (s *session) buildWith(ctx context.Context, env string, overrides map[string][]byte) (*model.Result, error) {
	var openErr error
	opts := model.BuildOptions{
		LoadOptions: model.LoadOptions{Env: env, Settings: model.Settings{Prefix: s.g.prefix}, Overrides: overrides},
		Params: func(e string) params.Store {
			if s.app.Config.Params == config.AWS && e != env {
				return nil
			}
			st, err := s.params(e)
			if err != nil && openErr == nil {
				openErr = fmt.Errorf("parameter store of %s: %w", e, err)
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
