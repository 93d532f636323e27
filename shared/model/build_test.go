package model_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/model"
)

// writeRepo creates a repository from relative path -> content.
func writeRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func build(t *testing.T, files map[string]string) *model.Result {
	t.Helper()
	res, err := model.Build(context.Background(), writeRepo(t, files), model.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func component(t *testing.T, res *model.Result, id string) map[string]any {
	t.Helper()
	for _, c := range res.Repo.Components {
		if c.ID() == id {
			var m map[string]any
			if err := json.Unmarshal(c.Resolved, &m); err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	t.Fatalf("no component %s", id)
	return nil
}

func TestLayersAndExtends(t *testing.T) {
	t.Parallel()
	res := build(t, map[string]string{
		"iac/_base/site/defaults/config.json": `{"index":"index.html","tags":{"Owner":"platform","Tier":"web"}}`,
		"iac/_base/site/www/config.json":      `{"karma":{"extends":"site/defaults"},"tags":{"Project":"www"},"cdn":true}`,
		"iac/dev/site/www/config.json":        `{"cdn":null,"tags":{"Tier":null,"Environment":"dev"}}`,
		"iac/prod/site/www/config.json":       `{"tags":{"Environment":"prod"}}`,
	})
	if len(res.Diagnostics) > 0 {
		t.Fatal(res.Diagnostics)
	}
	dev := component(t, res, "dev/site/www")
	if _, ok := dev["cdn"]; ok {
		t.Error("null in the env file must delete the base key")
	}
	if dev["index"] != "index.html" {
		t.Error("value from the extends parent missing")
	}
	tags := dev["tags"].(map[string]any)
	if tags["Owner"] != "platform" || tags["Project"] != "www" || tags["Environment"] != "dev" || tags["Tier"] != nil {
		t.Errorf("dev tags = %v", tags)
	}
	prod := component(t, res, "prod/site/www")
	if prod["cdn"] != true || prod["tags"].(map[string]any)["Tier"] != "web" {
		t.Errorf("prod = %v", prod)
	}
	if _, ok := prod["karma"]; ok {
		t.Error("the karma block must not be in the resolved config")
	}
	if len(res.Repo.Components) != 2 {
		t.Errorf("base-only templates must not become components: %d", len(res.Repo.Components))
	}
	for _, c := range res.Repo.Components {
		if c.ID() == "dev/site/www" {
			want := "iac/_base/site/defaults/config.json,iac/_base/site/www/config.json,iac/dev/site/www/config.json"
			if got := strings.Join(c.Files, ","); got != want {
				t.Errorf("layers = %s, want %s", got, want)
			}
		}
	}
}

func TestValidationReportsEverythingAtOnce(t *testing.T) {
	t.Parallel()
	res := build(t, map[string]string{
		"components/vpc/config.schema.json": `{"type":"object","required":["cidr"],"properties":{"cidr":{"type":"string","pattern":"^[0-9./]+$"},"az_count":{"type":"integer"}}}`,
		"iac/dev/vpc/core/config.json":      `{"cidr":"ten","az_count":"two"}`,
		"iac/dev/app/a/config.json":         `{"karma":{"depends_on":["app/b"]},"queue_nickname":"missing"}`,
		"iac/dev/app/b/config.json":         `{"karma":{"depends_on":["app/c"]}}`,
		"iac/dev/app/c/config.json":         `{"karma":{"depends_on":["app/a"]}}`,
		"iac/dev/app/broken/config.json":    "{\n  \"x\": <<placeholder>>\n}",
		"iac/dev/app/Dup/config.json":       `{}`,
		"iac/dev/app/dup/config.json":       `{}`,
		"iac/dev/app/ext/config.json":       `{"karma":{"extends":"app/nowhere"}}`,
	})
	want := []string{
		"iac/dev/app/a/config.json: error [missing-reference] at /queue_nickname: queue_nickname references queue/missing (inferred), which is not defined in dev",
		"iac/dev/app/a/config.json: error [cycle]: dependency cycle: dev/app/a -> dev/app/b -> dev/app/c -> dev/app/a",
		"iac/dev/app/broken/config.json:2:8: error [invalid-json]: invalid character '<' looking for beginning of value",
		"iac/dev/app/ext/config.json: error [extends] at /karma/extends: extends \"app/nowhere\": no such component in dev or in the base layer",
		"iac/dev/vpc/core/config.json: error [schema] at /az_count",
		"iac/dev/vpc/core/config.json: error [schema] at /cidr",
	}
	errs := res.Diagnostics.Errors()
	var all []string
	for _, d := range errs {
		all = append(all, d.String())
	}
	joined := strings.Join(all, "\n")
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Errorf("missing diagnostic %q in:\n%s", w, joined)
		}
	}
	if !strings.Contains(joined, "error [duplicate-component]") {
		t.Errorf("case-colliding components not reported:\n%s", joined)
	}
	if len(errs) != 7 {
		t.Errorf("want 7 errors, got %d:\n%s", len(errs), joined)
	}
}

func TestAccountEnvironments(t *testing.T) {
	t.Parallel()
	res := build(t, map[string]string{
		"account_environments/a.json": `{"name":"acct-a","environment":"qa","iac_strict":"true","custom":{"x":1}}`,
		"account_environments/b.json": `{"name":"prod","lambda_strict":false}`,
		"account_environments/c.yaml": "name: staging\niac_strict: true # comment\n",
		"account_environments/d.json": `{"name":"x","allow_drift":"maybe"}`,
		"iac/qa/vpc/core/config.json": `{}`,
	})
	envs := strings.Join(res.Repo.Environments, ",")
	if envs != "prod,qa,staging,x" {
		t.Errorf("environments = %s", envs)
	}
	a := res.Repo.Accounts[0]
	if b, err := a.Bool("iac_strict"); err != nil || !b {
		t.Errorf("string boolean: %v %v", b, err)
	}
	if a.Fields["custom"] == nil {
		t.Error("unknown fields must be kept")
	}
	errs := res.Diagnostics.Errors()
	if len(errs) != 1 || errs[0].File != "account_environments/d.json" || !strings.Contains(errs[0].Message, "allow_drift") {
		t.Errorf("want one error for d.json allow_drift, got %v", errs)
	}
}

func TestDriftFlags(t *testing.T) {
	t.Parallel()
	res := build(t, map[string]string{
		"account_environments/prod.json":   `{"environment":"prod","allow_drift":true,"drift_refresh":"true"}`,
		"account_environments/dev.yaml":    "environment: dev\n",
		"account_environments/qa.json":     `{"environment":"qa","drift_refresh":"sometimes"}`,
		"iac/prod/vpc/core/config.json":    `{}`,
		"iac/staging/vpc/core/config.json": `{}`,
	})
	for _, c := range []struct {
		env, flag string
		want      bool
	}{
		{"prod", model.FlagAllowDrift, true}, {"prod", model.FlagDriftRefresh, true},
		{"dev", model.FlagAllowDrift, false}, {"dev", model.FlagDriftRefresh, false},
		{"staging", model.FlagAllowDrift, false}, // no account file: the defaults
		{"qa", model.FlagDriftRefresh, false},    // invalid: reported at load, false here
	} {
		if got := res.Repo.Flag(c.env, c.flag); got != c.want {
			t.Errorf("%s %s = %v, want %v", c.env, c.flag, got, c.want)
		}
	}
	errs := res.Diagnostics.Errors()
	if len(errs) != 1 || errs[0].File != "account_environments/qa.json" || !strings.Contains(errs[0].Message, "drift_refresh") {
		t.Errorf("want one error for qa.json drift_refresh, got %v", errs)
	}
}

func TestLoadRejectsUnusableInput(t *testing.T) {
	t.Parallel()
	if _, err := model.Build(context.Background(), filepath.Join(t.TempDir(), "nope"), model.BuildOptions{}); err == nil {
		t.Error("missing directory accepted")
	}
	dir := writeRepo(t, map[string]string{"karma.json": `{"prefix":"iac/","colour":"x"}`})
	_, err := model.Build(context.Background(), dir, model.BuildOptions{})
	if err == nil || !strings.Contains(err.Error(), "karma.json") {
		t.Errorf("bad karma.json: %v", err)
	}
	dir = writeRepo(t, map[string]string{"iac/dev/vpc/a/config.json": `{}`})
	_, err = model.Build(context.Background(), dir, model.BuildOptions{LoadOptions: model.LoadOptions{Env: "qa"}})
	if err == nil || !strings.Contains(err.Error(), `environment "qa"`) {
		t.Errorf("unknown env: %v", err)
	}
}

// TestNullsNeverPublished: a null deletes, whether or not a lower layer sets the key.
func TestNullsNeverPublished(t *testing.T) {
	t.Parallel()
	res := build(t, map[string]string{
		"iac/_base/t/tpl/config.json":  `{"gone":null,"v":1}`,
		"iac/prod/a/solo/config.json":  `{"x":null,"keep":1,"n":{"y":null}}`,
		"iac/prod/t/child/config.json": `{"karma":{"extends":"t/tpl"}}`,
	})
	for id, want := range map[string]string{"prod/a/solo": `{"keep":1,"n":{}}`, "prod/t/child": `{"v":1}`} {
		for _, c := range res.Repo.Components {
			if c.ID() == id && string(c.Resolved) != want {
				t.Errorf("%s resolved = %s, want %s", id, c.Resolved, want)
			}
		}
	}
}

// TestBrokenParent: a child of an unreadable parent is broken, keeps its file and says why.
func TestBrokenParent(t *testing.T) {
	t.Parallel()
	res := build(t, map[string]string{
		"iac/prod/b/broken/config.json": `{"x": `,
		"iac/prod/c/child/config.json":  `{"karma":{"extends":"b/broken"}}`,
	})
	var child *model.Component
	for _, c := range res.Repo.Components {
		if c.ID() == "prod/c/child" {
			child = c
		}
	}
	if child == nil || !child.Broken || child.File() != "iac/prod/c/child/config.json" {
		t.Fatalf("child = %+v", child)
	}
	found := false
	for _, d := range res.Diagnostics.Errors() {
		if d.File == child.File() && d.Code == model.CodeExtends && strings.Contains(d.Message, "cannot be resolved") {
			found = true
		}
	}
	if !found {
		t.Errorf("no extends diagnostic for the child: %v", res.Diagnostics)
	}
}
