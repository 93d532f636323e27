package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/drift"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/terraform"
)

// observedModule is a component type whose module reads something outside Terraform back at
// every refresh, as real modules read their cloud resources back: terraform_remote_state of a
// local state file (the one built-in data source that reads the world; terraform_data has no
// remote object, so a refresh-only plan never finds it changed). Its output "observed" is what
// it read.
const observedModule = `variable "component_name" { type = string }
variable "nickname" { type = string }
variable "iac_prefix" {
  type    = string
  default = "/iac"
}
variable "config" { type = any }
data "terraform_remote_state" "world" {
  backend = "local"
  config  = { path = var.config.world }
}
resource "terraform_data" "this" { input = var.nickname }
output "id" { value = terraform_data.this.output }
output "observed" { value = data.terraform_remote_state.world.outputs.value }
`

// setWorld writes the world the observed module reads: a state file with output "value".
func setWorld(t *testing.T, path, value string, serial int) {
	t.Helper()
	doc := map[string]any{"version": 4, "terraform_version": "1.5.0", "serial": serial, "lineage": "world",
		"outputs": map[string]any{"value": map[string]any{"value": value, "type": "string"}}, "resources": []any{}}
	b, _ := json.Marshal(doc)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// driftRepo is the example repository with prod opted in to refreshes (drift_refresh) and dev
// allowing drift, plus prod/observed/edge reading world (returned), committed by Ada.
func driftRepo(t *testing.T) (repo, state, world string) {
	t.Helper()
	repo, state = demoRepo(t)
	world = filepath.Join(filepath.Dir(repo), "world.tfstate")
	setWorld(t, world, "one", 1)
	editJSON(t, filepath.Join(repo, "account_environments", "prod.json"), func(d map[string]any) { d["drift_refresh"] = true })
	editJSON(t, filepath.Join(repo, "account_environments", "dev.json"), func(d map[string]any) { d["allow_drift"] = true })
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(repo, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("components/observed/main.tf", observedModule)
	cfg, _ := json.Marshal(map[string]string{"world": world})
	write("iac/prod/observed/edge/config.json", string(cfg))
	git(t, repo, "add", "-A")
	commitAs(t, repo, "Ada", "observe the edge; prod refreshes, dev allows drift")
	return repo, state, world
}

// outside writes a parameter as someone outside Karma: straight into the state file's store,
// with no description and no change event.
func outside(t *testing.T, state, env, name, value string) {
	t.Helper()
	db, err := embedded.Open(filepath.Join(state, "karma.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := embedded.NewParamStore(db, env)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(context.Background(), params.PutInput{Name: name, Value: value, User: "mallory"}); err != nil {
		t.Fatal(err)
	}
}

func driftReport(t *testing.T, g *globals, want int, args ...string) *drift.Report {
	t.Helper()
	out := runIn(t, g, want, append([]string{"drift", "--json"}, args...)...)
	var rep drift.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("karma drift --json: %v\n%s", err, out)
	}
	return &rep
}

// findingsOf indexes an environment's findings by "<component> <kind> <reason>".
func findingsOf(rep *drift.Report, env string) (drift.EnvReport, map[string]drift.Finding) {
	for _, e := range rep.Envs {
		if e.Env == env {
			m := map[string]drift.Finding{}
			for _, f := range e.Findings {
				m[f.Component+" "+f.Kind+" "+f.Reason] = f
			}
			return e, m
		}
	}
	return drift.EnvReport{}, nil
}

// The drift issue end to end, with real terraform: deploy, change a /config, a /runtime and the
// infrastructure outside Karma, and see each drift reported once, recorded in the lineage and
// the audit log, corrected by a change set that needs approval in prod (allow_drift false) and
// only reported in dev (allow_drift true).
func TestDriftEndToEnd(t *testing.T) {
	needTerraform(t)
	repo, state, world := driftRepo(t)
	g := &globals{paramsBackend: "embedded", repo: repo, stateDir: state}
	var base []string // runIn adds --repo and --state-dir
	runIn(t, g, 0, append([]string{"ingest", "commit", "--auto-approve"}, base...)...)
	runIn(t, g, 0, append([]string{"apply", "--auto-approve"}, base...)...)
	clean := driftReport(t, g, 0, base...)
	if prod, _ := findingsOf(clean, "prod"); prod.Compared != 9 || prod.Refreshed != 9 || len(prod.Findings) != 0 {
		t.Fatalf("after the deployment: %+v", prod)
	}

	outside(t, state, "prod", "/iac/vpc/core/config", `{"cidr":"10.9.0.0/16"}`)
	outside(t, state, "prod", "/iac/ecs-cluster/core/runtime", `{"cluster_name":"someone-else"}`)
	outside(t, state, "dev", "/iac/vpc/core/config", `{"cidr":"10.8.0.0/16"}`)
	setWorld(t, world, "two", 2) // the infrastructure changes outside Terraform

	rep := driftReport(t, g, 1, base...)
	prod, pf := findingsOf(rep, "prod")
	dev, df := findingsOf(rep, "dev")
	cfg, rt, infra := pf["prod/vpc/core config differs"], pf["prod/ecs-cluster/core runtime differs"], pf["prod/observed/edge infrastructure refreshed"]
	if len(pf) != 3 || cfg.DriftID == "" || rt.DriftID == "" || infra.DriftID == "" {
		t.Fatalf("prod findings: %+v", prod.Findings)
	}
	if !strings.Contains(cfg.Detail, "is not the resolved config of iac/prod/vpc/core/config.json") || !strings.Contains(cfg.Detail, "cidr") || cfg.Parameter.ModifiedBy != "mallory" {
		t.Errorf("config drift %+v", cfg)
	}
	if strings.Join(infra.Outputs, ",") != "observed" || infra.State == nil {
		t.Errorf("infrastructure drift %+v: want the output observed, and the state", infra)
	}
	if prod.Corrective == "" || cfg.ChangeSetID != prod.Corrective || rt.ChangeSetID != prod.Corrective || cfg.Action != message.DriftCorrect {
		t.Errorf("prod: corrective %q, findings %+v", prod.Corrective, prod.Findings)
	}
	dv := df["dev/vpc/core config differs"]
	if len(df) != 1 || dv.Action != message.DriftReport || dev.Corrective != "" || dev.Refresh {
		t.Errorf("dev (allow_drift): %+v", dev)
	}

	// The same drift seen again is one event: nothing new is published or queued.
	again := driftReport(t, g, 1, base...)
	prod2, pf2 := findingsOf(again, "prod")
	if prod2.Corrective != "" || pf2["prod/vpc/core config differs"].Recorded == nil || pf2["prod/vpc/core config differs"].DriftID != cfg.DriftID {
		t.Errorf("seen again: %+v", prod2)
	}

	// The pipeline records the drift (lineage, audit) and plans the correction, held for review.
	runIn(t, g, 0, append([]string{"plan"}, base...)...)
	l, a, _ := stores(t, state)
	ctx := context.Background()
	ds, err := l.Drifts(ctx, "prod/vpc/core")
	if err != nil || len(ds) != 1 || ds[0].ID != cfg.DriftID || ds[0].ChangeSetID != prod.Corrective || ds[0].Actor.Kind != "cli" {
		t.Errorf("lineage drifts of prod/vpc/core: %+v %v", ds, err)
	}
	recs, err := a.Query(ctx, audit.Query{Component: "prod/vpc/core"})
	if err != nil {
		t.Fatal(err)
	}
	if n := countType(recs, message.TypeDriftDetected); n != 1 {
		t.Errorf("audit: %d drift.detected records for prod/vpc/core, want 1", n)
	}
	mustContain(t, "karma lineage", runIn(t, g, 0, append([]string{"lineage", "vpc/core", "--env", "prod"}, base...)...),
		"drift (newest first):", cfg.DriftID, "config drift (differs)", "-> corrective change "+prod.Corrective)

	// Approved, the correction puts Git's intent back: no drift left in prod.
	runIn(t, g, 0, append([]string{"apply", prod.Corrective, "--auto-approve"}, base...)...)
	after := driftReport(t, g, 0, append([]string{"--env", "prod"}, base...)...)
	if p, _ := findingsOf(after, "prod"); len(p.Findings) != 0 || len(p.Errors) != 0 {
		t.Errorf("after the correction: %+v", p)
	}
	mustContain(t, "karma lineage --forward", runIn(t, g, 0, append([]string{"lineage", "--forward", cfg.DriftID}, base...)...),
		"drift "+cfg.DriftID, "prod/vpc/core", "applied")
}

func countType(recs []audit.Record, typ string) int {
	n := 0
	for _, r := range recs {
		if r.Type == typ {
			n++
		}
	}
	return n
}

func TestDriftUsage(t *testing.T) {
	repo, state := demoRepo(t)
	g := &globals{paramsBackend: "embedded", repo: repo, stateDir: state}
	base := []string{"--repo", repo, "--state-dir", state}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--component", "vpc/core"}, "give --env"},
		{[]string{"--component", "prod/vpc/core/x"}, "want <env>/<type>/<nickname>"},
		{[]string{"--env", "staging"}, `environment "staging" is not defined`},
		{[]string{"--component", "prod/vpc/nope"}, `component "prod/vpc/nope" is not defined`},
		{[]string{"--params-backend", "ssm"}, "--env is required"},
		{[]string{"extra"}, "unknown command"},
	} {
		code, _, errOut := karmaWith(t, g, append(append([]string{"drift"}, tc.args...), base...)...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("karma drift %v: exit %d, %q; want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
	// Nothing deployed: every config is missing; a dry run reports without recording.
	out := runIn(t, g, 1, "drift", "--dry-run", "--component", "prod/vpc/core")
	mustContain(t, "dry run", out, "prod/vpc/core", "missing", "dry run, not recorded")
}

// karma serve --drift-every: the scheduled check finds a /runtime written outside Karma, records
// it once however many times it runs, and (auto-approved) its correction publishes Karma's
// runtime again.
func TestServeChecksDriftOnItsSchedule(t *testing.T) {
	repo, state := smallRepo(t) // dev: app/a, app/b (after a), app/c
	g := &globals{paramsBackend: "embedded", repo: repo, stateDir: state, testRunner: &terraform.Noop{}}
	runIn(t, g, 0, "ingest", "commit", "--auto-approve")
	runIn(t, g, 0, "apply", "--auto-approve")
	const name = "/iac/app/a/runtime"
	outside(t, state, "dev", name, `{"id":"someone"}`)

	sv := startServe(t, g, "--repo", repo, "--state-dir", state, "--secret", "github:*="+serveSecret,
		"--drift-every", "100ms", "--reconcile", "0", "--auto-approve")
	l := openLineage(t, state)
	ctx := context.Background()
	karmas := func() bool {
		db, err := embedded.Open(filepath.Join(state, "karma.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		s, _ := embedded.NewParamStore(db, "dev")
		p, err := s.Get(ctx, name)
		return err == nil && params.IsKarmaWrite(p.Description, p.Value)
	}
	checks := func() int { return strings.Count(sv.log(t), `msg="drift check"`) }
	sv.waitIdle(t, time.Now().Add(60*time.Second), func() bool {
		ds, err := l.Drifts(ctx, "dev/app/a")
		return err == nil && len(ds) == 1 && karmas() && checks() >= 4
	})
	ds, _ := l.Drifts(ctx, "dev/app/a")
	if len(ds) != 1 || ds[0].Kind != message.DriftRuntime || ds[0].Actor != serveDriftActor || ds[0].ChangeSetID == "" {
		t.Fatalf("drifts of dev/app/a after %d checks: %+v", checks(), ds)
	}
	caused, err := l.ChangesByRoot(ctx, message.CauseDrift, ds[0].ID)
	if err != nil || len(caused) != 1 || caused[0].ID != ds[0].ChangeSetID {
		t.Errorf("the correction of %s: %+v %v", ds[0].ID, caused, err)
	}
	// The API serves the same check as a read: corrected, nothing drifts any more.
	resp, err := http.Get(sv.url + "/drift?component=dev/app/a")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep drift.Report
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /drift: %d %v", resp.StatusCode, err)
	}
	if len(rep.Envs) != 1 || rep.Envs[0].Compared != 1 || len(rep.Envs[0].Findings) != 0 {
		t.Errorf("GET /drift after the correction: %+v", rep.Envs)
	}
	if code := sv.stop(t); code != 0 {
		t.Errorf("serve exited %d", code)
	}
}
