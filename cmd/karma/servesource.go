package main

import (
	"context"

	"github.com/usekarma/karma/shared/app"
	"github.com/usekarma/karma/shared/configrepo"
)

// serveSource opens karma serve's session: the config repository as a cache clone under
// <state dir>/git/ of KARMA_GIT_URL, or by default of the git repository --repo is in (read as
// a remote, so pushes to it are fetched like any other). Every stage reads commits from it.
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
	return s, src, nil
}
