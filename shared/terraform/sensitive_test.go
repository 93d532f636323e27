package terraform

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const secret = "s3cr3t-P@ss"

// secretWorkspace is a workspace whose config holds a secret at /db/password and inside
// /urls/1, both marked sensitive.
func secretWorkspace(t *testing.T) Workspace {
	t.Helper()
	mod, err := filepath.Abs(filepath.Join("testdata", "modules", "secret"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := `{"name":"app","db":{"host":"db.internal","password":"` + secret + `"},` +
		`"urls":["https://a","postgres://u:` + secret + `@db.internal/app"],"tags":{"a":"1","b":"2"}}`
	return Workspace{Root: filepath.Join(t.TempDir(), "dev", "secret", "app"), ModuleDir: mod,
		Env: "dev", Type: "secret", Nickname: "app", Config: json.RawMessage(cfg), Sensitive: []string{"/db/password", "/urls/1"}}
}

// filesHolding lists the files under root (outside .terraform, the state and the saved plans,
// which Terraform itself fills) whose content holds s.
func filesHolding(t *testing.T, root, s string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir() && (d.Name() == ".terraform" || d.Name() == planDir):
			return filepath.SkipDir
		case d.IsDir() || strings.HasPrefix(d.Name(), stateFile):
			return nil
		}
		if data, err := os.ReadFile(p); err == nil && strings.Contains(string(data), s) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A SecureString value interpolated into a config reaches the module as a sensitive variable
// from a 0600 var file removed after the run: config.json and main.tf never hold it, the saved
// plan (which Terraform fills with variable values) is 0600, and the module sees the exact value
// at the exact place.
func TestTFExecSensitiveValues(t *testing.T) {
	t.Parallel()
	r := NewTFExec(findTerraformOrSkip(t))
	ctx := context.Background()
	ws := secretWorkspace(t)
	plan, err := r.Plan(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if files := filesHolding(t, ws.Root, secret); len(files) > 0 {
		t.Errorf("files holding the secret after plan: %v", files)
	}
	cfg, _ := os.ReadFile(filepath.Join(ws.Root, configFile))
	if !strings.Contains(string(cfg), `"host":"db.internal"`) {
		t.Errorf("config.json lost the values that are not sensitive: %s", cfg)
	}
	for _, p := range []string{plan.PlanFile, filepath.Dir(plan.PlanFile)} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v (%v), want nothing for group and others: the saved plan holds the variables", p, fi.Mode().Perm(), err)
		}
	}
	out, err := r.Apply(ctx, ws, plan)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(secret))
	want := map[string]string{
		"password_sha256": `"` + hex.EncodeToString(sum[:]) + `"`,
		"url_length":      strconv.Itoa(len("postgres://u:" + secret + "@db.internal/app")),
		"first_url":       `"https://a"`,
		"host":            `"db.internal"`,
		"tags":            `["a","b"]`,
	}
	for k, v := range want {
		if string(out[k]) != v {
			t.Errorf("output %s = %s, want %s (the module must see the config as interpolated)", k, out[k], v)
		}
	}
	if files := filesHolding(t, ws.Root, secret); len(files) > 0 {
		t.Errorf("files holding the secret after apply: %v", files)
	}
}

// What Terraform prints is scrubbed of sensitive values before it is kept in an error.
func TestSensitiveValuesRedactedFromErrors(t *testing.T) {
	t.Parallel()
	ws := secretWorkspace(t)
	s := &session{ws: ws, log: newTail(), redact: newRedactor(ws)}
	s.log.Write([]byte("Error: bad value \"" + secret + "\" in postgres://u:" + secret + "@db.internal/app\n"))
	err := s.fail(OpPlan, errors.New("exit status 1: "+secret))
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error holds the secret: %s", err)
	}
	if !strings.Contains(err.Error(), "bad value") {
		t.Errorf("error lost the rest of the log: %s", err)
	}
}

// Sensitive pointers that name nothing in the config are an error, not a silent leak.
func TestSensitivePointerMustExist(t *testing.T) {
	t.Parallel()
	for _, ptr := range []string{"/db/nope", "/urls/7", "/name/x", "db"} {
		ws := secretWorkspace(t)
		ws.Sensitive = []string{ptr}
		if _, err := Prepare(ws); err == nil || !strings.Contains(err.Error(), ptr) {
			t.Errorf("Prepare with sensitive pointer %q: %v, want an error naming it", ptr, err)
		}
	}
}
