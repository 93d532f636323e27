package terraform

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// mainOf is the main.tf Prepare writes for ws.
func mainOf(t *testing.T, ws Workspace) string {
	t.Helper()
	mc, err := splitConfig(ws)
	if err != nil {
		t.Fatal(err)
	}
	return renderMain(ws, mc)
}

func TestRenderMainGolden(t *testing.T) {
	t.Parallel()
	ws := Workspace{
		Root:      "/repo/.karma/work/dev/vpc/core",
		ModuleDir: "/repo/components/vpc",
		Env:       "dev", Type: "vpc", Nickname: "core", Prefix: "/iac",
	}
	sensitive := ws
	sensitive.Config = json.RawMessage(`{"db":{"host":"h","password":"p4ssw0rd"},"urls":["a","b${x}",{"u":"c"}],"a/b":{"~k":"s"}}`)
	sensitive.Sensitive = []string{"/db/password", "/urls/1", "/urls/2/u", "/a~1b/~0k"}
	for golden, ws := range map[string]Workspace{"main.tf.golden": ws, "main-sensitive.tf.golden": sensitive} {
		got := mainOf(t, ws)
		golden = filepath.Join("testdata", golden)
		if *update {
			if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Fatalf("main.tf differs from %s (run with -update to accept):\n%s", golden, got)
		}
	}
}

func TestRenderMainSourceAndEscaping(t *testing.T) {
	t.Parallel()
	cases := []struct {
		root, module string
		want         []string
	}{
		{"/w/dev/vpc/core", "/w/dev/vpc/core/mod", []string{`source = "./mod"`}},
		{"/a/root", "/b/vpc", []string{`source = "../../b/vpc"`}},
		{"/a/r${x}", "/a/m", []string{`path = "/a/r$${x}/terraform.tfstate"`, `source = "../m"`}},
	}
	for _, c := range cases {
		got := mainOf(t, Workspace{Root: c.root, ModuleDir: c.module, Env: "e", Type: "t", Nickname: "n"})
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("root %s module %s: main.tf lacks %s:\n%s", c.root, c.module, w, got)
			}
		}
		if strings.Contains(got, "iac_prefix") {
			t.Errorf("empty Prefix should leave iac_prefix to the module default:\n%s", got)
		}
	}
}

func TestHCLString(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		`plain`:            `"plain"`,
		`a"b\c`:            `"a\"b\\c"`,
		"l1\nl2\t\r":       `"l1\nl2\t\r"`,
		"${x} %{if} $ % {": `"$${x} %%{if} $ % {"`,
		"é\x01":            `"é\u0001"`,
	}
	for in, want := range cases {
		if got := hclString(in); got != want {
			t.Errorf("hclString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestPrepare(t *testing.T) {
	t.Parallel()
	module := t.TempDir()
	if err := os.WriteFile(filepath.Join(module, "main.tf"), []byte("variable \"config\" {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "dev", "vpc", "core") // created by Prepare
	ws := Workspace{Root: root, ModuleDir: module, Env: "dev", Type: "vpc", Nickname: "core", Prefix: "/iac",
		Config: json.RawMessage(` {"cidr": "10.0.0.0/16", "n": 1.50} `)}

	changed, err := Prepare(ws)
	if err != nil || !changed {
		t.Fatalf("first Prepare: changed=%v err=%v, want true, nil", changed, err)
	}
	main, _ := os.ReadFile(filepath.Join(root, "main.tf"))
	if string(main) != mainOf(t, ws) {
		t.Fatalf("main.tf written:\n%s\nwant:\n%s", main, mainOf(t, ws))
	}
	cfg, _ := os.ReadFile(filepath.Join(root, "config.json"))
	if string(cfg) != `{"cidr": "10.0.0.0/16", "n": 1.50}`+"\n" {
		t.Fatalf("config.json = %q: want the config as given (numbers untouched)", cfg)
	}
	st1, _ := os.Stat(filepath.Join(root, "main.tf"))
	key1, err := initKey(mustNormalize(t, ws))
	if err != nil {
		t.Fatal(err)
	}

	// Same workspace: nothing rewritten.
	time.Sleep(10 * time.Millisecond)
	if changed, err := Prepare(ws); err != nil || changed {
		t.Fatalf("second Prepare: changed=%v err=%v, want false, nil", changed, err)
	}
	st2, _ := os.Stat(filepath.Join(root, "main.tf"))
	if !st2.ModTime().Equal(st1.ModTime()) {
		t.Fatalf("main.tf rewritten without a change")
	}

	// A new config changes config.json only: no init needed.
	ws.Config = json.RawMessage(`{"cidr": "10.1.0.0/16"}`)
	if changed, err := Prepare(ws); err != nil || changed {
		t.Fatalf("Prepare with a new config: changed=%v err=%v, want false, nil", changed, err)
	}
	cfg, _ = os.ReadFile(filepath.Join(root, "config.json"))
	if string(cfg) != `{"cidr": "10.1.0.0/16"}`+"\n" {
		t.Fatalf("config.json = %q", cfg)
	}
	if key, _ := initKey(mustNormalize(t, ws)); key != key1 {
		t.Fatal("init key changed with the config alone")
	}

	// A new prefix changes main.tf, and the init key.
	ws.Prefix = "/other"
	if changed, err := Prepare(ws); err != nil || !changed {
		t.Fatalf("Prepare with a new prefix: changed=%v err=%v, want true, nil", changed, err)
	}
	key2, _ := initKey(mustNormalize(t, ws))
	if key2 == key1 {
		t.Fatal("init key unchanged after main.tf changed")
	}
	// So does a change to the module's own .tf files.
	if err := os.WriteFile(filepath.Join(module, "extra.tf"), []byte("# more\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	key3, _ := initKey(mustNormalize(t, ws))
	if key3 == key2 {
		t.Fatal("init key unchanged after the module changed")
	}
	// And to its .tf.json files, terraform's JSON syntax: a module call there needs an init too.
	if err := os.WriteFile(filepath.Join(module, "calls.tf.json"), []byte(`{"module": {"net": {"source": "../net"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if key4, _ := initKey(mustNormalize(t, ws)); key4 == key3 {
		t.Fatal("init key unchanged after a .tf.json file of the module changed")
	}
	if err := os.Remove(filepath.Join(module, "calls.tf.json")); err != nil {
		t.Fatal(err)
	}
	if !needsInit(root, key2) {
		t.Fatal("needsInit false without .terraform")
	}
	os.MkdirAll(filepath.Join(root, ".terraform"), 0o755)
	os.WriteFile(filepath.Join(root, ".terraform", initMarker), []byte(key2+"\n"), 0o644)
	if needsInit(root, key2) || !needsInit(root, key1) {
		t.Fatal("needsInit does not follow the marker")
	}

	// No temporary files left behind.
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".main.tf") || strings.HasPrefix(e.Name(), ".config.json") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

func TestPrepareErrors(t *testing.T) {
	t.Parallel()
	module := t.TempDir()
	base := Workspace{Root: t.TempDir(), ModuleDir: module, Env: "dev", Type: "vpc", Nickname: "core"}
	cases := []struct {
		name string
		mod  func(*Workspace)
		want string
	}{
		{"array config", func(w *Workspace) { w.Config = json.RawMessage(`[1]`) }, "config must be a JSON object"},
		{"null config", func(w *Workspace) { w.Config = json.RawMessage(`null`) }, "config must be a JSON object"},
		{"bad json", func(w *Workspace) { w.Config = json.RawMessage(`{"a":`) }, "config must be a JSON object"},
		{"missing module", func(w *Workspace) { w.ModuleDir = filepath.Join(module, "nope") }, "module directory"},
		{"missing fields", func(w *Workspace) { w.Env, w.Nickname = "", "" }, "Env, Nickname not set"},
	}
	for _, c := range cases {
		ws := base
		c.mod(&ws)
		_, err := Prepare(ws)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	// An empty config is an empty object.
	ws := base
	if _, err := Prepare(ws); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(ws.Root, "config.json")); string(b) != "{}\n" {
		t.Fatalf("config.json for an empty config = %q", b)
	}
}

func mustNormalize(t *testing.T, ws Workspace) Workspace {
	t.Helper()
	n, err := normalize(ws)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
