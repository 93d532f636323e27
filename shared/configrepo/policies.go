package configrepo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// Policies reads the Rego policies of commit (policy.Source): every *.rego file directly in the
// folder karma.json's policies_dir names at that commit (default "policies"), path -> source. A
// commit without the folder has no policies. Read from git objects, never a working tree, like
// everything a change deploys; a symbolic link is refused (TreeFS).
func (s *Source) Policies(ctx context.Context, commit string) (map[string][]byte, error) {
	st, err := s.SettingsAt(ctx, commit)
	if err != nil {
		return nil, err
	}
	tree, err := s.Repo.Tree(ctx, commit)
	if err != nil {
		return nil, err
	}
	dir := path.Clean(st.PoliciesDir)
	entries, err := fs.ReadDir(tree, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", tree, dir, err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".rego") {
			continue
		}
		p := dir + "/" + e.Name()
		if e.Type()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%s: %s: a symbolic link: refused (policies must come from the commit)", tree, p)
		}
		b, err := fs.ReadFile(tree, p)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", tree, p, err)
		}
		out[p] = b
	}
	return out, nil
}
