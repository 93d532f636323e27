//go:build linux

package gitrepo

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A modules folder asked again is not read again when its files are unchanged; a file changed in
// place — same size, its modification time set back — is read again and changes the id (its
// change time moved); a file written within stableFor of the hashing is read every time.
func TestDirTreeIDRemembersOnlyUnchangedFiles(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "main.tf")
	for name, body := range map[string]string{"main.tf": "output \"x\" { value = 1 }\n", "nested/n.tf": "# n\n"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ids := func() (string, int64) {
		t.Helper()
		before := blobReads.Load()
		id, err := DirTreeID(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		return id, blobReads.Load() - before
	}

	// Just written: read at every call (the files are not yet stableFor old).
	first, n1 := ids()
	if _, n2 := ids(); n1 != 2 || n2 != 2 {
		t.Fatalf("files written just now read %d then %d times, want 2 and 2", n1, n2)
	}

	old := stableFor
	stableFor = 0
	t.Cleanup(func() { stableFor = old })
	ids() // remembered now
	if again, n := ids(); n != 0 || again != first {
		t.Fatalf("unchanged folder: %s after reading %d files, want %s reading none", again, n, first)
	}

	// Changed in place: same size, modification time put back. Only the change time says so.
	fi, err := os.Stat(main)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // a change time the file system can tell from the first
	if err := os.WriteFile(main, []byte("output \"x\" { value = 2 }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(main, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	changed, n := ids()
	if changed == first || n != 1 {
		t.Fatalf("a file changed in place with its size and modification time kept: id %s (was %s), %d files read; want a new id, 1 read", changed, first, n)
	}
}
