package main

import (
	"context"
	"fmt"

	"github.com/usekarma/karma/shared/app"
	"github.com/usekarma/karma/shared/configrepo"
)

// serveSource opens karma serve's session: the config repository as a cache clone under
// <state dir>/git/ of KARMA_GIT_URL, or by default of the git repository --repo is in (read as
// a remote, so pushes to it are fetched like any other). Every stage reads commits from it.
//
// The Parameter Store prefix, unless --prefix or KARMA_PREFIX names one, is karma.json's at the
// deploy branch's head, as the graph of each commit reads it: the App's default for a cache
// clone is /iac, so with a karma.json naming another prefix serve's stages published runtimes
// and configs where neither its graphs nor the CLI read them.
func serveSource(ctx context.Context, g *globals) (*session, *configrepo.Source, error) {
	s, err := g.openWith(ctx, app.RepoCache)
	if err != nil {
		return nil, nil, err
	}
	src, err := s.app.Source(ctx)
	if err != nil {
		s.close()
		return nil, nil, err
	}
	if s.app.Config.Prefix == "" {
		head, err := src.Head(ctx)
		if err != nil {
			s.close()
			return nil, nil, fmt.Errorf("the deploy branch's head (its karma.json names the Parameter Store prefix; or give --prefix): %w", err)
		}
		settings, err := src.SettingsAt(ctx, head)
		if err != nil {
			s.close()
			return nil, nil, fmt.Errorf("the Parameter Store prefix (or give --prefix): commit %.12s: %w", head, err)
		}
		s.app.Config.Prefix = settings.Prefix
	}
	return s, src, nil
}
