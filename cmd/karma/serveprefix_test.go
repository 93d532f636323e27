package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/usekarma/karma/shared/config"
)

// karma serve's stages publish runtimes and configs under the prefix the graphs read them from:
// karma.json's (at the deploy branch's head) unless --prefix says otherwise. The App's default
// for a cache clone was /iac whatever karma.json said, so a repository with its own prefix had
// serve's applies write /iac/... while its graphs, GET /graph and the CLI read /acme/....
func TestServeUsesTheRepositorysPrefix(t *testing.T) {
	repo, _ := demoRepo(t)
	if err := os.WriteFile(filepath.Join(repo, "karma.json"), []byte(`{"prefix": "/acme", "modules_dir": "components"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	commitAs(t, repo, "Ada", "our own prefix")
	for _, c := range []struct{ flag, want string }{{"", "/acme"}, {"/other", "/other"}} {
		s, _, err := serveSource(context.Background(), &globals{cfg: config.Defaults(), repo: repo, stateDir: t.TempDir(), paramsBackend: "none", prefix: c.flag})
		if err != nil {
			t.Fatal(err)
		}
		st, err := s.stack(context.Background(), stackOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.app.Prefix()
		if err != nil || got != c.want || st.settings.Prefix != c.want {
			t.Errorf("--prefix %q: the stages' prefix is %q (%v), the stack's %q; want %q", c.flag, got, err, st.settings.Prefix, c.want)
		}
		s.close()
	}
}
