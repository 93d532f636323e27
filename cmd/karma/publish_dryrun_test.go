package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var publishedLine = regexp.MustCompile(`(?m)^(?:would publish|published) +(\S+) +(\S+) +version (\d+)`)

// writes are the "<name> <env> v<version>" a publish (or its dry run) reports.
func writes(out string) []string {
	var got []string
	for _, m := range publishedLine.FindAllStringSubmatch(out, -1) {
		got = append(got, m[1]+" "+m[2]+" v"+m[3])
	}
	slices.Sort(got)
	return got
}

// params publish --dry-run lists exactly what the real run then writes, and writes nothing.
func TestParamsPublishDryRunListsWhatTheRunWrites(t *testing.T) {
	repo := writeFiles(t, map[string]string{
		"iac/dev/app/a/config.json":  `{"size":1}`,
		"iac/dev/app/b/config.json":  `{"size":2}`,
		"iac/prod/app/a/config.json": `{"size":3}`,
	})
	args := []string{"--repo", repo, "--state-dir", t.TempDir()}
	run := func(extra ...string) string {
		t.Helper()
		code, out, stderr := karma(t, append(append([]string{"params", "publish"}, extra...), args...)...)
		if code != 0 {
			t.Fatalf("params publish %v: exit %d: %s", extra, code, stderr)
		}
		return out
	}
	step := func(name string, want []string, wantSummary string) {
		t.Helper()
		dry := run("--dry-run")
		if got := writes(dry); !slices.Equal(got, want) || !strings.Contains(dry, "dry run: nothing written") {
			t.Errorf("%s: dry run lists %v, want %v:\n%s", name, got, want, dry)
		}
		real := run()
		if got := writes(real); !slices.Equal(got, want) || !strings.Contains(real, wantSummary) {
			t.Errorf("%s: the run wrote %v, want what the dry run listed, %v:\n%s", name, got, want, real)
		}
	}
	step("first publish", []string{"/iac/app/a/config dev v1", "/iac/app/a/config prod v1", "/iac/app/b/config dev v1"}, "3 published, 0 unchanged")
	step("nothing changed", nil, "0 published, 3 unchanged")
	if err := os.WriteFile(filepath.Join(repo, "iac", "dev", "app", "b", "config.json"), []byte(`{"size":20}`), 0o644); err != nil {
		t.Fatal(err)
	}
	step("one config changed", []string{"/iac/app/b/config dev v2"}, "1 published, 2 unchanged")
}

// params publish names, in each parameter's description, the commit the config came from
// (params.Provenance: "karma: commit=<sha> file=…"), and Karma's own writes are not changes to
// ingest: a config edited in the working tree and not committed is refused — the dry run too —
// naming the component, rather than published under a commit that does not hold it. Once
// committed it is published, and its description names the commit that holds it.
func TestParamsPublishRefusesUncommittedConfig(t *testing.T) {
	repo := writeFiles(t, map[string]string{
		"iac/dev/app/a/config.json": `{"size":1}`,
		"iac/dev/app/b/config.json": `{"size":2}`,
	})
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	commitAs(t, repo, "Ada", "initial config")
	args := []string{"--repo", repo, "--state-dir", t.TempDir()}
	if code, _, stderr := karma(t, append([]string{"params", "publish"}, args...)...); code != 0 {
		t.Fatalf("publish of a clean checkout: exit %d: %s", code, stderr)
	}
	if err := os.WriteFile(filepath.Join(repo, "iac", "dev", "app", "b", "config.json"), []byte(`{"size":20}`), 0o644); err != nil {
		t.Fatal(err)
	}
	head := git(t, repo, "rev-parse", "HEAD")
	for _, extra := range [][]string{{"--dry-run"}, nil} {
		code, out, stderr := karma(t, append(append([]string{"params", "publish"}, extra...), args...)...)
		if code != 1 || !strings.Contains(stderr, "dev/app/b") || !strings.Contains(stderr, "not commit "+head[:12]) ||
			strings.Contains(stderr, "dev/app/a ") || len(writes(out)) != 0 {
			t.Errorf("publish %v of an uncommitted config: exit %d\nstdout %s\nstderr %s\nwant exit 1 naming dev/app/b and commit %.12s, nothing published", extra, code, out, stderr, head)
		}
	}
	_, got, _ := karma(t, append([]string{"params", "get", "/iac/app/b/config", "--env", "dev", "--json"}, args...)...)
	if !strings.Contains(got, `{\"size\":2}`) || !strings.Contains(got, "commit="+head) {
		t.Errorf("after the refusal /iac/app/b/config is\n%s\nwant the committed value, described by commit %s", got, head)
	}
	// Committed, it is published under the commit that holds it.
	next := commitAs(t, repo, "Ada", "b grows")
	if code, out, stderr := karma(t, append([]string{"params", "publish"}, args...)...); code != 0 || !slices.Equal(writes(out), []string{"/iac/app/b/config dev v2"}) {
		t.Fatalf("publish of the commit: exit %d: %s %s", code, out, stderr)
	}
	_, got, _ = karma(t, append([]string{"params", "get", "/iac/app/b/config", "--env", "dev", "--json"}, args...)...)
	if !strings.Contains(got, "commit="+next) {
		t.Errorf("/iac/app/b/config after the commit:\n%s\nwant its description to name commit %s", got, next)
	}
}
