package app

import (
	"os"
	"path/filepath"
	"testing"
)

// The token file is readable by this process alone even when a file there already allowed more
// (os.WriteFile keeps an existing file's permissions), and it holds the new token.
func TestTokenFileIsPrivateOverALooserOne(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "git-token")
	if err := os.WriteFile(old, []byte("old-token\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(old, 0o644); err != nil {
		t.Fatal(err)
	}
	path, err := writeTokenFile(dir, "new-token")
	if err != nil {
		t.Fatal(err)
	}
	if path != old {
		t.Fatalf("token file %s, want %s", path, old)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("token file mode %o, want 600", perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "new-token\n" {
		t.Fatalf("token file holds %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("left behind %d files in the cache, want the token file alone", len(entries))
	}
}
