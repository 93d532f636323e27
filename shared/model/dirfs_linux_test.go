package model

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// linkedRepo is a repository whose folder iac/prod/vpc is a symbolic link to a folder outside
// it holding core/config.json (a secret), as it would be if swapped after discover listed it.
func linkedRepo(t *testing.T) string {
	t.Helper()
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(outside, "core"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "core/config.json"), []byte(`{"token":"hunter2"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "iac/prod"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "iac/prod/vpc")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// On Linux a folder on the way that is a symbolic link is refused too (openat2).
func TestReadConfigRefusesALinkOnTheWay(t *testing.T) {
	d := newDirFS(linkedRepo(t))
	data, err := d.readConfig("iac/prod/vpc/core/config.json")
	if noOpenat2.Load() {
		t.Skip("openat2 is not available here (kernel before 5.6, or refused by seccomp): only the last element is checked")
	}
	if !errors.Is(err, errLink) {
		t.Fatalf("read through a linked folder: %q, %v; want %v", data, err, errLink)
	}
}

// The links on the way to the repository's root are the user's choice, not the repository's:
// a root given through a link reads as any other.
func TestReadConfigThroughALinkedRoot(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "repo")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if data, err := newDirFS(link).readConfig("config.json"); err != nil || string(data) != "{}" {
		t.Fatalf("read under a linked root: %q, %v", data, err)
	}
}

// Without openat2, the file itself is still checked; a linked folder on the way is followed
// (what dirfs.go says).
func TestReadConfigWithoutOpenat2(t *testing.T) {
	was := noOpenat2.Swap(true)
	t.Cleanup(func() { noOpenat2.Store(was) })
	dir := linkedRepo(t)
	if err := os.Symlink(filepath.Join(dir, "iac/prod/vpc/core/config.json"), filepath.Join(dir, "link.json")); err != nil {
		t.Fatal(err)
	}
	d := newDirFS(dir)
	if _, err := d.readConfig("link.json"); !errors.Is(err, errLink) {
		t.Errorf("a link as the file itself: %v, want %v", err, errLink)
	}
	if data, err := d.readConfig("iac/prod/vpc/core/config.json"); err != nil || string(data) != `{"token":"hunter2"}` {
		t.Errorf("through a linked folder without openat2: %q, %v (followed, as documented)", data, err)
	}
}
