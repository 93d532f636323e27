package terraform

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// Files in Root.
const (
	mainFile   = "main.tf"
	configFile = "config.json"
	stateFile  = "terraform.tfstate"
	lockFile   = ".karma.lock"
	planDir    = "plans"
	// initMarker (in .terraform) records the initKey of the last successful init.
	initMarker = "karma-init"
)

// Prepare writes the root module into ws.Root (created when missing): main.tf calling the
// component's module, and config.json, the config it passes, its sensitive values left out (see
// sensitive.go: they are the -var-file's business); any other file of Root terraform would read
// as configuration or variables is removed (removeStrayConfig). A file is rewritten only when its content
// differs; mainChanged reports whether main.tf was (re)written.
//
// The module source is ModuleDir relative to Root ("../../..."), so Terraform reads the module
// in place: an absolute path would be installed as a package under .terraform/modules, and a
// module's own "../" module calls could not leave it.
func Prepare(ws Workspace) (mainChanged bool, err error) {
	ws, err = normalize(ws)
	if err != nil {
		return false, err
	}
	if st, err := os.Stat(ws.ModuleDir); err != nil || !st.IsDir() {
		return false, fmt.Errorf("module directory %s not found (want <modules_dir>/%s)", ws.ModuleDir, ws.Type)
	}
	mc, err := splitConfig(ws)
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(ws.Root, 0o755); err != nil {
		return false, err
	}
	mainChanged, err = writeIfChanged(filepath.Join(ws.Root, mainFile), []byte(renderMain(ws, mc)))
	if err != nil {
		return false, err
	}
	if _, err := writeIfChanged(filepath.Join(ws.Root, configFile), mc.file); err != nil {
		return false, err
	}
	if err := removeStrayConfig(ws.Root); err != nil {
		return false, err
	}
	return mainChanged, nil
}

// strayConfig reports whether terraform reads the file name of its root module folder as part of
// the configuration or its variables: every .tf and .tf.json file (overrides included), and the
// variable files it loads by itself (terraform.tfvars[.json], *.auto.tfvars[.json]).
func strayConfig(name string) bool {
	if name == mainFile {
		return false
	}
	for _, ext := range []string{".tf", ".tf.json", ".auto.tfvars", ".auto.tfvars.json"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return name == "terraform.tfvars" || name == "terraform.tfvars.json"
}

// removeStrayConfig removes from Root what terraform would read besides main.tf: a file a module
// wrote there while planning or applying (a local_file with a relative filename or one under
// path.root), or anyone put there, would otherwise be planned with the commit's module as part
// of the root module — resources, overrides, variable values the lineage's commit does not hold.
// Root is Karma's: its root module is main.tf alone.
func removeStrayConfig(root string) error {
	entries, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() || !strayConfig(e.Name()) {
			continue
		}
		if err := os.Remove(filepath.Join(root, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing %s, which terraform would read along with main.tf: %w", filepath.Join(root, e.Name()), err)
		}
	}
	return nil
}

// normalize checks the workspace and makes its paths absolute and clean.
func normalize(ws Workspace) (Workspace, error) {
	var missing []string
	for _, f := range []struct{ name, v string }{{"Root", ws.Root}, {"ModuleDir", ws.ModuleDir}, {"Env", ws.Env}, {"Type", ws.Type}, {"Nickname", ws.Nickname}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return ws, fmt.Errorf("workspace %s: %s not set", ws.ID(), strings.Join(missing, ", "))
	}
	var err error
	if ws.Root, err = filepath.Abs(ws.Root); err != nil {
		return ws, err
	}
	if ws.ModuleDir, err = filepath.Abs(ws.ModuleDir); err != nil {
		return ws, err
	}
	return ws, nil
}

// configJSON checks that the config is one JSON object and returns it with a final newline.
func configJSON(cfg json.RawMessage) ([]byte, error) {
	trimmed := bytes.TrimSpace(cfg)
	if len(trimmed) == 0 {
		return []byte("{}\n"), nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &obj); err != nil || obj == nil {
		if err == nil {
			err = errors.New("null")
		}
		return nil, fmt.Errorf("config must be a JSON object: %w", err)
	}
	return append(append([]byte{}, trimmed...), '\n'), nil
}

// renderMain is the generated main.tf of a normalized workspace whose config is mc.
func renderMain(ws Workspace, mc moduleConfig) string {
	source := filepath.ToSlash(ws.ModuleDir)
	if rel, err := filepath.Rel(ws.Root, ws.ModuleDir); err == nil && rel != "." {
		rel = filepath.ToSlash(rel)
		if !strings.HasPrefix(rel, "../") {
			rel = "./" + rel
		}
		source = rel
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Generated by Karma for %s: rewritten before every plan, do not edit.\n", ws.ID())
	b.WriteString("terraform {\n")
	b.WriteString("  backend \"local\" {\n")
	fmt.Fprintf(&b, "    path = %s\n", hclString(filepath.ToSlash(filepath.Join(ws.Root, stateFile))))
	b.WriteString("  }\n}\n\n")
	if len(mc.values) > 0 {
		b.WriteString("locals {\n")
		fmt.Fprintf(&b, "  %s = jsondecode(file(\"${path.module}/%s\"))\n", configLocal, configFile)
		b.WriteString("}\n\n")
		for i := range mc.values {
			fmt.Fprintf(&b, "variable \"%s%d\" {\n  type      = string\n  sensitive = true\n}\n\n", sensitiveVar, i)
		}
	}
	b.WriteString("module \"component\" {\n")
	fmt.Fprintf(&b, "  source = %s\n\n", hclString(source))
	fmt.Fprintf(&b, "  component_name = %s\n", hclString(ws.Type))
	fmt.Fprintf(&b, "  nickname       = %s\n", hclString(ws.Nickname))
	if ws.Prefix != "" {
		fmt.Fprintf(&b, "  iac_prefix     = %s\n", hclString(ws.Prefix))
	}
	b.WriteString("  config         = " + mc.expr + "\n")
	b.WriteString("}\n\n")
	b.WriteString("# Every output of the module, as one object: Karma flattens it into runtime keys. Sensitive,\n")
	b.WriteString("# so that modules with sensitive outputs plan too; `terraform output -json` still has the values.\n")
	b.WriteString("output \"runtime\" {\n")
	b.WriteString("  value     = module.component\n")
	b.WriteString("  sensitive = true\n")
	b.WriteString("}\n")
	return b.String()
}

// hclString quotes s as an HCL string literal with template sequences escaped.
func hclString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '"':
			b.WriteString(`\"`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case (r == '$' || r == '%') && strings.HasPrefix(s[i+1:], "{"):
			b.WriteRune(r)
			b.WriteRune(r) // "$${" and "%%{" are the literal "${" and "%{"
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	b.WriteByte('"')
	return b.String()
}

// writeIfChanged writes data to path (atomically, via a temporary file) unless it already
// holds exactly data.
func writeIfChanged(path string, data []byte) (bool, error) {
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return false, err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return false, err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return false, err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return false, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return false, err
	}
	return true, nil
}

// initKey identifies what `terraform init` depends on: main.tf, the module's own .tf and
// .tf.json files (a module that gains a module call needs a new init) and its dependency lock
// file, when it has one (lockfile.go). Subdirectories are not looked at: a commit's modules
// folder is named by its tree id in main.tf's module source, so any change to it changes main.tf.
func initKey(ws Workspace) (string, error) {
	h := sha256.New()
	main, err := os.ReadFile(filepath.Join(ws.Root, mainFile))
	if err != nil {
		return "", err
	}
	h.Write(main)
	files, err := filepath.Glob(filepath.Join(ws.ModuleDir, "*.tf"))
	if err != nil {
		return "", err
	}
	jsonFiles, err := filepath.Glob(filepath.Join(ws.ModuleDir, "*.tf.json"))
	if err != nil {
		return "", err
	}
	files = append(files, jsonFiles...)
	sort.Strings(files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "\x00%s\x00%d\x00", filepath.Base(f), len(data))
		h.Write(data)
	}
	lock, err := moduleLock(ws)
	if err != nil {
		return "", err
	}
	if lock != nil {
		fmt.Fprintf(h, "\x00%s\x00%d\x00", depLockFile, len(lock))
		h.Write(lock)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// needsInit reports whether Root/.terraform is missing, was initialised for another key, or lost
// a provider it installed (providersInstalled).
func needsInit(root, key string) bool {
	got, err := os.ReadFile(filepath.Join(root, ".terraform", initMarker))
	return err != nil || strings.TrimSpace(string(got)) != key || !providersInstalled(root)
}

// providersInstalled reports whether every provider package init installed in Root,
// .terraform/providers/<host>/<namespace>/<type>/<version>/<platform>, is still there. Terraform
// links a package from the plugin cache (TF_PLUGIN_CACHE_DIR) or a filesystem mirror instead of
// copying it: a cache emptied or a mirror replaced since leaves a link to nothing, every command
// but init then fails ("there is no package ... cached in .terraform/providers"), and init,
// run again, installs it anew.
func providersInstalled(root string) bool {
	platforms, err := filepath.Glob(filepath.Join(root, ".terraform", "providers", "*", "*", "*", "*", "*"))
	if err != nil {
		return false
	}
	for _, p := range platforms {
		if _, err := os.Stat(p); err != nil { // follows the link
			return false
		}
	}
	return true
}
