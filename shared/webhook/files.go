package webhook

import "sort"

// FileChange is the net change of one path over a whole push. Neither Added nor Removed means
// modified. It maps field for field onto trigger.FileChange{Path, Removed}.
type FileChange struct {
	Path string
	// Added: the path did not exist before the push and exists after it.
	Added bool
	// Removed: the path does not exist after the push (including a path added and then
	// removed within the same push).
	Removed bool
}

// ChangedFiles folds the file lists of every commit of the push, in order (oldest first, as
// every provider sends them), into one net change per path, sorted by path:
//
//   - added then modified stays added; added then removed is removed;
//   - modified (any number of times) stays modified; modified then removed is removed;
//   - removed then added again is modified (it existed before and exists after);
//   - a rename is the removal of the old path and the addition of the new one (GitHub and
//     GitLab already list renames that way).
//
// Within one commit, removals are applied before additions and modifications, so a path both
// removed and added by one commit counts as modified. When p.Truncated the result may be
// incomplete: diff p.Before..p.After in the repository instead.
func ChangedFiles(p Push) []FileChange {
	type state struct {
		existedBefore bool // first seen as modified or removed
		existsAfter   bool
	}
	states := map[string]*state{}
	apply := func(path string, exists bool, existedIfNew bool) {
		s, ok := states[path]
		if !ok {
			s = &state{existedBefore: existedIfNew}
			states[path] = s
		}
		s.existsAfter = exists
	}
	for _, c := range p.Commits {
		for _, f := range c.Removed {
			apply(f, false, true)
		}
		for _, f := range c.Added {
			apply(f, true, false)
		}
		for _, f := range c.Modified {
			apply(f, true, true)
		}
	}
	out := make([]FileChange, 0, len(states))
	for path, s := range states {
		out = append(out, FileChange{Path: path, Added: s.existsAfter && !s.existedBefore, Removed: !s.existsAfter})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}
