// Package gitrepo reads the config repository with a pure-Go git implementation (go-git), so that
// the same code runs where there is no git binary (Lambda).
package gitrepo

import (
	"errors"

	"github.com/go-git/go-git/v5"
)

// NoCommit is reported when the directory is not inside a git repository.
const NoCommit = "none"

// HeadCommit returns the commit HEAD points at for the repository containing dir, or NoCommit.
func HeadCommit(dir string) string {
	r, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return NoCommit
	}
	h, err := r.Head()
	if err != nil {
		return NoCommit
	}
	return h.Hash().String()
}

// ErrNotRepository is returned when a directory is not inside a git repository.
var ErrNotRepository = errors.New("gitrepo: not a git repository")
