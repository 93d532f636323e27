package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/terraform"
)

// A parameter deleted and created again starts again at version 1. Its new version 1, written
// outside Karma, is a change of its own: through `karma params put` and through the reconcile
// job alike it is scheduled, applied and recorded, not dropped as a duplicate of the version 1
// before the deletion. (No terraform: terraform.Noop.)
func TestAParameterCreatedAgainDeploysAgain(t *testing.T) {
	for _, path := range []string{"params put", "reconcile"} {
		t.Run(path, func(t *testing.T) {
			repo := writeFiles(t, map[string]string{"iac/prod/app/a/config.json": `{"size": 1}`,
				"components/app/main.tf": "# terraform.Noop reads no module\n"})
			git(t, repo, "init", "-q", "-b", "main")
			git(t, repo, "add", "-A")
			commitAs(t, repo, "Ada", "one app")
			g := &globals{paramsBackend: "embedded", repo: repo, stateDir: t.TempDir(), testRunner: &terraform.Noop{}}
			const name = "/iac/app/a/config"
			write := func(value, who string) {
				t.Helper()
				switch path {
				case "params put":
					out := runIn(t, g, 0, "params", "put", name, value, "--env", "prod", "--as", who, "--auto-approve")
					if !regexp.MustCompile(name + ` version 1 written by ` + who).MatchString(out) {
						t.Fatalf("params put said %s", out)
					}
				case "reconcile": // written by someone whose event never came: the reconcile job finds it
					withParams(t, g, func(ps *embedded.ParamStore) {
						if r, err := ps.Put(context.Background(), params.PutInput{Name: name, Value: value, User: who}); err != nil || r.Version != 1 {
							t.Fatalf("put: version %d, %v; want version 1", r.Version, err)
						}
					})
					reconcileOnce(t, g)
				}
				runIn(t, g, 0, "apply", "--auto-approve")
			}
			write(`{"size":3}`, "dave")
			withParams(t, g, func(ps *embedded.ParamStore) {
				if err := ps.Delete(context.Background(), name); err != nil {
					t.Fatal(err)
				}
			})
			write(`{"size":4}`, "erin")

			sets := changeSets(t, g.stateDir) // newest first
			if len(sets) != 2 {
				t.Fatalf("%d change set(s), want 2: the version 1 written after the deletion was taken for the one before it", len(sets))
			}
			for i, who := range []string{"erin", "dave"} {
				cs := sets[i]
				n := cs.Nodes["prod/app/a"]
				if cs.Source != message.SourceParameter || n == nil || n.State != changeset.Applied || n.DeploymentID == "" || len(cs.RootCauses) != 1 {
					t.Fatalf("change set %d (%s): source %s, node %+v, root causes %+v: want prod/app/a applied", i, cs.ID, cs.Source, n, cs.RootCauses)
				}
				if cs.Actor.Name != who {
					t.Errorf("change set %d (%s): by %+v, want %s", i, cs.ID, cs.Actor, who)
				}
				mustContain(t, "lineage", runIn(t, g, 0, "lineage", n.DeploymentID), n.DeploymentID, name+"@1")
			}
		})
	}
}

// withParams hands fn prod's embedded parameter store, on the state file of g.
func withParams(t *testing.T, g *globals, fn func(*embedded.ParamStore)) {
	t.Helper()
	db, err := embedded.Open(filepath.Join(g.stateDir, "karma.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ps, err := embedded.NewParamStore(db, "prod")
	if err != nil {
		t.Fatal(err)
	}
	fn(ps)
}

// reconcileOnce runs karma serve's reconcile job once over g's stores.
func reconcileOnce(t *testing.T, g *globals) {
	t.Helper()
	s, st, err := g.openStack(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	(&serveReconciler{st: st, log: slog.New(slog.NewTextHandler(io.Discard, nil)), auto: true, stores: map[string]params.Store{}}).once(context.Background())
}

// A version the reconcile job found whose trigger ingest dead-letters — a /runtime that is not a
// JSON object — is in the dead-letter queue once, with its reason: not published again on every
// run of the job (each a dead letter more, and a trigger in the audit log naming a change that
// never comes).
func TestAReconciledVersionIsPublishedOnce(t *testing.T) {
	repo := writeFiles(t, map[string]string{"iac/prod/app/a/config.json": `{"size": 1}`,
		"components/app/main.tf": "# terraform.Noop reads no module\n"})
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	commitAs(t, repo, "Ada", "one app")
	g := &globals{paramsBackend: "embedded", repo: repo, stateDir: t.TempDir(), testRunner: &terraform.Noop{}}
	withParams(t, g, func(ps *embedded.ParamStore) {
		if _, err := ps.Put(context.Background(), params.PutInput{Name: "/iac/app/a/runtime", Value: "not an object", User: "dave"}); err != nil {
			t.Fatal(err)
		}
	})
	for range 3 {
		reconcileOnce(t, g)
		runIn(t, g, 0, "apply", "--auto-approve")
	}
	out := runIn(t, g, 0, "dlq", "list")
	mustContain(t, "dlq list", out, "runtime is not a JSON object")
	if n := strings.Count(out, "runtime is not a JSON object"); n != 1 {
		t.Errorf("%d dead letters of the one version, want 1:\n%s", n, out)
	}
	if n := strings.Count(runIn(t, g, 0, "audit", "log"), "parameter.changed"); n != 1 {
		t.Errorf("%d parameter.changed in the audit log, want 1", n)
	}
}
