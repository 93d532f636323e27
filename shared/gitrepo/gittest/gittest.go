// Package gittest runs real git servers on loopback for tests: smart HTTP (`git http-backend`
// behind net/http/cgi, with a bearer of a token), SSH (golang.org/x/crypto/ssh running
// git-upload-pack and git-receive-pack for a deploy key), and bare repositories by path. Commits
// are made with the git binary, as a person would.
package gittest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Git runs the git binary in dir and returns its trimmed output; the test fails on error.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir, "GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// Need skips the test when the git binary (and its http-backend) is missing.
func Need(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not on the PATH: the real git servers of this test need it")
	}
}

// Origin is a bare repository with a working clone that pushes to it.
type Origin struct {
	Bare string // the bare repository's path
	Work string // a clone to commit in
}

// NewOrigin creates a bare repository named name (e.g. "config.git") under a temporary folder
// and a clone of it with one commit holding files (relative paths -> content).
func NewOrigin(t testing.TB, name string, files map[string]string) *Origin {
	t.Helper()
	Need(t)
	root := t.TempDir()
	o := &Origin{Bare: filepath.Join(root, "srv", name), Work: filepath.Join(root, "work")}
	if err := os.MkdirAll(o.Bare, 0o755); err != nil {
		t.Fatal(err)
	}
	Git(t, o.Bare, "init", "-q", "--bare", "-b", "main")
	Git(t, o.Bare, "config", "http.receivepack", "true")
	Git(t, root, "clone", "-q", o.Bare, o.Work)
	Git(t, o.Work, "checkout", "-q", "-B", "main")
	o.Commit(t, "initial", files)
	return o
}

// Commit writes files into the clone (a nil-content entry "" removes nothing: use Remove),
// commits them with message and pushes to the bare repository. It returns the commit's sha.
func (o *Origin) Commit(t testing.TB, message string, files map[string]string) string {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(o.Work, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	Git(t, o.Work, "add", "-A")
	Git(t, o.Work, "commit", "-q", "--allow-empty", "-m", message)
	Git(t, o.Work, "push", "-q", "origin", "HEAD:main")
	return Git(t, o.Work, "rev-parse", "HEAD")
}

// Head is the sha of the clone's HEAD.
func (o *Origin) Head(t testing.TB) string { return Git(t, o.Work, "rev-parse", "HEAD") }

// OriginFrom is NewOrigin whose first commit holds a copy of the folder src (e.g. examples/).
func OriginFrom(t testing.TB, name, src string) *Origin {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".terraform" || d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = string(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return NewOrigin(t, name, files)
}
