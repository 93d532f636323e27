package terraform

// Sensitive values: a config may hold values read from SecureString parameters (Workspace.
// Sensitive names them by JSON pointer). They never reach a file Karma writes in the workspace:
//
//   - config.json holds a placeholder at each of those places;
//   - main.tf declares one sensitive input variable per value (karma_sensitive_<i>, a string
//     holding the value's JSON) and passes the module the config with every placeholder replaced
//     by jsondecode(var.karma_sensitive_<i>), rebuilt with merge (objects) and concat/slice
//     (arrays) along the path, so that only those values are sensitive to Terraform and the rest
//     of the config keeps working in for_each, outputs, etc.;
//   - the values travel in a -var-file created 0600 in Root and removed after `terraform plan`.
//
// Terraform itself stores variable values in the saved plan (kept 0600, removed once applied)
// and whatever resources keep in the state: that is Terraform's business (encrypt the state's
// storage); Karma only keeps them out of its own files, logs and messages (redactor).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	secretname "github.com/usekarma/karma/shared/redact"
)

const (
	// sensitivePlaceholder stands in config.json where a sensitive value is.
	sensitivePlaceholder = "(sensitive: passed to terraform as a variable)"
	sensitiveVar         = "karma_sensitive_"
	varFilePattern       = ".karma-sensitive-*.tfvars.json"
	configLocal          = "karma_config"
)

// moduleConfig is a workspace's config split for Terraform: config.json's content, the HCL
// expression main.tf passes as the module's config, and the sensitive variables' values.
type moduleConfig struct {
	file   []byte
	expr   string
	values []string // karma_sensitive_<i>: the JSON of each sensitive value
}

// splitConfig checks ws.Config (one JSON object) and takes its sensitive values out.
func splitConfig(ws Workspace) (moduleConfig, error) {
	file, err := configJSON(ws.Config)
	if err != nil {
		return moduleConfig{}, err
	}
	plain := `jsondecode(file("${path.module}/` + configFile + `"))`
	if len(ws.Sensitive) == 0 {
		return moduleConfig{file: file, expr: plain}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(file))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return moduleConfig{}, err
	}
	tree := &overlay{leaf: -1}
	var values []string
	for _, ptr := range outermost(ws.Sensitive) {
		v, err := takeOut(root, ptr)
		if err != nil {
			return moduleConfig{}, fmt.Errorf("sensitive value at %q: %w", ptr, err)
		}
		tree.add(ptr, len(values))
		values = append(values, string(v))
	}
	if file, err = marshalNoEscape(root); err != nil {
		return moduleConfig{}, err
	}
	return moduleConfig{file: append(file, '\n'), expr: tree.hcl("local."+configLocal, root), values: values}, nil
}

// outermost sorts pointers, drops duplicates and those inside another one.
func outermost(ptrs []string) []string {
	sorted := slices.Clone(ptrs)
	sort.Strings(sorted)
	var out []string
	for _, p := range slices.Compact(sorted) {
		if n := len(out); n > 0 && strings.HasPrefix(p, out[n-1]+"/") {
			continue
		}
		out = append(out, p)
	}
	return out
}

// takeOut returns the JSON of the value at ptr in root and puts the placeholder in its place.
func takeOut(root any, ptr string) ([]byte, error) {
	segs, err := pointerSegments(ptr)
	if err != nil {
		return nil, err
	}
	cur := root
	for i, seg := range segs {
		last := i == len(segs)-1
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[seg]
			if !ok {
				return nil, fmt.Errorf("no key %q", seg)
			}
			if last {
				c[seg] = sensitivePlaceholder
				return marshalNoEscape(v)
			}
			cur = v
		case []any:
			n, err := strconv.Atoi(seg)
			if err != nil || n < 0 || n >= len(c) || strconv.Itoa(n) != seg {
				return nil, fmt.Errorf("%q is not an index into an array of %d", seg, len(c))
			}
			if last {
				v := c[n]
				c[n] = sensitivePlaceholder
				return marshalNoEscape(v)
			}
			cur = c[n]
		default:
			return nil, fmt.Errorf("cannot select %q in a scalar", seg)
		}
	}
	return nil, fmt.Errorf("the whole config cannot be sensitive")
}

// pointerSegments splits an RFC 6901 JSON pointer into its unescaped segments.
func pointerSegments(ptr string) ([]string, error) {
	if !strings.HasPrefix(ptr, "/") {
		return nil, fmt.Errorf("not a JSON pointer")
	}
	segs := strings.Split(ptr[1:], "/")
	for i, s := range segs {
		segs[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(s)
	}
	return segs, nil
}

// overlay is the tree of sensitive places: a leaf is variable number leaf; other nodes are
// objects or arrays whose children lead to leaves.
type overlay struct {
	leaf     int
	children map[string]*overlay
}

func (o *overlay) add(ptr string, index int) {
	segs, _ := pointerSegments(ptr) // checked by takeOut
	for _, s := range segs {
		if o.children == nil {
			o.children = map[string]*overlay{}
		}
		if o.children[s] == nil {
			o.children[s] = &overlay{leaf: -1}
		}
		o = o.children[s]
	}
	o.leaf = index
}

// hcl is the expression for base (the value v in config.json) with the sensitive leaves below it
// replaced by their variables.
func (o *overlay) hcl(base string, v any) string {
	if o.leaf >= 0 {
		return "jsondecode(var." + sensitiveVar + strconv.Itoa(o.leaf) + ")"
	}
	keys := make([]string, 0, len(o.children))
	for k := range o.children {
		keys = append(keys, k)
	}
	if arr, ok := v.([]any); ok {
		sort.Slice(keys, func(i, j int) bool { a, _ := strconv.Atoi(keys[i]); b, _ := strconv.Atoi(keys[j]); return a < b })
		var parts []string
		from := "0"
		for _, k := range keys {
			n, _ := strconv.Atoi(k)
			item := fmt.Sprintf("%s[%d]", base, n)
			parts = append(parts, fmt.Sprintf("slice(%s, %s, %d)", base, from, n), "["+o.children[k].hcl(item, arr[n])+"]")
			from = strconv.Itoa(n + 1)
		}
		parts = append(parts, fmt.Sprintf("slice(%s, %s, length(%s))", base, from, base))
		return "concat(" + strings.Join(parts, ", ") + ")"
	}
	obj, _ := v.(map[string]any)
	sort.Strings(keys)
	var attrs []string
	for _, k := range keys {
		item := base + "[" + hclString(k) + "]"
		attrs = append(attrs, hclString(k)+" = "+o.children[k].hcl(item, obj[k]))
	}
	return "merge(" + base + ", { " + strings.Join(attrs, ", ") + " })"
}

// writeVarFile writes the sensitive variables to a new 0600 -var-file in dir (after removing
// any left by a run that was killed) and returns its path and how to remove it.
func writeVarFile(dir string, values []string) (string, func(), error) {
	stale, _ := filepath.Glob(filepath.Join(dir, varFilePattern))
	for _, f := range stale {
		_ = os.Remove(f)
	}
	vars := make(map[string]string, len(values))
	for i, v := range values {
		vars[sensitiveVar+strconv.Itoa(i)] = v
	}
	data, err := json.Marshal(vars)
	if err != nil {
		return "", nil, err
	}
	f, err := os.CreateTemp(dir, varFilePattern) // 0600
	if err != nil {
		return "", nil, err
	}
	remove := func() { _ = os.Remove(f.Name()) }
	if _, err := f.Write(data); err != nil {
		f.Close()
		remove()
		return "", nil, err
	}
	if err := f.Close(); err != nil {
		remove()
		return "", nil, err
	}
	return f.Name(), remove, nil
}

// redactor scrubs a workspace's sensitive values from text (Terraform's log, its errors): those
// taken from SecureString parameters (secrets), and those written in the config under keys
// named like secrets (named; shared/redact's SecretKey, the rule the API redacts by): Terraform
// quotes a config's values in its errors (`local.config.master_password is "…"`), and what is
// kept of them is shown and recorded. Values shorter than 4 bytes are left: they would match
// everywhere, and Terraform itself prints sensitive variables as "(sensitive value)". The text
// left is then scrubbed of what shared/redact finds in any text (redact.Text): the password of a
// URL and the value of a secret-named NAME=value pair that the workspace does not know of — a
// provider's error quoting a connection string, a plan line `+ connection = "…;Password=…"`.
type redactor struct{ secrets, named []string }

func newRedactor(ws Workspace) redactor {
	var r redactor
	r.named = secretNamedValues(ws.Config)
	mc, err := splitConfig(ws)
	if err != nil {
		return r
	}
	for _, v := range mc.values {
		forms := []string{v}
		var s string
		if json.Unmarshal([]byte(v), &s) == nil {
			forms = append(forms, s, strings.Trim(v, `"`))
		}
		for _, f := range forms {
			if len(f) >= 4 {
				r.secrets = append(r.secrets, f)
			}
		}
	}
	sort.Slice(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) }) // longest first
	return r
}

// SensitiveOutputs lists, sorted, the outputs that hold one of ws's sensitive values (taken from
// a SecureString parameter; of 4 bytes or more, as the redactor matches them) in their JSON or
// in a string, or key, inside it: a module passing a secret it was given on to an output, which
// the component's runtime — a String parameter — must not publish.
func SensitiveOutputs(ws Workspace, out Outputs) []string {
	r := newRedactor(ws)
	if len(r.secrets) == 0 {
		return nil
	}
	var keys []string
	for k, v := range out {
		if r.holds(v) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// holds reports whether JSON value v holds one of r's secrets.
func (r redactor) holds(v json.RawMessage) bool {
	texts := []string{string(v)}
	var walk func(x any)
	walk = func(x any) {
		switch x := x.(type) {
		case string:
			texts = append(texts, x)
		case map[string]any:
			for k, e := range x {
				texts = append(texts, k)
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	var x any
	if json.Unmarshal(v, &x) == nil {
		walk(x)
	}
	for _, t := range texts {
		for _, secret := range r.secrets {
			if strings.Contains(t, secret) {
				return true
			}
		}
	}
	return false
}

func (r redactor) apply(s string) string {
	for _, secret := range r.secrets {
		s = strings.ReplaceAll(s, secret, SensitiveValue)
	}
	for _, v := range r.named {
		s = strings.ReplaceAll(s, v, SensitiveValue)
	}
	s, _ = secretname.Text(s) // a URL's password, PASSWORD=… that the config does not hold (a provider's, another component's)
	return s
}

// secretNamedValues lists, longest first, the values (strings and numbers as written, of 4
// bytes or more) a config holds that shared/redact's rule hides (redact.Secrets): under
// secret-named keys, in name/value entries with a secret-named name, inside JSON held in
// strings, the passwords of URLs and secret-named NAME=value pairs in its strings. They are
// scrubbed from what is kept of Terraform's output; they are not SecureStrings' (holds leaves
// them out).
func secretNamedValues(cfg json.RawMessage) []string {
	dec := json.NewDecoder(bytes.NewReader(cfg))
	dec.UseNumber()
	var root any
	if dec.Decode(&root) != nil {
		return nil
	}
	var out []string
	for _, s := range secretname.Secrets(root) {
		if len(s) >= 4 {
			out = append(out, s)
		}
	}
	return out
}

// marshalNoEscape is json.Marshal without HTML escaping and without a trailing newline.
func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
