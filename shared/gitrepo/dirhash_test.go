package gitrepo_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
)

// A folder on disk has the id git gives the same content committed: files and executables,
// nested folders, and names whose order differs between a file and a folder ("a.tf" and "a/").
// A file changed or added on disk gives another id.
func TestDirTreeIDIsGitsTreeID(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", map[string]string{
		"components/a/main.tf":          "output \"x\" { value = 1 }\n",
		"components/a.tf":               "# a file sorted against a folder\n",
		"components/a-b/x":              "",
		"components/common/nested/n.tf": "# nested\n",
		"components/run.sh":             "#!/bin/sh\n",
	})
	dir := filepath.Join(o.Work, "components")
	if err := os.Chmod(filepath.Join(dir, "run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	o.Commit(t, "executable", nil)
	want := gittest.Git(t, o.Work, "rev-parse", "HEAD:components")
	got, err := gitrepo.DirTreeID(dir, want)
	if err != nil || got != want {
		t.Fatalf("DirTreeID = %s, %v; want git's %s", got, err, want)
	}
	if err := os.WriteFile(filepath.Join(dir, ".marker"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := gitrepo.DirTreeID(dir, want, ".marker"); err != nil || got != want {
		t.Fatalf("DirTreeID skipping .marker = %s, %v; want %s", got, err, want)
	}
	if got, _ := gitrepo.DirTreeID(dir, want); got == want {
		t.Error("a file added on disk left the id unchanged")
	}
	os.Remove(filepath.Join(dir, ".marker"))
	if err := os.WriteFile(filepath.Join(dir, "common", "nested", "n.tf"), []byte("# edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := gitrepo.DirTreeID(dir, want); got == want {
		t.Error("a file changed on disk left the id unchanged")
	}
}
