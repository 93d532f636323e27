// Package besidetest finds the data kept beside the checkout, in ../shared: the vendors'
// samples (samples/) and the real users' corpus (corpus/). The data is read in place, never
// copied into the project, and it is not part of the repository: a clone without ../shared
// beside it still passes its tests, because a test that needs the data is skipped, saying what
// is missing.
package besidetest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the directory ../shared/<elem...> beside the checkout (the folder holding go.mod),
// or skips t, naming the directory that is missing.
func Dir(t testing.TB, elem ...string) string {
	t.Helper()
	root, err := checkout()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(append([]string{filepath.Dir(root), "shared"}, elem...)...)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Skipf("%s is not beside the checkout (no %s): skipped", filepath.ToSlash(filepath.Join(append([]string{"..", "shared"}, elem...)...)), dir)
	}
	return dir
}

// checkout is the folder holding go.mod, found upwards from the working directory (go test runs
// a package's tests in its folder).
func checkout() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("besidetest: no go.mod above the working directory")
		}
		dir = parent
	}
}
