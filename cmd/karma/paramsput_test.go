package main

import (
	"context"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/terraform"
)

// karma params put queues the write's parameter.changed; the ingest stage, run by karma apply,
// makes a component's /config written outside Karma the change the command named, by whom it
// was written; another parameter is recorded (the trigger, in the audit log) and deploys nothing.
// (No terraform: terraform.Noop.)
func TestParamsPutIsIngested(t *testing.T) {
	repo := writeFiles(t, map[string]string{"iac/prod/app/a/config.json": `{"size": 1}`,
		"components/app/main.tf": "# terraform.Noop reads no module\n"})
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	commitAs(t, repo, "Ada", "one app")
	g := &globals{paramsBackend: "embedded", repo: repo, stateDir: t.TempDir(), testRunner: &terraform.Noop{}}

	out := runIn(t, g, 0, "params", "put", "/iac/app/a/config", `{"size":3}`, "--env", "prod", "--as", "dave", "--auto-approve")
	m := regexp.MustCompile(`/iac/app/a/config version 1 written by dave -> parameter.changed queued \(change (\S+) when`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("params put said %s", out)
	}
	change := m[1]
	runIn(t, g, 0, "apply", "--auto-approve")
	runIn(t, g, 0, "params", "put", "/iac/notes", `anything`, "--env", "prod", "--as", "dave")
	runIn(t, g, 0, "apply", "--auto-approve")

	db, err := embedded.Open(filepath.Join(g.stateDir, "karma.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	css, err := embedded.NewChangeSets(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	all, err := css.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 {
		t.Fatalf("%d change sets, want 1: the /config write's (the other parameter deploys nothing)", len(all))
	}
	cs := all[0]
	if cs.ID != change || cs.Source != message.SourceParameter || cs.Actor.Name != "dave" || !cs.Done() || cs.Nodes["prod/app/a"] == nil {
		t.Errorf("change set %s (%s by %+v, done %v, nodes %v): want change %s deploying prod/app/a, by dave", cs.ID, cs.Source, cs.Actor, cs.Done(), cs.Nodes, change)
	}
	mustContain(t, "audit log", runIn(t, g, 0, "audit", "log"), "parameter.changed", "change.detected")
}
