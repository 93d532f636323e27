package policy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The operator's policies. A commit's policies are part of the commit they judge: a commit that
// deletes the policies folder, or rewrites a rule, would be judged by what it wrote. Karma's own
// configuration may therefore name a folder of policies outside the config repository
// (KARMA_POLICIES): they are evaluated on every change beside the commit's, and the decisions
// are joined — a denial by either denies, an approval either requires is required. A commit can
// add rules, never remove the operator's.

// LoadDir compiles every *.rego file directly in dir (the operator's policies). A folder that
// cannot be read, holds no policy, or does not compile is an error naming it: the stages do not
// start on policies nobody can evaluate.
func LoadDir(ctx context.Context, dir string) (*Set, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.rego"))
	if err != nil {
		return nil, fmt.Errorf("policy: the operator's policies %s: %w", dir, err)
	}
	if len(paths) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("policy: the operator's policies: %w", err)
		}
		return nil, fmt.Errorf("policy: the operator's policies %s: no *.rego file in it", dir)
	}
	files := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("policy: the operator's policies: %w", err)
		}
		files[filepath.Base(p)] = b
	}
	s, err := Compile(ctx, files)
	if err != nil {
		return nil, fmt.Errorf("policy: the operator's policies %s do not compile: %w", dir, err)
	}
	return s, nil
}

// join merges two decisions: every denial and every approval requirement of both, sorted,
// without repeats.
func join(a, b Decision) Decision {
	merge := func(x, y []string) []string {
		out := append(slices.Clone(x), y...)
		slices.Sort(out)
		out = slices.Compact(out)
		if len(out) == 0 {
			return nil
		}
		return out
	}
	return Decision{Deny: merge(a.Deny, b.Deny), RequireApproval: merge(a.RequireApproval, b.RequireApproval)}
}

// floorError: the operator's policies failed to decide (a failing built-in, a rule of the wrong
// shape) — invalid, so the change is denied (fail closed), like a commit's invalid policies.
func floorError(err error) error {
	return fmt.Errorf("%w: the operator's policies: %s", ErrInvalid, strings.TrimPrefix(err.Error(), "policy: "))
}
