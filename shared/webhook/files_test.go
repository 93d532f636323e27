package webhook

import (
	"reflect"
	"testing"
)

func TestChangedFiles(t *testing.T) {
	t.Parallel()
	c := func(added, modified, removed []string) Commit {
		return Commit{ID: ghBefore, Added: added, Modified: modified, Removed: removed}
	}
	s := func(v ...string) []string { return v }
	const cfg = "iac/dev/app/web/config.json"
	tests := []struct {
		name    string
		commits []Commit
		want    []FileChange
	}{
		{"none", nil, []FileChange{}},
		{"added", []Commit{c(s(cfg), nil, nil)}, []FileChange{{Path: cfg, Added: true}}},
		{"added then modified stays added", []Commit{c(s(cfg), nil, nil), c(nil, s(cfg), nil)}, []FileChange{{Path: cfg, Added: true}}},
		{"added then removed is removed", []Commit{c(s(cfg), nil, nil), c(nil, nil, s(cfg))}, []FileChange{{Path: cfg, Removed: true}}},
		{"modified twice stays modified", []Commit{c(nil, s(cfg), nil), c(nil, s(cfg), nil)}, []FileChange{{Path: cfg}}},
		{"modified then removed", []Commit{c(nil, s(cfg), nil), c(nil, nil, s(cfg))}, []FileChange{{Path: cfg, Removed: true}}},
		{"removed then added back is modified", []Commit{c(nil, nil, s(cfg)), c(s(cfg), nil, nil)}, []FileChange{{Path: cfg}}},
		{"added, removed, added is added", []Commit{c(s(cfg), nil, nil), c(nil, nil, s(cfg)), c(s(cfg), nil, nil)}, []FileChange{{Path: cfg, Added: true}}},
		{"rename is removed old + added new", []Commit{c(s("iac/dev/app/api/config.json"), nil, s(cfg))},
			[]FileChange{{Path: "iac/dev/app/api/config.json", Added: true}, {Path: cfg, Removed: true}}},
		{"removed and added in one commit is modified", []Commit{c(s(cfg), nil, s(cfg))}, []FileChange{{Path: cfg}}},
		{"many files sorted", []Commit{c(s("b", "a"), s("c"), nil), c(nil, nil, s("d"))},
			[]FileChange{{Path: "a", Added: true}, {Path: "b", Added: true}, {Path: "c"}, {Path: "d", Removed: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := ChangedFiles(Push{Commits: tt.commits}); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
