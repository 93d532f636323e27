package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usekarma/karma/shared/terraform"
)

// A commit that changes only a component type's Terraform module redeploys that type's
// components (docs/triggers.md), whatever the modules folder karma.json names: `karma ingest
// commit` classified the commit's files against no modules folder at all, so it said the commit
// "changes nothing Karma deploys" and queued nothing (the webhook function queues it).
func TestIngestCommitOfAModuleChangeDeploysItsType(t *testing.T) {
	for _, dir := range []string{"components", "modules"} {
		t.Run(dir, func(t *testing.T) {
			repo, state := demoRepo(t)
			if dir != "components" {
				git(t, repo, "mv", "components", dir)
				if err := os.WriteFile(filepath.Join(repo, "karma.json"), []byte(`{"prefix": "/iac", "modules_dir": "`+dir+`"}`+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				commitAs(t, repo, "Ada", "modules under "+dir)
			}
			g := &globals{paramsBackend: "embedded", testRunner: &terraform.Noop{}}
			base := []string{"--repo", repo, "--state-dir", state}

			f := filepath.Join(repo, dir, "vpc", "main.tf")
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f, append(b, "\n# a change of the vpc module\n"...), 0o644); err != nil {
				t.Fatal(err)
			}
			sha := commitAs(t, repo, "Ann", "vpc module")
			out := karmaOK(t, g, append([]string{"ingest", "commit", sha}, base...)...)
			if !strings.Contains(out, "queued") {
				t.Fatalf("ingest commit of a module change queued nothing:\n%s", out)
			}
			karmaWith(t, g, append([]string{"plan"}, base...)...) // resolve makes its change sets (terraform.Noop: dependents fail)
			cs := changeSetOf(t, state, sha, "prod")
			if n := cs.Nodes["prod/vpc/core"]; n == nil || !n.Root {
				t.Errorf("the module change does not redeploy prod/vpc/core: %+v", cs.Nodes)
			}
		})
	}
}

// The same push as a webhook to karma serve: a push changing only a module is queued (202), as
// the webhook function queues it, not ignored as "nothing Karma deploys" (200).
func TestServeQueuesAPushOfAModuleChange(t *testing.T) {
	for _, dir := range []string{"components", "modules"} {
		t.Run(dir, func(t *testing.T) {
			repo, state := demoRepo(t)
			if dir != "components" {
				git(t, repo, "mv", "components", dir)
				if err := os.WriteFile(filepath.Join(repo, "karma.json"), []byte(`{"prefix": "/iac", "modules_dir": "`+dir+`"}`+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				commitAs(t, repo, "Ada", "modules under "+dir)
			}
			before := git(t, repo, "rev-parse", "HEAD")
			f := filepath.Join(repo, dir, "vpc", "main.tf")
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f, append(b, "\n# a change of the vpc module\n"...), 0o644); err != nil {
				t.Fatal(err)
			}
			sha := commitAs(t, repo, "Ann", "vpc module")
			sv := startServe(t, &globals{testRunner: stubTerraform{}, testRetryBase: 10 * time.Millisecond},
				"--repo", repo, "--state-dir", state, "--secret", "github:acme/config="+serveSecret, "--reconcile", "0")
			push := ghPush("refs/heads/main", before, sha, "ann", ghCommitOf(t, repo, before, sha))
			if code, body := sv.post(t, push, ghHeaders("push", uuid.NewString(), serveSecret, push)); code != 202 || !strings.Contains(body, "queued") {
				t.Errorf("a push changing only %s/vpc/main.tf: %d %s; want 202 queued", dir, code, body)
			}
		})
	}
}
