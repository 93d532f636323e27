package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"

	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/gitrepo"
)

// serveSource opens karma serve's cache clone of the config repository under
// <state dir>/git/<hash of the URL>: of KARMA_GIT_URL, or by default of the git repository --repo
// is in (read as a remote, so pushes to it are fetched like any other). It becomes the session's
// source: every stage reads commits from it.
func serveSource(s *session) (*configrepo.Source, error) {
	gc := s.g.cfg.Git
	remote := gitrepo.Remote{URL: gc.URL, TokenFile: gc.TokenFile, TokenUser: gc.TokenUser, SSHKeyFile: gc.SSHKeyFile,
		KnownHostsFile: gc.KnownHostsFile, Branch: gc.Branch}
	sub := gc.Subdir
	if remote.URL == "" {
		local, err := gitrepo.OpenLocal(s.g.repo)
		if err != nil {
			return nil, fmt.Errorf("--repo %s: karma serve fetches the config repository from KARMA_GIT_URL, or from the git repository --repo is in: %w", s.g.repo, err)
		}
		remote.URL, sub = local.Dir(), local.Sub()
		if remote.Branch == "" {
			remote.Branch = local.Branch()
		}
		local.Close()
	}
	sum := sha256.Sum256([]byte(remote.URL + "\x00" + sub))
	repo, err := gitrepo.OpenCache(filepath.Join(s.g.stateDir, "git", hex.EncodeToString(sum[:8])), remote, sub)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.src = s.newSource(repo)
	return s.src, nil
}
