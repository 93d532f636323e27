package terraform

// validate_test.go runs terraform itself on a scratch copy of this folder, with the AWS
// provider from a local filesystem mirror (never the registry): a copy with one argument
// misspelt must fail `terraform validate` (so the validate step of scripts/test.sh is known to
// bite), and `terraform console` must compute what the Go evaluator of module_test.go computes.
// Without terraform on the PATH or a mirror holding hashicorp/aws, it is skipped with the reason.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// pluginMirrors are where a filesystem mirror of providers is looked for (as scripts/test.sh
// does): KARMA_TF_PLUGIN_MIRROR alone if set, else the build machine's /opt/tf-plugins and
// Terraform's implied local mirror directories.
func pluginMirrors() []string {
	if d := os.Getenv("KARMA_TF_PLUGIN_MIRROR"); d != "" {
		return []string{d}
	}
	dirs := []string{"/opt/tf-plugins"}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".terraform.d", "plugins"), filepath.Join(home, ".local", "share", "terraform", "plugins"))
	}
	return append(dirs, "/usr/local/share/terraform/plugins", "/usr/share/terraform/plugins")
}

// terraformWithMirror returns the terraform binary and a mirror holding hashicorp/aws for this
// platform, or skips the test saying which is missing.
func terraformWithMirror(t *testing.T) (bin, mirror string) {
	t.Helper()
	bin, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("skipped: no terraform on the PATH")
	}
	platform := runtime.GOOS + "_" + runtime.GOARCH
	for _, d := range pluginMirrors() {
		if m, _ := filepath.Glob(filepath.Join(d, "registry.terraform.io", "hashicorp", "aws", "*", platform)); len(m) > 0 {
			return bin, d
		}
	}
	t.Skipf("skipped: no filesystem mirror of registry.terraform.io/hashicorp/aws for %s in %s (set KARMA_TF_PLUGIN_MIRROR)",
		platform, strings.Join(pluginMirrors(), ", "))
	return "", ""
}

// scratch is a copy of this folder that terraform may write into.
type scratch struct {
	bin, dir string
	env      []string
}

func newScratch(t *testing.T) *scratch {
	t.Helper()
	bin, mirror := terraformWithMirror(t)
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "module")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	paths, err := filepath.Glob(filepath.Join(moduleDir(), "*.tf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Only the mirror: with a provider_installation block and no direct {}, terraform never asks
	// the registry.
	cli := filepath.Join(tmp, "cli.tfrc")
	conf := fmt.Sprintf("provider_installation {\n  filesystem_mirror {\n    path = %q\n  }\n}\n", mirror)
	if err := os.WriteFile(cli, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TF_") && !strings.HasPrefix(kv, "CHECKPOINT_") {
			env = append(env, kv)
		}
	}
	env = append(env, "TF_CLI_CONFIG_FILE="+cli, "TF_DATA_DIR="+filepath.Join(tmp, "data"),
		"TF_IN_AUTOMATION=1", "TF_INPUT=0", "CHECKPOINT_DISABLE=1")
	s := &scratch{bin: bin, dir: dir, env: env}
	if out, err := s.run(t, nil, "init", "-backend=false", "-input=false", "-no-color"); err != nil {
		t.Fatalf("terraform init (provider from %s): %v\n%s", mirror, err, out)
	}
	return s
}

func (s *scratch) run(t *testing.T, stdin []byte, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, append([]string{"-chdir=" + s.dir}, args...)...)
	cmd.Env = s.env
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.Bytes(), err
}

// TestTerraform: on a scratch copy, `terraform console` agrees with the Go evaluator, and a
// misspelt argument fails `terraform validate`, which names it.
func TestTerraform(t *testing.T) {
	s := newScratch(t)

	t.Run("console agrees with the Go evaluator", func(t *testing.T) {
		vars := map[string]json.RawMessage{}
		for name, v := range testVars() {
			b, err := ctyjson.SimpleJSONValue{Value: v}.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			vars[name] = b
		}
		b, err := json.Marshal(vars)
		if err != nil {
			t.Fatal(err)
		}
		varFile := filepath.Join(t.TempDir(), "test.tfvars.json")
		if err := os.WriteFile(varFile, b, 0o644); err != nil {
			t.Fatal(err)
		}
		const expr = `jsonencode({ bus_rules = local.bus_rules, queue_visibility = local.queue_visibility, functions = local.functions, env = { for k, v in local.function_env : k => sort(keys(v)) } })`
		out, err := s.run(t, []byte(expr+"\n"), "console", "-var-file="+varFile)
		if err != nil {
			t.Fatalf("terraform console: %v\n%s", err, out)
		}
		text, err := strconv.Unquote(strings.TrimSpace(string(out)))
		if err != nil {
			t.Fatalf("terraform console printed %q: %v", out, err)
		}
		var fromTerraform map[string]any
		if err := json.Unmarshal([]byte(text), &fromTerraform); err != nil {
			t.Fatal(err)
		}

		m, err := loadModule(moduleDir(), testVars())
		if err != nil {
			t.Fatal(err)
		}
		fromGo := map[string]any{}
		for _, name := range []string{"bus_rules", "queue_visibility", "functions"} {
			v, err := m.local(name)
			if err != nil {
				t.Fatal(err)
			}
			fromGo[name] = jsonOf(t, v)
		}
		fenv, err := m.local("function_env")
		if err != nil {
			t.Fatal(err)
		}
		envKeys := map[string]any{}
		for fn, env := range fenv.AsValueMap() {
			var keys []any
			for _, k := range slices.Sorted(maps.Keys(env.AsValueMap())) {
				keys = append(keys, k)
			}
			envKeys[fn] = keys
		}
		fromGo["env"] = envKeys
		if got, want := slices.Sorted(maps.Keys(fromTerraform)), slices.Sorted(maps.Keys(fromGo)); !slices.Equal(got, want) {
			t.Fatalf("terraform console computed %v, want %v", got, want)
		}
		for _, k := range slices.Sorted(maps.Keys(fromTerraform)) {
			if !reflect.DeepEqual(fromTerraform[k], fromGo[k]) {
				t.Errorf("local %s:\nterraform console: %v\nGo evaluator:      %v", k, fromTerraform[k], fromGo[k])
			}
		}
	})

	t.Run("a misspelt argument fails validate", func(t *testing.T) {
		const good, bad = "visibility_timeout_seconds", "visibility_timeout_secondz"
		path := filepath.Join(s.dir, "queues.tf")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(b, []byte(good+" ")); n != 1 {
			t.Fatalf("queues.tf: %q as an argument %d times, want once", good, n)
		}
		if err := os.WriteFile(path, bytes.Replace(b, []byte(good+" "), []byte(bad+" "), 1), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := s.run(t, nil, "validate", "-json", "-no-color")
		if err == nil {
			t.Fatalf("terraform validate passed a copy with %q misspelt as %q:\n%s", good, bad, out)
		}
		var res struct {
			Valid       bool `json:"valid"`
			Diagnostics []struct {
				Severity, Summary, Detail string
			} `json:"diagnostics"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("terraform validate -json: %v\n%s", err, out)
		}
		errs := 0
		for _, d := range res.Diagnostics {
			if d.Severity != "error" {
				continue
			}
			errs++
			// Every error is the misspelling: the unchanged folder validates.
			if !strings.Contains(d.Detail, bad) {
				t.Errorf("terraform validate: an error that is not the misspelling: %s: %s", d.Summary, d.Detail)
			}
		}
		if res.Valid || errs == 0 {
			t.Errorf("terraform validate failed without reporting the misspelling:\n%s", out)
		}
	})
}

func jsonOf(t *testing.T, v cty.Value) any {
	t.Helper()
	b, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
