package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/message"
)

// changeSets opens the change sets of a state directory.
func changeSets(t *testing.T, state string) []*changeset.ChangeSet {
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
	return all
}

func changeSetOf(t *testing.T, state, commit, env string) *changeset.ChangeSet {
	t.Helper()
	for _, cs := range changeSets(t, state) {
		if cs.Commit == commit && cs.Env == env {
			return cs
		}
	}
	t.Fatalf("no change set of commit %.12s in %s", commit, env)
	return nil
}

// deployedAZs is the az_count of the config a change set's apply of prod/vpc/core deployed.
func deployedAZs(t *testing.T, cs *changeset.ChangeSet) float64 {
	t.Helper()
	n := cs.Nodes["prod/vpc/core"]
	if n == nil || n.Outcome == nil {
		t.Fatalf("change set %s (commit %.12s) did not apply prod/vpc/core: %+v", cs.ID, cs.Commit, n)
	}
	var cfg map[string]any
	if err := json.Unmarshal(n.Outcome.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	az, _ := cfg["az_count"].(float64)
	return az
}

func karmaOK(t *testing.T, g *globals, args ...string) string {
	t.Helper()
	code, out, errOut := karmaWith(t, g, args...)
	if code != 0 {
		t.Fatalf("karma %s: exit %d\n%s\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// The case: commit A (az_count 4), then commit B (az_count 5), both ingested before
// anything is applied. A's deployment applies A's tree and B's applies B's, in commit order (B
// waits behind A), and the lineage credits each commit with its own change. An edit that is not
// committed is never deployed.
func TestEachCommitDeploysItsOwnTreeInOrder(t *testing.T) {
	needTerraform(t)
	repo, state := demoRepo(t)
	g := &globals{paramsBackend: "embedded"}
	base := []string{"--repo", repo, "--state-dir", state}
	karmaOK(t, g, append([]string{"ingest", "commit", "--auto-approve"}, base...)...)
	karmaOK(t, g, append([]string{"apply", "--auto-approve"}, base...)...)

	vpc := filepath.Join(repo, "iac", "prod", "vpc", "core", "config.json")
	editJSON(t, vpc, func(d map[string]any) { d["az_count"] = 4 })
	a := commitAs(t, repo, "Ann", "four AZs")
	editJSON(t, vpc, func(d map[string]any) { d["az_count"] = 5 })
	b := commitAs(t, repo, "Ben", "five AZs")
	editJSON(t, vpc, func(d map[string]any) { d["az_count"] = 99 }) // never committed
	karmaOK(t, g, append([]string{"ingest", "commit", "--auto-approve", a, b}, base...)...)
	out := karmaOK(t, g, append([]string{"apply", "--auto-approve"}, base...)...)

	csA, csB := changeSetOf(t, state, a, "prod"), changeSetOf(t, state, b, "prod")
	if got := deployedAZs(t, csA); got != 4 {
		t.Errorf("commit A's deployment applied az_count %v, want 4 (A's tree)", got)
	}
	if got := deployedAZs(t, csB); got != 5 {
		t.Errorf("commit B's deployment applied az_count %v, want 5 (B's tree)", got)
	}
	if !strings.Contains(out, "queued behind "+csA.ID) {
		t.Errorf("the apply output does not say B waited behind A:\n%s", out)
	}
	l, _, _ := stores(t, state)
	ctx := context.Background()
	chB, err := l.Change(ctx, csB.ID)
	if err != nil || chB.Commit != b || len(chB.QueuedBehind) != 1 || chB.QueuedBehind[0] != csA.ID {
		t.Errorf("lineage of B's change: %+v, %v; want commit %s queued behind %s", chB, err, b, csA.ID)
	}
	for sha, az := range map[string]float64{a: 4, b: 5} {
		ds, err := l.CausedBy(ctx, message.CauseCommit, sha)
		if err != nil || len(ds) != 1 || ds[0].Component != "prod/vpc/core" || ds[0].Status != lineage.StatusApplied {
			t.Errorf("commit %.12s caused %+v, %v; want prod/vpc/core applied", sha, ds, err)
			continue
		}
		cs := changeSetOf(t, state, sha, "prod")
		if ds[0].ChangeSetID != cs.ID || deployedAZs(t, cs) != az {
			t.Errorf("commit %.12s is credited with change set %s", sha, ds[0].ChangeSetID)
		}
	}
	// B's decisions, made when A finished, are B's story: its correlation and author.
	_, a2, _ := stores(t, state)
	recs, err := a2.Query(ctx, audit.Query{DeploymentID: csB.Nodes["prod/vpc/core"].DeploymentID})
	if err != nil || len(recs) == 0 {
		t.Fatalf("audit of B's deployment: %d, %v", len(recs), err)
	}
	for _, r := range recs {
		if r.CorrelationID != csB.CorrelationID || r.Actor != "Ben <ben@example.com>" {
			t.Errorf("%s of B's deployment: correlation %s, actor %s; want B's %s by Ben", r.Type, r.CorrelationID, r.Actor, csB.CorrelationID)
		}
	}
	// B was applied after A: the runtime of vpc/core is B's.
	runtimeA, runtimeB := csA.Nodes["prod/vpc/core"].Outcome.RuntimeVersion, csB.Nodes["prod/vpc/core"].Outcome.RuntimeVersion
	if runtimeB <= runtimeA {
		t.Errorf("runtime versions: A %d, B %d; B must come after A", runtimeA, runtimeB)
	}
}

// propose-change commits the proposal (author: the requester, message: the change id) and
// deploys that commit: Git and Parameter Store agree afterwards.
func TestProposeChangeBecomesTheDeployedCommit(t *testing.T) {
	needTerraform(t)
	repo, state := demoRepo(t)
	g := &globals{paramsBackend: "embedded"}
	base := []string{"--repo", repo, "--state-dir", state}
	karmaOK(t, g, append([]string{"ingest", "commit", "--auto-approve"}, base...)...)
	karmaOK(t, g, append([]string{"apply", "--auto-approve"}, base...)...)
	before := git(t, repo, "rev-parse", "HEAD")

	proposal := filepath.Join(t.TempDir(), "vpc.json")
	var cfg map[string]any
	data, _ := os.ReadFile(filepath.Join(repo, "iac", "prod", "vpc", "core", "config.json"))
	json.Unmarshal(data, &cfg)
	cfg["az_count"] = 6
	data, _ = json.MarshalIndent(cfg, "", "  ")
	os.WriteFile(proposal, data, 0o644)
	// A requester that would add lines to the commit's author line and message is refused.
	forged := "Eve <eve@example.com>\nKarma-Change: forged"
	if code, _, errOut := karmaWith(t, g, append([]string{"propose-change", "vpc", "core", "--env", "prod", "--input", proposal, "--as", forged}, base...)...); code == 0 ||
		!strings.Contains(errOut, "--as") || git(t, repo, "rev-parse", "HEAD") != before {
		t.Fatalf("propose-change --as %q: exit %d, HEAD %s (before %s): %s", forged, code, git(t, repo, "rev-parse", "HEAD"), before, errOut)
	}
	out := karmaOK(t, g, append([]string{"propose-change", "vpc", "core", "--env", "prod", "--input", proposal, "--as", "Grace Hopper <grace@example.com>"}, base...)...)

	head := git(t, repo, "rev-parse", "HEAD")
	if head == before || git(t, repo, "rev-parse", "HEAD~1") != before {
		t.Fatalf("propose-change did not commit on top of HEAD: %s", out)
	}
	if got := git(t, repo, "log", "-1", "--format=%an <%ae>"); got != "Grace Hopper <grace@example.com>" {
		t.Errorf("commit author %q, want the requester", got)
	}
	subject := git(t, repo, "log", "-1", "--format=%s")
	if !strings.HasPrefix(subject, "karma change ") || !strings.Contains(out, "commit "+head[:12]) {
		t.Errorf("commit subject %q / output %q: want the change id and the commit named", subject, out)
	}
	if st := git(t, repo, "status", "--porcelain"); st != "" {
		t.Errorf("the working tree is not clean after propose-change: %q", st)
	}
	karmaOK(t, g, append([]string{"apply", "--auto-approve"}, base...)...)
	cs := changeSetOf(t, state, head, "prod")
	if cs.Source != message.SourceRequest || deployedAZs(t, cs) != 6 {
		t.Errorf("change set of the proposal's commit: source %s, az %v", cs.Source, deployedAZs(t, cs))
	}
	// Git is the source of intent: publishing the repository now changes nothing.
	pub := karmaOK(t, g, append([]string{"params", "publish", "--env", "prod"}, base...)...)
	if strings.Contains(pub, "prod/vpc/core") && !strings.Contains(pub, "unchanged") {
		t.Errorf("params publish after the proposal changed vpc/core again:\n%s", pub)
	}
	// The push of that commit arriving later is the same change, not a second one.
	code, _, _ := karmaWith(t, g, append([]string{"ingest", "commit", head}, base...)...)
	if code != 0 {
		t.Errorf("ingest of the proposal's commit: exit %d", code)
	}
	karmaOK(t, g, append([]string{"apply", "--auto-approve"}, base...)...)
	n := 0
	for _, c := range changeSets(t, state) {
		if c.Commit == head {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d change sets for the proposal's commit, want 1", n)
	}
}

// What propose-change refuses, with nothing committed or queued.
func TestProposeChangeRefusals(t *testing.T) {
	repo, state := demoRepo(t)
	g := &globals{paramsBackend: "embedded", testRunner: stubTerraform{}}
	base := []string{"--repo", repo, "--state-dir", state}
	vpc := filepath.Join(repo, "iac", "prod", "vpc", "core", "config.json")
	committed, _ := os.ReadFile(vpc)
	proposal := filepath.Join(t.TempDir(), "vpc.json")
	os.WriteFile(proposal, []byte(`{"cidr_block": "10.9.0.0/16", "az_count": 3}`), 0o644)
	same := filepath.Join(t.TempDir(), "same.json")
	os.WriteFile(same, committed, 0o644)
	head := git(t, repo, "rev-parse", "HEAD")
	for _, c := range []struct {
		name  string
		setup func()
		input string
		want  string
	}{
		{"a file with uncommitted changes", func() { os.WriteFile(vpc, []byte(`{"az_count": 7}`), 0o644) }, proposal, "uncommitted changes"},
		{"a detached HEAD", func() { git(t, repo, "checkout", "-q", "--detach") }, proposal, "HEAD is detached"},
		{"the committed config again", func() {}, same, "nothing to change, nothing queued"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.setup()
			defer func() {
				git(t, repo, "checkout", "-q", "main")
				os.WriteFile(vpc, committed, 0o644)
			}()
			code, _, errOut := karmaWith(t, g, append([]string{"propose-change", "vpc", "core", "--env", "prod", "--input", c.input}, base...)...)
			if code == 0 || !strings.Contains(errOut, c.want) {
				t.Errorf("exit %d, stderr %q; want a failure saying %q", code, errOut, c.want)
			}
			if got := git(t, repo, "rev-parse", "HEAD"); got != head {
				t.Errorf("HEAD moved to %s", got)
			}
			if n := len(changeSets(t, state)); n != 0 {
				t.Errorf("%d change sets queued", n)
			}
		})
	}
	notGit := t.TempDir()
	code, _, errOut := karmaWith(t, g, "propose-change", "vpc", "core", "--env", "prod", "--input", proposal, "--repo", notGit, "--state-dir", t.TempDir())
	if code == 0 || !strings.Contains(errOut, "not in a git repository") {
		t.Errorf("outside a git repository: exit %d, %s", code, errOut)
	}
}

// A later change set waits behind an earlier one awaiting approval; superseding is explicit and
// recorded in the lineage with the change set that replaced it.
func TestSupersedeIsExplicitAndRecorded(t *testing.T) {
	needTerraform(t)
	repo, state := demoRepo(t)
	g := &globals{paramsBackend: "embedded"}
	base := []string{"--repo", repo, "--state-dir", state}
	karmaOK(t, g, append([]string{"ingest", "commit", "--auto-approve"}, base...)...)
	karmaOK(t, g, append([]string{"apply", "--auto-approve"}, base...)...)

	vpc := filepath.Join(repo, "iac", "prod", "vpc", "core", "config.json")
	editJSON(t, vpc, func(d map[string]any) { d["az_count"] = 4 })
	a := commitAs(t, repo, "Ann", "four AZs")
	editJSON(t, vpc, func(d map[string]any) { d["az_count"] = 5 })
	b := commitAs(t, repo, "Ben", "five AZs")
	karmaOK(t, g, append([]string{"ingest", "commit", a}, base...)...) // needs review
	karmaOK(t, g, append([]string{"ingest", "commit", "--auto-approve", b}, base...)...)
	out := karmaOK(t, g, append([]string{"plan"}, base...)...)
	csA, csB := changeSetOf(t, state, a, "prod"), changeSetOf(t, state, b, "prod")
	if csA.Nodes["prod/vpc/core"].State != changeset.Planned || len(csB.QueuedBehind) != 1 || csB.Started {
		t.Fatalf("A %s, B queued behind %v (started %v); want A planned, B waiting\n%s", csA.Nodes["prod/vpc/core"].State, csB.QueuedBehind, csB.Started, out)
	}
	// Nothing is replaced silently: without supersede, B keeps waiting.
	karmaOK(t, g, append([]string{"apply", "--auto-approve", csB.ID}, base...)...)
	if cs := changeSetOf(t, state, b, "prod"); cs.Started {
		t.Fatal("B started while A waits for approval")
	}
	code, _, errOut := karmaWith(t, g, append([]string{"supersede", csB.ID, "--by", csA.ID}, base...)...)
	if code == 0 || !strings.Contains(errOut, "not later than") {
		t.Errorf("superseding the later by the earlier: exit %d %s", code, errOut)
	}
	karmaOK(t, g, append([]string{"supersede", csA.ID, "--by", csB.ID, "--as", "grace"}, base...)...)
	karmaOK(t, g, append([]string{"apply", "--auto-approve", csB.ID}, base...)...)

	csA, csB = changeSetOf(t, state, a, "prod"), changeSetOf(t, state, b, "prod")
	na := csA.Nodes["prod/vpc/core"]
	if na.State != changeset.Skipped || na.Reason != changeset.ReasonSuperseded || !strings.Contains(na.Detail, csB.ID) || !strings.Contains(na.Detail, b) || !strings.Contains(na.Detail, "grace") {
		t.Errorf("A's vpc/core: %s %s %q; want skipped, superseded by B naming its commit and who", na.State, na.Reason, na.Detail)
	}
	if got := deployedAZs(t, csB); got != 5 {
		t.Errorf("B deployed az_count %v, want 5", got)
	}
	l, _, _ := stores(t, state)
	ds, err := l.Deployments(context.Background(), "prod/vpc/core")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range ds {
		if d.ChangeSetID == csA.ID && d.Status == lineage.StatusSkipped && strings.Contains(d.Detail, "superseded by change set "+csB.ID) {
			found = true
		}
	}
	if !found {
		t.Errorf("the lineage of prod/vpc/core does not record A superseded by B: %+v", ds)
	}
}

// karma serve fetches what a push names from the remote itself — smart HTTP with a token here —
// and deploys each pushed commit's own tree, in commit order, with no checkout to update.
func TestServeDeploysPushedCommitsFromAnHTTPRemote(t *testing.T) {
	needTerraform(t)
	examplesDir, _ := filepath.Abs(filepath.Join("..", "..", "examples"))
	o := gittest.OriginFrom(t, "config.git", examplesDir)
	root := filepath.Dir(o.Bare)
	srv := gittest.NewHTTPServer(t, root, "s3cret-token")
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("s3cret-token\n"), 0o600)
	t.Setenv("KARMA_GIT_URL", srv.RepoURL(root, o.Bare))
	t.Setenv("KARMA_GIT_TOKEN_FILE", tokenFile)
	state := t.TempDir()
	sv := startServe(t, &globals{}, "--repo", o.Work, "--state-dir", state, "--secret", "github:acme/config="+serveSecret,
		"--auto-approve", "--reconcile", "0")
	deadline := time.Now().Add(3 * time.Minute)
	l, _, _ := stores(t, state)
	push := func(before, sha string) {
		t.Helper()
		body := ghPush("refs/heads/main", before, sha, "ada", ghCommitOf(t, o.Work, before, sha))
		if code, resp := sv.post(t, body, ghHeaders("push", uuid.NewString(), serveSecret, body)); code != 202 {
			t.Fatalf("push of %.12s: %d %s", sha, code, resp)
		}
	}
	initial := o.Head(t)
	push(zeroSHA, initial)
	sv.waitIdle(t, deadline, func() bool { return appliedCount(t, l, "prod/vpc/core") == 1 })

	vpc := filepath.Join(o.Work, "iac", "prod", "vpc", "core", "config.json")
	editJSON(t, vpc, func(d map[string]any) { d["az_count"] = 4 })
	a := o.Commit(t, "four AZs", nil)
	editJSON(t, vpc, func(d map[string]any) { d["az_count"] = 5 })
	b := o.Commit(t, "five AZs", nil)
	push(initial, a)
	push(a, b)
	sv.waitIdle(t, deadline, func() bool { return appliedCount(t, l, "prod/vpc/core") == 3 })
	csA, csB := changeSetOf(t, state, a, "prod"), changeSetOf(t, state, b, "prod")
	if deployedAZs(t, csA) != 4 || deployedAZs(t, csB) != 5 {
		t.Errorf("A deployed %v, B %v; want each its own tree (4, 5)", deployedAZs(t, csA), deployedAZs(t, csB))
	}
	if csB.Nodes["prod/vpc/core"].Outcome.RuntimeVersion <= csA.Nodes["prod/vpc/core"].Outcome.RuntimeVersion {
		t.Error("B was applied before A")
	}
	if srv.Requests.Load() == 0 {
		t.Error("serve never fetched from the remote")
	}
	if logs := sv.log(t); strings.Contains(logs, "s3cret-token") {
		t.Error("the token is in serve's log")
	}
}

// Webhooks are not delivered in order: a commit that arrives after a later commit containing it
// was resolved is built from that later commit (deploying the older tree would undo it), and the
// lineage names both: the pushed commit as cause, the later one as the tree.
func TestAnOlderCommitArrivingLateDoesNotUndoALaterOne(t *testing.T) {
	needTerraform(t)
	repo, state := demoRepo(t)
	g := &globals{paramsBackend: "embedded"}
	base := []string{"--repo", repo, "--state-dir", state}
	karmaOK(t, g, append([]string{"ingest", "commit", "--auto-approve"}, base...)...)
	karmaOK(t, g, append([]string{"apply", "--auto-approve"}, base...)...)

	vpc := filepath.Join(repo, "iac", "prod", "vpc", "core", "config.json")
	editJSON(t, vpc, func(d map[string]any) { d["az_count"] = 4 })
	a := commitAs(t, repo, "Ann", "four AZs")
	editJSON(t, vpc, func(d map[string]any) { d["az_count"] = 5 })
	b := commitAs(t, repo, "Ben", "five AZs")
	karmaOK(t, g, append([]string{"ingest", "commit", "--auto-approve", b}, base...)...)
	karmaOK(t, g, append([]string{"apply", "--auto-approve"}, base...)...)
	karmaOK(t, g, append([]string{"ingest", "commit", "--auto-approve", a}, base...)...) // late
	karmaOK(t, g, append([]string{"apply", "--auto-approve"}, base...)...)

	var late *changeset.ChangeSet
	for _, cs := range changeSets(t, state) {
		if cs.Env == "prod" && len(cs.RootCauses) == 1 && cs.RootCauses[0].ID == a {
			late = cs
		}
	}
	if late == nil {
		t.Fatal("no change set caused by the late commit")
	}
	if late.Commit != b {
		t.Errorf("the late commit's change set is built from %.12s, want the later commit %.12s", late.Commit, b)
	}
	if n := late.Nodes["prod/vpc/core"]; n != nil && n.Outcome != nil {
		if az := deployedAZs(t, late); az != 5 {
			t.Errorf("the late commit deployed az_count %v: it undid the later commit", az)
		}
	}
	l, _, _ := stores(t, state)
	ch, err := l.Change(context.Background(), late.ID)
	if err != nil || ch.Commit != b || ch.RootCauses[0].ID != a {
		t.Errorf("lineage %+v, %v: want caused by %.12s, built from %.12s", ch, err, a, b)
	}
}

// A later commit that is not on the deploy branch — a change request's commit on its own branch,
// waiting for approval — is no one's intent for the environment: a commit arriving after it is
// built from itself, never from that commit's unapproved tree.
func TestALaterCommitOffTheDeployBranchIsNotBuiltFrom(t *testing.T) {
	needTerraform(t)
	repo, state := demoRepo(t)
	g := &globals{paramsBackend: "embedded"}
	base := []string{"--repo", repo, "--state-dir", state}
	karmaOK(t, g, append([]string{"ingest", "commit", "--auto-approve"}, base...)...)
	karmaOK(t, g, append([]string{"apply", "--auto-approve"}, base...)...)

	branch := git(t, repo, "rev-parse", "--abbrev-ref", "HEAD")
	vpc := filepath.Join(repo, "iac", "prod", "vpc", "core", "config.json")
	editJSON(t, vpc, func(d map[string]any) { d["az_count"] = 4 })
	a := commitAs(t, repo, "Ann", "four AZs")
	git(t, repo, "checkout", "-qb", "karma/change/request")
	editJSON(t, vpc, func(d map[string]any) { d["az_count"] = 6 })
	r := commitAs(t, repo, "Eve", "six AZs, not approved")
	karmaOK(t, g, append([]string{"ingest", "commit", r}, base...)...) // on its branch; reviewed: waits for approval
	git(t, repo, "checkout", "-q", branch)
	karmaOK(t, g, append([]string{"plan"}, base...)...)
	karmaOK(t, g, append([]string{"ingest", "commit", "--auto-approve", a}, base...)...)
	karmaOK(t, g, append([]string{"plan"}, base...)...)

	found := false
	for _, cs := range changeSets(t, state) {
		if cs.Env == "prod" && len(cs.RootCauses) == 1 && cs.RootCauses[0].ID == a {
			found = true
			if cs.Commit != a {
				t.Errorf("the change set of %.12s is built from %.12s, a commit off the deploy branch", a, cs.Commit)
			}
		}
	}
	if !found {
		t.Fatalf("no change set caused by %.12s", a)
	}
}

// `karma ingest commit` of a commit that is not on the checked-out branch (another branch's, or
// one the branch was reset past) is refused, naming the commit and the branch, and queues
// nothing: its git.pushed would say it was pushed to that branch, and deploy a tree the branch
// does not hold. Checked out on its own branch, the same commit is queued.
func TestIngestRefusesACommitOffTheCheckedOutBranch(t *testing.T) {
	repo, state := demoRepo(t)
	g := &globals{paramsBackend: "embedded"}
	base := []string{"--repo", repo, "--state-dir", state}
	branch := git(t, repo, "rev-parse", "--abbrev-ref", "HEAD")
	git(t, repo, "checkout", "-qb", "experiment")
	editJSON(t, filepath.Join(repo, "iac", "prod", "vpc", "core", "config.json"), func(d map[string]any) { d["az_count"] = 6 })
	x := commitAs(t, repo, "Eve", "six AZs, on a branch of its own")
	git(t, repo, "checkout", "-q", branch)

	code, out, errOut := karmaWith(t, g, append([]string{"ingest", "commit", x}, base...)...)
	if code == 0 || !strings.Contains(errOut, x[:12]) || !strings.Contains(errOut, "not on the checked-out branch "+branch) {
		t.Fatalf("ingest of a commit off %s: exit %d\n%s\n%s", branch, code, out, errOut)
	}
	git(t, repo, "checkout", "-q", "experiment")
	if out := karmaOK(t, g, append([]string{"ingest", "commit", x}, base...)...); !strings.Contains(out, "queued") {
		t.Fatalf("ingest on its branch (nothing queued or recorded by the refusal before): %s", out)
	}
}
