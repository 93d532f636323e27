package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/queue"
	"github.com/usekarma/karma/shared/terraform"
)

// demoRepo copies examples/ into a fresh git repository with one commit by Ada.
func demoRepo(t testing.TB) (repo, state string) {
	t.Helper()
	dir := t.TempDir()
	repo, state = filepath.Join(dir, "repo"), filepath.Join(dir, "state")
	if out, err := exec.Command("cp", "-r", filepath.Join("..", "..", "examples"), repo).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	commitAs(t, repo, "Ada", "initial config")
	return repo, state
}

// demoRepoDB is demoRepo with the state file opened (closed when the test ends).
func demoRepoDB(t testing.TB) (repo, state string, db *embedded.DB) {
	t.Helper()
	repo, state = demoRepo(t)
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := embedded.Open(filepath.Join(state, "karma.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return repo, state, db
}

func git(t testing.TB, repo string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", repo}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func commitAs(t testing.TB, repo, who, msg string) string {
	t.Helper()
	git(t, repo, "-c", "user.name="+who, "-c", "user.email="+strings.ToLower(who)+"@example.com", "commit", "-qam", msg)
	return git(t, repo, "rev-parse", "HEAD")
}

func editJSON(t *testing.T, path string, fn func(map[string]any)) {
	t.Helper()
	var d map[string]any
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	fn(d)
	b, _ = json.MarshalIndent(d, "", "  ")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// scenario runs the demo: deploy all, Bob changes az_count, Carol names the flow log group.
func scenario(t *testing.T, g *globals) (repo, state, bob, carol string) {
	t.Helper()
	repo, state = demoRepo(t)
	g.repo, g.stateDir = repo, state
	step := func(args ...string) string {
		code, out, errOut := karmaWith(t, g, args...)
		if code != 0 {
			t.Fatalf("karma %v: exit %d\n%s\n%s", args, code, out, errOut)
		}
		return out
	}
	step("ingest", "commit", "--auto-approve", "--repo", repo, "--state-dir", state)
	step("apply", "--auto-approve", "--repo", repo, "--state-dir", state)
	vpc := filepath.Join(repo, "iac", "prod", "vpc", "core", "config.json")
	editJSON(t, vpc, func(d map[string]any) { d["az_count"] = 4 })
	bob = commitAs(t, repo, "Bob", "one more AZ")
	step("ingest", "commit", "--auto-approve", "--repo", repo, "--state-dir", state)
	step("apply", "--auto-approve", "--repo", repo, "--state-dir", state)
	editJSON(t, vpc, func(d map[string]any) {
		d["flow_logs"].(map[string]any)["log_group_name"] = "/aws/vpc/prod-core-flows"
	})
	carol = commitAs(t, repo, "Carol", "name the flow log group")
	step("ingest", "commit", "--auto-approve", "--repo", repo, "--state-dir", state)
	step("apply", "--auto-approve", "--repo", repo, "--state-dir", state)
	return repo, state, bob, carol
}

// stores opens the scenario's state file directly, as an auditor would.
func stores(t *testing.T, state string) (*embedded.Lineage, *embedded.AuditLog, *embedded.Queue) {
	t.Helper()
	ctx := context.Background()
	db, err := embedded.Open(filepath.Join(state, "karma.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := embedded.NewLineage(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	a, err := embedded.NewAuditLog(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	q, err := embedded.NewQueue(ctx, db, embedded.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l, a, q
}

func appliedCount(t *testing.T, l lineage.Store, component string) int {
	t.Helper()
	ds, err := l.Deployments(context.Background(), component)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range ds {
		if d.Status == lineage.StatusApplied {
			n++
		}
	}
	return n
}

// checkScenario asserts what the demo promises.
func checkScenario(t *testing.T, state, bob, carol string) {
	t.Helper()
	ctx := context.Background()
	l, a, q := stores(t, state)
	want := map[string]int{
		"prod/vpc/core": 3, "prod/lambda/handlers": 2, "prod/ecs-service/api": 2, "prod/ecs-cluster/core": 1,
		"prod/serverless-api/public": 1, "prod/serverless-site/www": 1, "prod/route53-zone/main": 1, "dev/vpc/core": 1,
	}
	for c, n := range want {
		if got := appliedCount(t, l, c); got != n {
			t.Errorf("%s applied %d times, want %d", c, got, n)
		}
	}
	// Lineage: ecs-service/api's latest deployment was caused by vpc/core's, caused by Bob's commit.
	ds, _ := l.Deployments(ctx, "prod/ecs-service/api")
	var latest lineage.Deployment
	for _, d := range ds {
		if d.Status == lineage.StatusApplied {
			latest = d
			break
		}
	}
	if len(latest.CausedBy) != 1 || latest.CausedBy[0].Kind != "deployment" || strings.Join(latest.CausedBy[0].Keys, ",") != "private_subnet_ids" {
		t.Fatalf("ecs-service/api caused by %+v", latest.CausedBy)
	}
	up, err := l.Deployment(ctx, latest.CausedBy[0].ID)
	if err != nil || up.Component != "prod/vpc/core" || up.CausedBy[0].Kind != "commit" || up.CausedBy[0].ID != bob {
		t.Errorf("upstream of ecs-service/api: %+v %v", up, err)
	}
	if up.Actor.Name != "Bob <bob@example.com>" {
		t.Errorf("actor = %+v", up.Actor)
	}
	// Carol's commit caused exactly one deployment: vpc/core.
	caused, _ := l.CausedBy(ctx, "commit", carol)
	if len(caused) != 1 || caused[0].Component != "prod/vpc/core" || strings.Join(caused[0].ChangedKeys, ",") != "flow_log_group" {
		t.Errorf("Carol's commit caused %+v", caused)
	}
	if more, _ := l.CausedBy(ctx, "deployment", caused[0].ID); len(more) != 0 {
		t.Errorf("a key nobody consumes redeployed %+v", more)
	}
	// Audit: four messages per vpc deployment (scheduled, recorded, planned, applied), chained.
	recs, err := a.Query(ctx, audit.Query{Component: "prod/vpc/core"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 12 {
		t.Errorf("audit records for prod/vpc/core = %d, want 12", len(recs))
	}
	chains, _ := a.Chains(ctx)
	for _, c := range chains {
		if err := a.Verify(ctx, c); err != nil {
			t.Error(err)
		}
	}
	for _, st := range stageNames {
		if dead, _ := q.ListDead(ctx, st); len(dead) != 0 {
			t.Errorf("dead letters in %s: %+v", st, dead)
		}
	}
}

func needTerraform(t *testing.T) {
	t.Helper()
	if _, err := terraform.FindTerraform(); err != nil {
		t.Skip(err)
	}
}

func TestDemoScenarioEndToEnd(t *testing.T) {
	needTerraform(t)
	_, state, bob, carol := scenario(t, &globals{paramsBackend: "embedded"})
	checkScenario(t, state, bob, carol)
}

// counting wraps the real runner and counts applies per workspace.
type counting struct {
	terraform.Runner
	mu      sync.Mutex
	applies map[string]int
}

func (c *counting) Apply(ctx context.Context, ws terraform.Workspace, p terraform.PlanResult) (terraform.Outputs, error) {
	c.mu.Lock()
	c.applies[ws.Env+"/"+ws.Type+"/"+ws.Nickname]++
	c.mu.Unlock()
	return c.Runner.Apply(ctx, ws, p)
}

// twice delivers every message twice: each send is made two times.
type twice struct{ queue.Queue }

func (q twice) Send(ctx context.Context, name string, msgs ...queue.Message) error {
	if err := q.Queue.Send(ctx, name, msgs...); err != nil {
		return err
	}
	return q.Queue.Send(ctx, name, msgs...)
}

func TestEveryMessageTwiceSameStateOneApplyPerDeployment(t *testing.T) {
	needTerraform(t)
	tf, _ := terraform.FindTerraform()
	runner := &counting{Runner: terraform.NewTFExec(tf), applies: map[string]int{}}
	g := &globals{paramsBackend: "embedded", testRunner: runner, testTransport: func(q queue.Queue) queue.Queue { return twice{q} }}
	_, state, bob, carol := scenario(t, g)
	checkScenario(t, state, bob, carol)
	l, _, _ := stores(t, state)
	for c, n := range runner.applies {
		if want := appliedCount(t, l, c); n != want {
			t.Errorf("%s: terraform apply ran %d times for %d deployments", c, n, want)
		}
	}
}
