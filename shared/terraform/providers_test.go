//go:build unix

package terraform

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// A workspace whose provider package is gone — terraform links it from the plugin cache or a
// mirror, and the cache was emptied since — is initialised again: the marker alone said it was
// initialised, and every plan of it failed ("there is no package ... cached in
// .terraform/providers") until its main.tf or module changed.
func TestInitRunsAgainWhenAnInstalledProviderIsGone(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cache := filepath.Join(t.TempDir(), "cache")
	pkg := filepath.Join(cache, "registry.terraform.io", "hashicorp", "aws", "1.0.0", "linux_amd64")
	script := fmt.Sprintf(`#!/bin/sh
case "$1" in
version) echo '{"terraform_version":"1.11.4","platform":"linux_amd64","provider_selections":{},"terraform_outdated":false}' ;;
init)
  echo init >> '%[1]s/inits'
  mkdir -p '%[2]s' .terraform/providers/registry.terraform.io/hashicorp/aws/1.0.0
  ln -sfn '%[2]s' .terraform/providers/registry.terraform.io/hashicorp/aws/1.0.0/linux_amd64 ;;
*) echo "unexpected: $*" >&2; exit 1 ;;
esac
`, dir, pkg)
	exe := filepath.Join(dir, "terraform")
	if err := os.WriteFile(exe, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r := NewTFExec(exe)
	ws := Workspace{Root: t.TempDir(), ModuleDir: t.TempDir(), Env: "prod", Type: "cache", Nickname: "core", Config: json.RawMessage(`{}`)}
	inits := func() int {
		data, _ := os.ReadFile(filepath.Join(dir, "inits"))
		return len(data) / len("init\n")
	}
	for i, want := range []int{1, 1} {
		if err := initWorkspace(t, r, ws); err != nil {
			t.Fatal(err)
		}
		if got := inits(); got != want {
			t.Fatalf("after prepare %d: %d inits, want %d", i+1, got, want)
		}
	}
	if err := os.RemoveAll(cache); err != nil { // the plugin cache emptied
		t.Fatal(err)
	}
	if err := initWorkspace(t, r, ws); err != nil {
		t.Fatal(err)
	}
	if got := inits(); got != 2 {
		t.Fatalf("%d inits, want a second once the installed package was gone", got)
	}
}
