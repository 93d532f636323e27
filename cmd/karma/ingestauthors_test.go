package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/terraform"
)

// `karma ingest commit` of a head that brings commits never handed over deploys what each of them
// changed and names the author of each, as a push does: Mallory's change of app b, with Ada's
// change of app a on top, deploys b too, under both names, so a policy about who may change a
// component sees Mallory (before, only the head's files were queued — b's change was left in the
// tree, undeployed — and only Ada was named, so Mallory's commit went out as hers). A commit
// ingested already ends the list: the next commit names its own author alone.
func TestIngestCommitDeploysEveryCommitSinceTheLastIngested(t *testing.T) {
	repo := writeFiles(t, map[string]string{
		"iac/prod/app/a/config.json": `{"size": 1}`, "iac/prod/app/b/config.json": `{"size": 2}`,
		"components/app/main.tf": "# terraform.Noop reads no module\n",
		"policies/owners.rego": `package karma

owners := {"Ada <ada@example.com>"}

deny contains msg if {
	input.component.root
	some a in array.concat([input.change.author], input.change.push_authors)
	not owners[a]
	msg := sprintf("%s may not change %s", [a, input.component.id])
}
`})
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	first := commitAs(t, repo, "Ada", "two apps")
	g := &globals{paramsBackend: "embedded", repo: repo, stateDir: t.TempDir(), testRunner: &terraform.Noop{}}
	runIn(t, g, 0, "ingest", "commit", "--auto-approve")
	runIn(t, g, 0, "apply", "--auto-approve")
	if cs := changeSetOf(t, g.stateDir, first, "prod"); !slices.Equal(cs.PushAuthors, []string{"Ada <ada@example.com>"}) {
		t.Errorf("the first commit's authors: %q", cs.PushAuthors)
	}

	size := func(app string, n int) {
		t.Helper()
		p := filepath.Join(repo, "iac", "prod", "app", app, "config.json")
		if err := os.WriteFile(p, []byte(`{"size": `+strings.Repeat("1", n)+`}`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	size("b", 3)
	commitAs(t, repo, "Mallory", "b: bigger")
	size("a", 4)
	head := commitAs(t, repo, "Ada", "a: bigger")
	runIn(t, g, 0, "ingest", "commit", "--auto-approve")
	runIn(t, g, 0, "apply", "--auto-approve")
	cs := changeSetOf(t, g.stateDir, head, "prod")
	if want := []string{"Ada <ada@example.com>", "Mallory <mallory@example.com>"}; !slices.Equal(cs.PushAuthors, want) {
		t.Errorf("authors of Ada's commit on Mallory's: %q, want %q", cs.PushAuthors, want)
	}
	for _, app := range []string{"a", "b"} {
		if n := cs.Nodes["prod/app/"+app]; n == nil || !n.Root || n.State != changeset.Skipped || n.Reason != changeset.ReasonPolicyDenied ||
			!strings.Contains(n.Detail, "Mallory <mallory@example.com> may not change prod/app/"+app) {
			t.Errorf("app %s, of a push holding Mallory's commit under Ada's: %+v; want it denied naming Mallory", app, n)
		}
	}

	size("b", 5)
	next := commitAs(t, repo, "Ada", "b: bigger")
	runIn(t, g, 0, "ingest", "commit", "--auto-approve")
	runIn(t, g, 0, "apply", "--auto-approve")
	cs = changeSetOf(t, g.stateDir, next, "prod")
	if want := []string{"Ada <ada@example.com>"}; !slices.Equal(cs.PushAuthors, want) {
		t.Errorf("authors of a commit on an ingested one: %q, want %q", cs.PushAuthors, want)
	}
	if n := cs.Nodes["prod/app/b"]; n == nil || n.State != changeset.Applied {
		t.Errorf("app b, Ada's: %+v", n)
	}
}
