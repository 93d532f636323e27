package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/api"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
)

// The CLI through a running Karma (--server, KARMA_TOKEN) for someone without the stores: a
// proposal becomes a commit pushed by the server, is listed, approved, deployed; its lineage and
// audit log are read back; another proposal is rejected; a command that needs the stores is
// refused.
func TestCLIThroughServer(t *testing.T) {
	needTerraform(t)
	examplesDir, _ := filepath.Abs(filepath.Join("..", "..", "examples"))
	o := gittest.OriginFrom(t, "config.git", examplesDir)
	t.Setenv("KARMA_GIT_URL", o.Bare)
	t.Setenv("KARMA_GIT_WRITE", "branch")
	token, sha, _ := api.NewToken()
	tokens := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(tokens, []byte("grace sha256:"+sha+" read,write,approve\n"), 0o600)
	state := t.TempDir()
	sv := startServe(t, &globals{}, "--repo", o.Work, "--state-dir", state, "--secret", "github:acme/config="+serveSecret,
		"--tokens-file", tokens, "--reconcile", "0")
	t.Setenv("KARMA_SERVER", sv.url)
	t.Setenv("KARMA_TOKEN", token)
	g := &globals{}

	if out := karmaOK(t, g, "impact", "prod/vpc/core"); !strings.Contains(out, "prod/ecs-service/api") {
		t.Errorf("impact through the server:\n%s", out)
	}
	proposal := filepath.Join(t.TempDir(), "vpc.json")
	var cfg map[string]any
	data, _ := os.ReadFile(filepath.Join(o.Work, "iac", "prod", "vpc", "core", "config.json"))
	json.Unmarshal(data, &cfg)
	cfg["az_count"] = 4
	data, _ = json.Marshal(cfg)
	os.WriteFile(proposal, data, 0o644)
	out := karmaOK(t, g, "propose-change", "vpc", "core", "--env", "prod", "--input", proposal, "--as", "Ada <ada@example.com>")
	m := regexp.MustCompile(`change (\S+) queued`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("propose-change through the server:\n%s", out)
	}
	id := m[1]
	gittest.Git(t, o.Work, "pull", "-q", "origin", "main")
	if msg := gittest.Git(t, o.Work, "log", "-1", "--format=%an|%s"); !strings.HasPrefix(msg, "Ada|karma change ") {
		t.Errorf("the server's commit: %s", msg)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(karmaOK(t, g, "changes", "--env", "prod"), id+"  [prod] awaiting-approval") {
		if time.Now().After(deadline) {
			t.Fatalf("change %s never awaited approval:\n%s", id, karmaOK(t, g, "changes"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	karmaOK(t, g, "apply", id)
	l, _, _ := stores(t, state)
	sv.waitIdle(t, deadline, func() bool { return appliedCount(t, l, "prod/vpc/core") == 1 })
	ds, _ := l.Deployments(t.Context(), "prod/vpc/core")
	if len(ds) == 0 {
		t.Fatal("no deployment of prod/vpc/core")
	}
	if out := karmaOK(t, g, "lineage", ds[0].ID); !strings.Contains(out, "prod/vpc/core") {
		t.Errorf("lineage through the server:\n%s", out)
	}
	if out := karmaOK(t, g, "audit", "log", "--component", "prod/vpc/core"); !strings.Contains(out, "deployment.applied") {
		t.Errorf("audit log through the server:\n%s", out)
	}
	cfg["az_count"] = 5
	data, _ = json.Marshal(cfg)
	os.WriteFile(proposal, data, 0o644)
	out = karmaOK(t, g, "propose-change", "vpc", "core", "--env", "prod", "--input", proposal)
	second := regexp.MustCompile(`change (\S+) queued`).FindStringSubmatch(out)[1]
	for !strings.Contains(karmaOK(t, g, "changes", "--env", "prod"), second+"  [prod] awaiting-approval") {
		if time.Now().After(deadline) {
			t.Fatalf("change %s never awaited approval", second)
		}
		time.Sleep(200 * time.Millisecond)
	}
	karmaOK(t, g, "reject", second, "--reason", "not this week")
	if out := karmaOK(t, g, "changes", "--state", "rejected"); !strings.Contains(out, second) {
		t.Errorf("the rejected change is not listed as rejected:\n%s", out)
	}
	// Rollback and promotions through the server: its checks, its answers.
	if code, _, errOut := karmaWith(t, g, "rollback", ds[0].ID); code != 1 || !strings.Contains(errOut, "it is the deployment the component runs now") {
		t.Errorf("rollback --server to what runs now: exit %d %s", code, errOut)
	}
	if code, _, errOut := karmaWith(t, g, "rollback", "dep-0000000000000000"); code != 2 || !strings.Contains(errOut, "no deployment") {
		t.Errorf("rollback --server of an unknown deployment: exit %d %s", code, errOut)
	}
	if code, _, errOut := karmaWith(t, g, "promote", "status", id); code != 2 || !strings.Contains(errOut, "not a promoted change") {
		t.Errorf("promote status --server of a change of one environment: exit %d %s", code, errOut)
	}
	// Drift through the server: GET /drift, a read (parameters only, nothing recorded).
	code, out, errOut := karmaWith(t, g, "drift", "--env", "prod", "--component", "vpc/core", "--json")
	var rep struct {
		Commit string `json:"commit"`
		Envs   []struct {
			Env      string `json:"env"`
			Compared int    `json:"compared"`
		} `json:"environments"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code == 2 || rep.Commit == "" || len(rep.Envs) != 1 || rep.Envs[0].Env != "prod" || rep.Envs[0].Compared != 1 {
		t.Errorf("drift --server --json: exit %d, %+v (%v)\n%s%s", code, rep, err, out, errOut)
	}
	if code, _, errOut := karmaWith(t, g, "drift", "--auto-approve"); code != 2 || !strings.Contains(errOut, "is a read") {
		t.Errorf("drift --server --auto-approve: exit %d %s", code, errOut)
	}
	if code, _, errOut := karmaWith(t, g, "drift", "--component", "prod/vpc/nope"); code == 0 || !strings.Contains(errOut, "nope") {
		t.Errorf("drift --server of an unknown component: exit %d %s", code, errOut)
	}
	// An id the server does not know exits 2, as locally; so does a lineage asked of a component
	// (the API answers lineage by deployment).
	if code, _, errOut := karmaWith(t, g, "impact", "prod/vpc/nope"); code != 2 || !strings.Contains(errOut, "prod/vpc/nope") {
		t.Errorf("impact --server of an unknown component: exit %d %s", code, errOut)
	}
	if code, _, errOut := karmaWith(t, g, "lineage", "prod/vpc/core"); code != 2 || !strings.Contains(errOut, "give a deployment id") {
		t.Errorf("lineage --server of a component: exit %d %s", code, errOut)
	}
	if code, _, errOut := karmaWith(t, g, "params", "publish", "--env", "prod"); code != 2 || !strings.Contains(errOut, "works on the stores themselves") {
		t.Errorf("params publish --server: exit %d %s", code, errOut)
	}
}
