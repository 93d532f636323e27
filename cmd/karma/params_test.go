package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFiles creates a directory holding files (relative path -> content).
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// params publish checks every parameter before writing any: one that Parameter Store would
// refuse (here a name over its length limit: a long prefix, type and nickname) stops the whole
// publish with the parameter named, and the valid ones are not written either.
func TestParamsPublishChecksEverythingFirst(t *testing.T) {
	longType, longNick := "z"+strings.Repeat("t", 99), strings.Repeat("n", 250)
	repo := writeFiles(t, map[string]string{
		"iac/dev/app/a/config.json":                             `{"size":1}`,
		"iac/dev/" + longType + "/" + longNick + "/config.json": `{"size":2}`,
	})
	prefix := "/" + strings.Repeat("p", 700)
	args := []string{"--repo", repo, "--state-dir", t.TempDir(), "--prefix", prefix}
	code, out, stderr := karma(t, append([]string{"params", "publish", "--env", "dev"}, args...)...)
	if code != 1 || !strings.Contains(stderr, "/"+longNick+"/config") || !strings.Contains(stderr, "at most 1011 allowed") ||
		!strings.Contains(stderr, "nothing published") {
		t.Fatalf("publish: exit %d\nstdout %s\nstderr %s\nwant exit 1 naming the invalid parameter and its limit, nothing published", code, out, stderr)
	}
	_, list, _ := karma(t, append([]string{"params", "list", "--env", "dev"}, args...)...)
	if strings.TrimSpace(list) != "" {
		t.Errorf("parameters written although one was invalid:\n%s", list)
	}
}

// A config too large for Parameter Store is refused at build time, file and limit named, and
// publishes nothing.
func TestParamsPublishRefusesOversizedConfig(t *testing.T) {
	repo := writeFiles(t, map[string]string{
		"iac/dev/app/a/config.json":   `{"size":1}`,
		"iac/dev/app/big/config.json": `{"blob":"` + strings.Repeat("b", 9000) + `"}`,
	})
	args := []string{"--repo", repo, "--state-dir", t.TempDir()}
	code, _, stderr := karma(t, append([]string{"params", "publish", "--env", "dev"}, args...)...)
	if code != 1 || !strings.Contains(stderr, "iac/dev/app/big/config.json: error [too-large]") || !strings.Contains(stderr, "at most 8192") {
		t.Fatalf("publish: exit %d, stderr %s; want exit 1 with a too-large diagnostic naming the file and the limit", code, stderr)
	}
	if _, list, _ := karma(t, append([]string{"params", "list", "--env", "dev"}, args...)...); strings.TrimSpace(list) != "" {
		t.Errorf("parameters written:\n%s", list)
	}
}

// A file given on the command line that is not UTF-8 is refused, naming the file and the byte
// offset, and nothing is queued or written.
func TestInputNotUTF8(t *testing.T) {
	repo := writeFiles(t, map[string]string{"iac/dev/app/a/config.json": `{"size":1}`})
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte("{\"name\": \"caf\xe9\"}"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--repo", repo, "--state-dir", t.TempDir()}
	for _, cmd := range [][]string{
		{"propose-change", "app", "a", "--env", "dev", "--input", bad},
		{"params", "put", "/iac/app/a/config", "@" + bad, "--env", "dev"},
	} {
		code, out, stderr := karma(t, append(cmd, args...)...)
		if code != 1 || !strings.Contains(stderr, bad) || !strings.Contains(stderr, "invalid UTF-8 at byte offset 13") {
			t.Errorf("%s: exit %d\nstdout %s\nstderr %s\nwant exit 1 naming the file and the offset", cmd[0], code, out, stderr)
		}
	}
	if _, list, _ := karma(t, append([]string{"params", "list", "--env", "dev"}, args...)...); strings.TrimSpace(list) != "" {
		t.Errorf("parameters written:\n%s", list)
	}
}
