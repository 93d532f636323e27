package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/api"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/queue"
)

// decodeAll decodes the whole of out as JSON into v: --json output is nothing but the document.
func decodeAll(t *testing.T, what, out string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s --json: not one JSON document of the documented shape: %v\n%s", what, err, out)
	}
	if dec.More() {
		t.Fatalf("%s --json: more than one JSON document on standard output:\n%s", what, out)
	}
}

// The --json outputs of params publish (and its dry run), list and get, and dlq list.
func TestParamsAndDLQJSON(t *testing.T) {
	repo := writeFiles(t, map[string]string{
		"iac/dev/app/a/config.json":  `{"size":1}`,
		"iac/prod/app/a/config.json": `{"size":3}`,
	})
	g := &globals{paramsBackend: "embedded"}
	base := []string{"--repo", repo, "--state-dir", t.TempDir()}
	names := func(p published) []string {
		var out []string
		for _, w := range p.Written {
			out = append(out, w.Env+" "+w.Name)
		}
		slices.Sort(out)
		return out
	}
	var dry, real, again published
	decodeAll(t, "params publish --dry-run", karmaOK(t, g, append([]string{"params", "publish", "--dry-run", "--json"}, base...)...), &dry)
	decodeAll(t, "params publish", karmaOK(t, g, append([]string{"params", "publish", "--json"}, base...)...), &real)
	decodeAll(t, "params publish (again)", karmaOK(t, g, append([]string{"params", "publish", "--json"}, base...)...), &again)
	want := []string{"dev /iac/app/a/config", "prod /iac/app/a/config"}
	if !dry.DryRun || real.DryRun || !slices.Equal(names(dry), want) || !slices.Equal(names(real), want) {
		t.Errorf("publish --json: dry run %+v, run %+v; want both to name %v", dry, real, want)
	}
	if len(real.Written) > 0 && (real.Written[0].Version != 1 || real.Written[0].Component == "" || real.Written[0].Bytes == 0) {
		t.Errorf("published parameter %+v: want version 1, its component and size", real.Written[0])
	}
	if len(again.Written) != 0 || again.Unchanged != 2 {
		t.Errorf("second publish --json: %+v, want nothing written and 2 unchanged", again)
	}

	var list []params.Parameter
	decodeAll(t, "params list", karmaOK(t, g, append([]string{"params", "list", "--env", "prod", "--json"}, base...)...), &list)
	if len(list) != 1 || list[0].Name != "/iac/app/a/config" || list[0].Value != `{"size":3}` || list[0].Version != 1 {
		t.Errorf("params list --json: %+v", list)
	}
	var one params.Parameter
	decodeAll(t, "params get", karmaOK(t, g, append([]string{"params", "get", "/iac/app/a/config", "--env", "dev", "--json"}, base...)...), &one)
	if one.Value != `{"size":1}` || !strings.Contains(one.Description, "commit=") {
		t.Errorf("params get --json: %+v, want the value and its provenance", one)
	}

	var dead []deadLetter
	decodeAll(t, "dlq list", karmaOK(t, g, append([]string{"dlq", "list", "--json"}, base...)...), &dead)
	if len(dead) != 0 {
		t.Errorf("dlq list --json on a fresh state: %+v", dead)
	}
}

// A dead letter's body is kept as JSON when it is, as text otherwise; SecureString values are
// redacted in every --json output.
func TestDeadLetterAndRedactionJSON(t *testing.T) {
	d := deadLetterOf("plan", queue.DeadLetter{MessageID: "m1", Body: []byte(`{"type":"x"}`), Reason: "bad"})
	b, _ := json.Marshal(d)
	if !bytes.Contains(b, []byte(`"body":{"type":"x"}`)) {
		t.Errorf("JSON body not kept as JSON: %s", b)
	}
	d = deadLetterOf("plan", queue.DeadLetter{MessageID: "m2", Body: []byte("not json")})
	if d.Body != nil || d.BodyText != "not json" {
		t.Errorf("text body: %+v", d)
	}
	got := redactedAll([]params.Parameter{{Name: "/s", Value: "hunter2", Type: params.TypeSecureString}, {Name: "/p", Value: "v", Type: params.TypeString}})
	if got[0].Value == "hunter2" || got[1].Value != "v" {
		t.Errorf("redactedAll: %+v", got)
	}
}

// propose-change, plan and apply with --json print one document each (as the API answers) and no
// progress lines.
func TestProposePlanApplyJSON(t *testing.T) {
	needTerraform(t)
	repo, state := demoRepo(t)
	g := &globals{paramsBackend: "embedded"}
	base := []string{"--repo", repo, "--state-dir", state}
	karmaOK(t, g, append([]string{"ingest", "commit", "--auto-approve"}, base...)...)
	var first []api.ChangeSummary
	decodeAll(t, "apply", karmaOK(t, g, append([]string{"apply", "--auto-approve", "--json"}, base...)...), &first)
	if len(first) == 0 || first[0].State != "done" {
		t.Fatalf("apply --json: %+v, want the applied change set", first)
	}

	var cfg map[string]any
	data, _ := os.ReadFile(filepath.Join(repo, "iac", "prod", "vpc", "core", "config.json"))
	json.Unmarshal(data, &cfg)
	cfg["az_count"] = 5
	data, _ = json.Marshal(cfg)
	proposal := filepath.Join(t.TempDir(), "vpc.json")
	os.WriteFile(proposal, data, 0o644)
	var created api.ChangeCreated
	decodeAll(t, "propose-change", karmaOK(t, g, append([]string{"propose-change", "vpc", "core", "--env", "prod", "--input", proposal, "--json"}, base...)...), &created)
	if created.ChangeID == "" || created.Component != "prod/vpc/core" || created.Commit != git(t, repo, "rev-parse", "HEAD") || len(created.Impact.Waves) == 0 {
		t.Fatalf("propose-change --json: %+v", created)
	}

	var planned []api.ChangeSummary
	decodeAll(t, "plan", karmaOK(t, g, append([]string{"plan", "--json"}, base...)...), &planned)
	if len(planned) != 1 || planned[0].ID != created.ChangeID || planned[0].Approved {
		t.Fatalf("plan --json: %+v, want the proposal's change set, not approved", planned)
	}
	var applied []api.ChangeSummary
	decodeAll(t, "apply", karmaOK(t, g, append([]string{"apply", created.ChangeID, "--auto-approve", "--json"}, base...)...), &applied)
	if len(applied) != 1 || applied[0].State != "done" || applied[0].Commit != created.Commit || applied[0].Counts["applied"] == 0 {
		t.Fatalf("apply --json: %+v, want the proposal applied at its commit", applied)
	}
}
