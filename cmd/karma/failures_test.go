package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/terraform"
)

// quotaModule is added to the route53-zone module of the demo repository: its creation (again
// when the zone or its comment changes) fails, as a cloud API would, while the file
// config.quota_flag exists.
const quotaModule = `
resource "terraform_data" "quota" {
  triggers_replace = [local.zone_id, try(var.config.comment, "")]

  provisioner "local-exec" {
    command = "if [ -e '${try(var.config.quota_flag, "")}' ]; then echo 'quota exceeded: 500 hosted zones per account' >&2; exit 3; fi"
  }
}
`

// failingRepo is the demo repository (one commit by Ada) whose prod/route53-zone/main fails to
// apply while the returned flag file exists (it does at first). route53-zone/main is defined in
// prod only; prod/serverless-api/public and prod/serverless-site/www depend on it.
func failingRepo(t *testing.T) (repo, state, flag string) {
	t.Helper()
	dir := t.TempDir()
	repo, state, flag = filepath.Join(dir, "repo"), filepath.Join(dir, "state"), filepath.Join(dir, "quota-exceeded")
	if out, err := exec.Command("cp", "-r", filepath.Join("..", "..", "examples"), repo).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	module := filepath.Join(repo, "components", "route53-zone", "main.tf")
	src, err := os.ReadFile(module)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(module, append(src, quotaModule...), 0o644); err != nil {
		t.Fatal(err)
	}
	editJSON(t, filepath.Join(repo, "iac", "prod", "route53-zone", "main", "config.json"), func(d map[string]any) { d["quota_flag"] = flag })
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	commitAs(t, repo, "Ada", "initial config")
	return repo, state, flag
}

// run runs karma with the repository and state of a test; want is the exit code expected.
func runIn(t *testing.T, g *globals, want int, args ...string) string {
	t.Helper()
	code, out, stderr := karmaWith(t, g, append(args, "--repo", g.repo, "--state-dir", g.stateDir)...)
	if code != want {
		t.Fatalf("karma %v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, code, want, out, stderr)
	}
	return out + stderr
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

var failedDep = regexp.MustCompile(`prod/route53-zone/main failed \((dep-[0-9a-f]{16})\)`)

// A failed apply shows terraform's own error and keeps it in the record; the commit ingested again
// says how to run it again; karma retry runs it again from the same commit, then its dependents,
// with "retry of" in the lineage — and refuses what it must not run again.
func TestFailedDeploymentExplainedAndRetried(t *testing.T) {
	needTerraform(t)
	repo, state, flag := failingRepo(t)
	g := &globals{paramsBackend: "embedded", repo: repo, stateDir: state}
	runIn(t, g, 0, "ingest", "commit", "--auto-approve")
	out := runIn(t, g, 1, "apply", "--auto-approve")
	mustContain(t, "apply output", out,
		"prod/route53-zone/main           FAILED", "apply: terraform apply prod/route53-zone/main: exit status 1",
		"Error: local-exec provisioner error (module.component.terraform_data.quota, route53-zone/main.tf:", "quota exceeded: 500 hosted zones per account",
		"prod/serverless-api/public       skipped   upstream-failed", "karma retry dep-")
	m := failedDep.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no failed deployment id in:\n%s", out)
	}
	failed := m[1]

	// The record keeps terraform's words.
	l := openLineage(t, state)
	d, err := l.Deployment(context.Background(), failed)
	if err != nil || d.Status != lineage.StatusFailed || !strings.Contains(d.Detail, "quota exceeded: 500 hosted zones per account") {
		t.Fatalf("deployment %s recorded as %+v (%v)", failed, d, err)
	}
	// lineage takes <type>/<nickname> when one environment defines it, as impact does.
	mustContain(t, "lineage", runIn(t, g, 0, "lineage", "route53-zone/main"), failed+"  failed", "quota exceeded")
	mustContain(t, "lineage of a component of two environments", runIn(t, g, 2, "lineage", "vpc/core"),
		"vpc/core is defined in dev/vpc/core, prod/vpc/core: choose one with --env")

	// The commit again: said, not queued.
	head := git(t, repo, "rev-parse", "HEAD")
	again := runIn(t, g, 0, "ingest", "commit")
	mustContain(t, "ingest again", again, "commit "+head[:12]+" was already ingested as change ", "nothing queued", "to run it again: karma retry ")
	change := regexp.MustCompile(`as change (\S+) `).FindStringSubmatch(again)[1]
	mustContain(t, "apply after the ingest again", runIn(t, g, 0, "apply", "--auto-approve"), "") // nothing to run
	if n := countChangeSets(t, state); n != 2 {
		t.Errorf("%d change sets after ingesting the commit again, want 2 (prod, dev)", n)
	}

	// Refused: unknown, not failed.
	mustContain(t, "retry of an unknown id", runIn(t, g, 2, "retry", "dep-0000000000000000"), "deployment dep-0000000000000000: unknown id")
	vpc := latestDeployment(t, l, "prod/vpc/core")
	mustContain(t, "retry of an applied deployment", runIn(t, g, 1, "retry", vpc.ID), "deployment "+vpc.ID+" (prod/vpc/core, change ", "did not fail: it is applied")

	// Fixed outside (the quota raised): run it again, from the same commit, dependents included.
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	retried := runIn(t, g, 0, "retry", failed, "--as", "grace")
	mustContain(t, "retry", retried, "at commit "+head[:12], failed+" runs again as dep-", "(retry of "+failed+")",
		"blocked by the failure, decided again once it deploys: prod/serverless-api/public, prod/serverless-site/www", "next: karma apply ")
	done := runIn(t, g, 0, "apply", "--auto-approve")
	mustContain(t, "apply of the retry", done, "prod/route53-zone/main           applied", "prod/serverless-api/public       applied",
		"prod/serverless-site/www         applied", "0 failed, 0 blocked — done")
	again = runIn(t, g, 0, "lineage", "route53-zone/main")
	mustContain(t, "lineage of the retry", again, "applied", "<- retry of "+failed+", run again by grace (cli)", failed+"  failed", "quota exceeded",
		"<- root: commit "+head)
	mustContain(t, "forward lineage", runIn(t, g, 0, "lineage", "--forward", head), "(retry of "+failed+", by grace)")

	// Refused: run again already; a change with nothing failed.
	mustContain(t, "second retry", runIn(t, g, 1, "retry", failed), "was run again already, as dep-", "which is applied")
	mustContain(t, "retry of a change with nothing failed", runIn(t, g, 1, "retry", change), "has no failed deployment")

	// A later change fails it, a still later one deploys it: the failure is not run again.
	editJSON(t, filepath.Join(repo, "iac", "prod", "route53-zone", "main", "config.json"), func(d map[string]any) { d["comment"] = "zone, second take" })
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	commitAs(t, repo, "Bob", "comment the zone")
	runIn(t, g, 0, "ingest", "commit", "--auto-approve")
	m = failedDep.FindStringSubmatch(runIn(t, g, 1, "apply", "--auto-approve"))
	if m == nil {
		t.Fatal("the second change did not fail")
	}
	os.Remove(flag)
	editJSON(t, filepath.Join(repo, "iac", "prod", "route53-zone", "main", "config.json"), func(d map[string]any) { d["comment"] = "zone, third take" })
	carol := commitAs(t, repo, "Carol", "comment the zone again")
	runIn(t, g, 0, "ingest", "commit", "--auto-approve")
	runIn(t, g, 0, "apply", "--auto-approve")
	mustContain(t, "retry under a later deployment", runIn(t, g, 1, "retry", m[1]), "nothing retried: the later change ", "(commit "+carol[:12]+") deployed prod/route53-zone/main since",
		"commit the fix and ingest it")
}

// A reviewed plan gone stale (the workspace's state changed after planning, here by a terraform
// run outside Karma) is planned again and waits for a new review instead of failing.
func TestStalePlanIsPlannedAgainForReview(t *testing.T) {
	needTerraform(t)
	repo, state := demoRepo(t)
	g := &globals{paramsBackend: "embedded", repo: repo, stateDir: state}
	runIn(t, g, 0, "ingest", "commit", "--auto-approve")
	runIn(t, g, 0, "apply", "--auto-approve")
	editJSON(t, filepath.Join(repo, "iac", "prod", "vpc", "core", "config.json"), func(d map[string]any) { d["az_count"] = 4 })
	commitAs(t, repo, "Bob", "one more AZ")
	runIn(t, g, 0, "ingest", "commit")
	planned := runIn(t, g, 0, "plan")
	change := regexp.MustCompile(`waiting for approval \(karma apply (\S+)\)`).FindStringSubmatch(planned)
	if change == nil {
		t.Fatalf("no change waiting for approval:\n%s", planned)
	}

	root := filepath.Join(state, "work", "prod", "vpc", "core")
	tf := exec.Command("terraform", "apply", "-auto-approve", "-input=false", "-no-color")
	tf.Dir, tf.Env = root, append(os.Environ(), "CHECKPOINT_DISABLE=1")
	if out, err := tf.CombinedOutput(); err != nil {
		t.Fatalf("terraform apply outside Karma: %v\n%s", err, out)
	}

	out := runIn(t, g, 0, "apply", change[1], "--auto-approve")
	mustContain(t, "apply of a stale plan", out, "prod/vpc/core                    planned again", "the reviewed plan went stale",
		"waiting for approval (karma apply "+change[1]+")")
	if strings.Contains(out, "FAILED") || strings.Contains(out, "prod/vpc/core                    applied") {
		t.Fatalf("the stale plan failed or was applied without review:\n%s", out)
	}
	mustContain(t, "plan after", runIn(t, g, 0, "plan"), "waiting for approval (karma apply "+change[1]+")")
	out = runIn(t, g, 0, "apply", change[1], "--auto-approve")
	mustContain(t, "apply of the reviewed new plan", out, "prod/vpc/core                    applied", "changed: private_subnet_ids",
		"prod/ecs-service/api             applied", "— done")
}

func openLineage(t *testing.T, state string) *embedded.Lineage {
	t.Helper()
	l, _, _ := stores(t, state)
	return l
}

func countChangeSets(t *testing.T, state string) int {
	t.Helper()
	db, err := embedded.Open(filepath.Join(state, "karma.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cs, err := embedded.NewChangeSets(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	all, err := cs.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(all)
}

func latestDeployment(t *testing.T, l lineage.Store, component string) lineage.Deployment {
	t.Helper()
	ds, err := l.Deployments(context.Background(), component)
	if err != nil || len(ds) == 0 {
		t.Fatalf("deployments of %s: %v (%v)", component, ds, err)
	}
	return ds[0]
}

// A commit ingested again — before or after it ran, or the commit a proposed change became — is
// answered with its change; nothing is queued. (No terraform: terraform.Noop.)
func TestIngestAgainSaysWhichChange(t *testing.T) {
	repo := writeFiles(t, map[string]string{"iac/prod/app/a/config.json": `{"size": 1}`, "iac/prod/app/b/config.json": `{"size": 2}`,
		"components/app/main.tf": "# terraform.Noop reads no module\n"})
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	commitAs(t, repo, "Ada", "two apps")
	g := &globals{paramsBackend: "embedded", repo: repo, stateDir: t.TempDir(), testRunner: &terraform.Noop{}}
	head := git(t, repo, "rev-parse", "HEAD")
	first := runIn(t, g, 0, "ingest", "commit", "--auto-approve")
	change := regexp.MustCompile(`-> change (\S+) queued`).FindStringSubmatch(first)[1]
	mustContain(t, "before it ran", runIn(t, g, 0, "ingest", "commit", head),
		"commit "+head[:12]+" was already ingested as change "+change+" (state: queued, not resolved yet: karma plan or karma apply runs it); nothing queued")
	runIn(t, g, 0, "apply", "--auto-approve")
	mustContain(t, "after it ran", runIn(t, g, 0, "ingest", "commit"),
		"was already ingested as change "+change+" (state: ", "prod: 2 applied, 0 skipped, 0 failed, 0 blocked — done", "nothing queued",
		"nothing of it failed, so 'karma retry "+change+"' has nothing to run again")

	proposal := filepath.Join(t.TempDir(), "vpc.json")
	if err := os.WriteFile(proposal, []byte(`{"size": 10}`), 0o644); err != nil {
		t.Fatal(err)
	}
	proposed := runIn(t, g, 0, "propose-change", "app", "a", "--env", "prod", "--input", proposal, "--auto-approve")
	request := regexp.MustCompile(`change (\S+) queued`).FindStringSubmatch(proposed)[1]
	mustContain(t, "the proposal's commit", runIn(t, g, 0, "ingest", "commit"), "was already ingested as change "+request+" ", "nothing queued")
	runIn(t, g, 0, "apply", "--auto-approve")
	mustContain(t, "the proposal's commit, resolved", runIn(t, g, 0, "ingest", "commit"), "was already ingested as change "+request+" (state: prod: ")
	if n := countChangeSets(t, g.stateDir); n != 2 {
		t.Errorf("%d change sets, want 2 (the first commit, the proposal)", n)
	}
}
