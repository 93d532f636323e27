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
// commit has it: ModulesRoot/<git tree id of the modules folder>. The folder is written once
// per content (a temporary folder renamed into place), so commits that do not change the
// modules share it and Terraform is not initialised again. A modules folder given as an
// absolute path (outside the repository, not versioned with it) is returned as it is.
func (s *Source) ModulesDir(ctx context.Context, commit string) (string, error) {
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
	dir := path.Clean(filepath.ToSlash(settings.ModulesDir))
	id, err := tree.Hash(dir)
	if err != nil {
		return "", fmt.Errorf("%s: modules folder %s: %w", tree, dir, err)
	}
	dest := filepath.Join(s.ModulesRoot, id)
	if _, err := os.Stat(filepath.Join(dest, completeMarker)); err == nil {
		return dest, nil
	}
	sub, err := fs.Sub(tree, dir)
	if err != nil {
		return "", err
	}
	if err := materialize(sub, dest); err != nil {
		return "", fmt.Errorf("%s: modules folder %s: %w", tree, dir, err)
	}
	return dest, nil
}

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

// materialize writes every file of fsys under dest (via a temporary folder renamed into place).
// Symbolic links and submodules are refused: a module's files must be the commit's own; so are
// Git LFS pointers and git-crypt files (filtered).
func materialize(fsys fs.FS, dest string) error {
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
		return os.WriteFile(target, data, mode)
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, completeMarker), nil, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, dest); err != nil {
		if _, serr := os.Stat(filepath.Join(dest, completeMarker)); serr == nil {
			return nil // written meanwhile by another worker
		}
		// A half-written folder from a crash: replace it.
		if rerr := os.RemoveAll(dest); rerr != nil {
			return errors.Join(err, rerr)
		}
		return os.Rename(tmp, dest)
	}
	return nil
}
