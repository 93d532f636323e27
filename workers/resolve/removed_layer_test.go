package resolve_test

import (
	"slices"
	"testing"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/message"
)

// A commit deleting a layer changes the resolved config of every component that merged it, yet
// the deleted file is no longer among those components' layers at the commit: the base layer of
// dev/app/api (its defaults are gone), and dev/app/parent, which dev/app/child extended and
// which now falls back to the base-layer template app/parent. Each must deploy; nothing else.
func TestRemovedLayerDeploysWhatMergedIt(t *testing.T) {
	t.Parallel()
	repo := wt.WriteRepo(t, map[string]string{
		"karma.json":                       `{"prefix": "/iac", "modules_dir": "components"}`,
		"iac/dev/app/api/config.json":      `{"name": "api"}`,
		"iac/_base/app/parent/config.json": `{"size": "small"}`,
		"iac/dev/app/child/config.json":    `{"karma": {"extends": "app/parent"}, "name": "child"}`,
		"iac/dev/app/other/config.json":    `{"name": "other"}`,
		"iac/prod/app/api/config.json":     `{"name": "api"}`,
		"iac/prod/app/parent/config.json":  `{"size": "large"}`,
	})
	tests := []struct {
		name  string
		files []string
		want  []string
	}{
		{"removed base layer", []string{"iac/_base/app/api/config.json"}, []string{"dev/app/api", "prod/app/api"}},
		{"removed parent", []string{"iac/dev/app/parent/config.json"}, []string{"dev/app/child", "dev/app/parent"}}, // the parent: a held destroy
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStage(t, repo, nil)
			var removed []message.ComponentRef
			if tt.name == "removed parent" {
				removed = append(removed, message.ComponentRef{Type: "app", Nickname: "parent"})
			}
			out := s.handle(t, commitDetected(t, 90+i, sha1, tt.files, removed...))
			var roots []string
			for _, r := range wt.ByType(out, message.TypeChangeResolved) {
				p := wt.PayloadOf[message.ChangeResolved](t, r)
				if p.Rejected != "" {
					t.Fatalf("rejected: %s", p.Rejected)
				}
				roots = append(roots, p.Roots...)
			}
			slices.Sort(roots)
			if !slices.Equal(roots, tt.want) {
				t.Errorf("roots %v, want %v", roots, tt.want)
			}
		})
	}
}
