//go:build unix

package terraform

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Init holds the provider plugin cache's lock (TF_PLUGIN_CACHE_DIR) while terraform runs, so that
// the inits of two workspaces sharing the cache — terraform's cache is not safe for concurrent
// inits — never overlap; the lock is free again afterwards. The stand-in terraform tries the
// lock itself (flock(1), which excludes Karma's flock(2)). Not parallel: the cache is named in
// the environment.
func TestInitHoldsThePluginCacheLock(t *testing.T) {
	flock, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("skipped: no flock(1) on the PATH")
	}
	cache := t.TempDir()
	t.Setenv("TF_PLUGIN_CACHE_DIR", cache)
	dir := t.TempDir()
	script := fmt.Sprintf(`#!/bin/sh
case "$1" in
version) echo '{"terraform_version":"1.11.4","platform":"linux_amd64","provider_selections":{},"terraform_outdated":false}' ;;
init)
  mkdir -p .terraform
  if '%[2]s' -n "$TF_PLUGIN_CACHE_DIR/.karma.lock" true; then echo free >> '%[1]s/cache'; else echo held >> '%[1]s/cache'; fi ;;
*) echo "unexpected: $*" >&2; exit 1 ;;
esac
`, dir, flock)
	exe := filepath.Join(dir, "terraform")
	if err := os.WriteFile(exe, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r := NewTFExec(exe)
	for _, nick := range []string{"a", "b"} {
		ws := Workspace{Root: t.TempDir(), ModuleDir: t.TempDir(), Env: "prod", Type: "cache", Nickname: nick, Config: json.RawMessage(`{}`)}
		if err := initWorkspace(t, r, ws); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "cache")); string(got) != "held\nheld\n" {
		t.Fatalf("the plugin cache's lock during each init: %q, want held both times", got)
	}
	if out, err := exec.Command(flock, "-n", filepath.Join(cache, ".karma.lock"), "true").CombinedOutput(); err != nil {
		t.Fatalf("the plugin cache's lock after init: %v %s, want it free", err, out)
	}
}
