package configrepo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/usekarma/karma/shared/gitrepo"
)

// completeMarker is written last into a materialized modules folder: a folder without it was
// left half-written (a crash) and is written again.
const completeMarker = ".karma-complete"

// ModulesDir returns a folder on disk holding the modules folder of commit, exactly as the
// commit has it: ModulesRoot/<git tree id of the modules folder>. The folder is written per
// content (a temporary folder renamed into place), so commits that do not change the modules
// share it; every call hashes it again (gitrepo.DirTreeID, which reads only the files changed
// since it last read them) and writes it anew when it no longer holds the tree. Terraform never runs in it: plan and refresh copy it into the workspace
// (terraform.Workspace.Confine, shared/terraform/commitmodules.go). A modules folder given as an
// absolute path (outside the repository, not versioned with it) is returned as it is.
func (s *Source) ModulesDir(ctx context.Context, commit string) (string, error) {
	at, ok := s.modulesKnown(commit)
	if !ok {
		settings, err := s.SettingsAt(ctx, commit)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(settings.ModulesDir) {
			return settings.ModulesDir, nil
		}
		tree, err := s.Repo.Tree(ctx, commit)
		if err != nil {
			return "", err
		}
		at.dir = path.Clean(filepath.ToSlash(settings.ModulesDir))
		if at.id, err = tree.Hash(at.dir); err != nil {
			return "", fmt.Errorf("%s: modules folder %s: %w", tree, at.dir, err)
		}
		s.modulesFound(commit, at)
	}
	dest := filepath.Join(s.ModulesRoot, at.id)
	// Written before: used only while it still holds exactly the tree (every file hashed again,
	// each use). Anything that wrote into it since (a module writing under path.module, run by
	// an earlier Karma, a person) would otherwise be deployed as this tree by every commit that
	// has it; it is written anew.
	if verified(dest, at.id) {
		return dest, nil
	}
	tree, err := s.Repo.Tree(ctx, commit)
	if err != nil {
		return "", err
	}
	sub, err := fs.Sub(tree, at.dir)
	if err != nil {
		return "", err
	}
	if err := materialize(sub, dest, at.id); err != nil {
		return "", fmt.Errorf("%s: modules folder %s: %w", tree, at.dir, err)
	}
	return dest, nil
}

// modulesAt is where a commit's modules folder is in its tree, and the folder's tree id: what
// ModulesDir reads from Git, the same at every call for one commit (its settings and tree do not
// change), so it is remembered (modulesKnown) — unlike the folder on disk, hashed at every call.
type modulesAt struct{ dir, id string }

// modulesKey is a commit, with the modules folder the Source's own settings give (they override
// the commit's karma.json).
type modulesKey struct{ commit, override string }

// modulesKnown is what ModulesDir found before for commit, when commit is a full SHA (a name
// such as a branch moves).
func (s *Source) modulesKnown(commit string) (modulesAt, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.modules[modulesKey{commit, s.Settings.ModulesDir}]
	return at, ok
}

func (s *Source) modulesFound(commit string, at modulesAt) {
	if !fullSHA(commit) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.modules == nil || len(s.modules) >= modulesKept {
		s.modules = map[modulesKey]modulesAt{} // a fresh start now and then: each entry is cheap to find again
	}
	s.modules[modulesKey{commit, s.Settings.ModulesDir}] = at
}

// modulesKept bounds the commits whose modules folder ModulesDir remembers.
const modulesKept = 1024

func fullSHA(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ErrModulesUnverifiable refuses a modules folder that, written from its tree, does not hash
// to the tree's id: a tree git no longer writes (an old file mode such as 100664), which could
// not be told from one changed on disk.
var ErrModulesUnverifiable = errors.New("written from the commit, it does not hash to its tree id")

// ErrFilteredBlob refuses a module file whose blob is not its content: a Git LFS pointer or a
// git-crypt encrypted file, which a checkout's filters (.gitattributes) replace by the real
// content but the commit's git objects — what Karma deploys — do not. Written as it is, the
// pointer or the ciphertext would be deployed in the file's place (a Lambda's zip, an S3
// object, a template), without an error.
var ErrFilteredBlob = errors.New("its blob is not its content")

// filtered recognises a Git LFS pointer (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md:
// "version https://git-lfs.github.com/spec/v1" first, under 1024 bytes) and a git-crypt file
// ("\x00GITCRYPT\x00" first).
func filtered(data []byte) error {
	switch {
	case len(data) < 1024 && bytes.HasPrefix(data, []byte("version https://git-lfs.github.com/spec/v1\n")):
		return fmt.Errorf("%w: a Git LFS pointer (Karma deploys the commit's git objects and fetches no LFS content: keep module files out of LFS)", ErrFilteredBlob)
	case bytes.HasPrefix(data, []byte("\x00GITCRYPT\x00")):
		return fmt.Errorf("%w: encrypted by git-crypt (Karma deploys the commit's git objects, which hold the ciphertext)", ErrFilteredBlob)
	}
	return nil
}

// FromCommit reports whether dir is a modules folder ModulesDir materialized from a commit
// (under ModulesRoot), not one given as an absolute path (terraform.CommitModules): module calls
// of the workspaces using it must stay in it.
func (s *Source) FromCommit(dir string) bool {
	if s.ModulesRoot == "" {
		return false
	}
	root, err1 := filepath.Abs(s.ModulesRoot)
	d, err2 := filepath.Abs(dir)
	return err1 == nil && err2 == nil && filepath.Dir(d) == root
}

// materialize writes every file of fsys under dest, a folder named by id, the tree's id: into a
// temporary folder, checked to hash to id (gitrepo.DirTreeID), then renamed into place. A
// folder already at dest (half-written, or changed on disk since it was written) is renamed
// aside first and removed: dest is at every instant either absent or a complete folder, never
// one being written. Another process doing the same at once is harmless: both write the same
// bytes. Symbolic links and submodules are refused: a module's files must be the commit's own;
// so are Git LFS pointers and git-crypt files (filtered).
func materialize(fsys fs.FS, dest, id string) error {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), ".tmp-"+filepath.Base(dest)+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(tmp, filepath.FromSlash(p))
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s: %w", p, gitrepo.ErrSymlink)
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeIrregular != 0:
			return fmt.Errorf("%s: %w", p, gitrepo.ErrSubmodule)
		case !d.Type().IsRegular():
			return fmt.Errorf("%s: not a regular file", p)
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		if err := filtered(data); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		mode := os.FileMode(0o644)
		if info, err := d.Info(); err == nil && info.Mode()&0o111 != 0 {
			mode = 0o755
		}
		if err := os.WriteFile(target, data, mode); err != nil {
			return err
		}
		return os.Chmod(target, mode) // whatever the umask: the mode is part of the tree id
	})
	if err != nil {
		return err
	}
	if got, err := gitrepo.DirTreeID(tmp, id); err != nil || got != id {
		if err == nil {
			err = fmt.Errorf("%w %s (it hashes to %s)", ErrModulesUnverifiable, id, got)
		}
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, completeMarker), nil, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, dest); err == nil {
		return nil
	}
	// dest exists: written meanwhile by another process (used as it is when it holds the
	// tree), half-written by a crash, or changed on disk since. Move it aside (one rename: no reader ever sees a half-written dest) and
	// put the new folder in its place.
	if verified(dest, id) {
		return nil
	}
	old, err := os.MkdirTemp(filepath.Dir(dest), ".old-"+filepath.Base(dest)+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(old)
	if err := os.Rename(dest, filepath.Join(old, "modules")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Rename(tmp, dest); err != nil {
		// Another process put its own copy in between: used if it holds the tree.
		if verified(dest, id) {
			return nil
		}
		return err
	}
	return nil
}

// verified reports whether dest is a complete modules folder holding exactly the tree id.
func verified(dest, id string) bool {
	if _, err := os.Stat(filepath.Join(dest, completeMarker)); err != nil {
		return false
	}
	got, err := gitrepo.DirTreeID(dest, id, completeMarker)
	return err == nil && got == id
}
