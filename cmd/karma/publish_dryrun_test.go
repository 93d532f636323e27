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
