package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A proposal still holding the placeholder GET /components and the web page show for a secret
// ("(sensitive value)") is refused by POST /request-change (422): committed, it would replace
// the secret. The CLI's propose-change committed and queued it; now it refuses it too, naming
// each pointer, with nothing committed or queued.
func TestProposeChangeRefusesTheRedactionPlaceholder(t *testing.T) {
	repo, state := demoRepo(t)
	head := git(t, repo, "rev-parse", "HEAD")
	b, err := os.ReadFile(filepath.Join(repo, "iac", "prod", "vpc", "core", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	doc["az_count"] = 2
	doc["tags"].(map[string]any)["Owner"] = "(sensitive value)"
	in := filepath.Join(t.TempDir(), "proposal.json")
	raw, _ := json.Marshal(doc)
	if err := os.WriteFile(in, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := karmaWith(t, &globals{paramsBackend: "embedded"}, "propose-change", "vpc", "core", "--env", "prod", "--input", in, "--as", "Ada <ada@example.com>",
		"--repo", repo, "--state-dir", state)
	if code != 1 || !strings.Contains(errOut, "/tags/Owner") || !strings.Contains(errOut, "nothing committed or queued") {
		t.Errorf("propose-change of a proposal holding the placeholder: exit %d\n%s%s\nwant exit 1 naming /tags/Owner", code, out, errOut)
	}
	if now := git(t, repo, "rev-parse", "HEAD"); now != head {
		t.Errorf("HEAD moved from %.12s to %.12s: the placeholder was committed", head, now)
	}
	if _, err := os.Stat(filepath.Join(state, "karma.db")); err == nil && len(changeSets(t, state)) > 0 {
		t.Errorf("a change was queued: %d change set(s)", len(changeSets(t, state)))
	}
}
