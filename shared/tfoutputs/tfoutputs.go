// Package tfoutputs reads a component's Terraform module as source, without running Terraform,
// to tell which parts of its `config` variable each output is derived from — so that the
// runtime keys a proposed config change will change can be predicted before anything is
// planned (the blast radius of a proposal, docs/web.md).
//
// Algorithm: every *.tf file of the module's folder is parsed (hclsyntax). An output's value
// is followed through the references it makes, transitively and with a guard against cycles:
//
//   - var.config.a["b"][0] is the JSON pointer /a/b/0 of the config (var.config alone: "", all
//     of it); other variables (component_name, nickname, iac_prefix) never change with a config
//     change and count for nothing;
//   - local.x is what local x's expression refers to;
//   - terraform_data.r.output.k is what the `k` item of r's `input` object refers to (Terraform
//     copies input to output unchanged); terraform_data.r.output is all of input;
//   - any other resource, data source or module call counts with every argument of its block
//     (a provider may derive any attribute from any argument), and with every argument of the
//     module's provider blocks (a provider configured from the config — its region, say —
//     shapes what every resource reports: ARNs, URLs), except Terraform's built-in
//     terraform_data and terraform_remote_state;
//   - count, each, path, self and terraform count for nothing.
//
// A reference the module does not define, or a file that does not parse, makes the output
// Unknown: it may change with any change of the config. The answer is conservative: an
// output said to be unchanged by a config change is not derived from what changed, as far as
// the module's source says.
package tfoutputs

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Output is one output of a module and what of the config it is derived from.
type Output struct {
	Name string `json:"name"`
	// Config are JSON pointers into the config variable ("" = the whole config), sorted.
	Config []string `json:"config"`
	// Unknown says why the source cannot tell what the output derives from ("" = it can).
	Unknown string `json:"unknown,omitempty"`
}

// ChangedBy reports whether a change of the config at the changed pointers may change the
// output, and the pointers (of Config) that make it so.
func (o Output) ChangedBy(changed []string) (bool, []string) {
	if o.Unknown != "" {
		return true, nil
	}
	var why []string
	for _, p := range o.Config {
		for _, c := range changed {
			if overlaps(p, c) {
				why = append(why, c)
			}
		}
	}
	slices.Sort(why)
	why = slices.Compact(why)
	return len(why) > 0, why
}

// overlaps reports whether one pointer is the other or inside it.
func overlaps(a, b string) bool {
	return a == b || strings.HasPrefix(b, a+"/") || strings.HasPrefix(a, b+"/") || a == "" || b == ""
}

// Read analyses the module in folder dir of fsys: its outputs by name. A folder without *.tf
// files is an error, and so is one with files Terraform reads that this does not (*.tf.json,
// override files).
func Read(fsys fs.FS, dir string) (map[string]Output, error) {
	m := &module{locals: map[string]hcl.Expression{}, blocks: map[string]*hclsyntax.Body{}, outputs: map[string]hcl.Expression{}}
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	files := 0
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		if name := e.Name(); strings.HasSuffix(name, ".tf.json") || isOverride(name) {
			// Terraform reads these too: outputs defined in JSON, or replaced by an override
			// file, would be missed or misread, and the answer would not be conservative.
			return nil, fmt.Errorf("tfoutputs: %s: %s is JSON or an override file, which this analysis does not read", dir, name)
		}
		if !strings.HasSuffix(e.Name(), ".tf") {
			continue
		}
		files++
		src, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		f, diags := hclsyntax.ParseConfig(src, e.Name(), hcl.InitialPos)
		if diags.HasErrors() {
			m.broken = append(m.broken, diags.Error())
			continue
		}
		m.add(f.Body.(*hclsyntax.Body))
	}
	if files == 0 {
		return nil, fmt.Errorf("tfoutputs: %s: no *.tf files", dir)
	}
	out := make(map[string]Output, len(m.outputs))
	for name, expr := range m.outputs {
		d := &deps{pointers: map[string]bool{}}
		m.expr(expr, d, map[string]bool{})
		o := Output{Name: name, Config: sortedKeys(d.pointers), Unknown: strings.Join(d.unknown, "; ")}
		if len(m.broken) > 0 {
			o.Unknown = strings.Join(append(m.broken, d.unknown...), "; ")
		}
		out[name] = o
	}
	return out, nil
}

// isOverride reports whether Terraform merges file name over the module's other files
// (override.tf, <name>_override.tf).
func isOverride(name string) bool {
	base := strings.TrimSuffix(name, ".tf")
	return base != name && (base == "override" || strings.HasSuffix(base, "_override"))
}

// module is what the analysis needs of a module's files.
type module struct {
	locals  map[string]hcl.Expression
	blocks  map[string]*hclsyntax.Body // "<type>.<name>", "data.<type>.<name>", "module.<name>"
	outputs map[string]hcl.Expression
	// providers are the module's provider blocks: their arguments count for every resource,
	// data source and module call but Terraform's built-in ones (builtin).
	providers []*hclsyntax.Body
	broken    []string // files that do not parse
}

// builtin reports whether block name ("<type>.<name>", "data.<type>.<name>") belongs to
// Terraform's built-in provider, which no provider block configures.
func builtin(name string) bool {
	return strings.HasPrefix(name, "terraform_data.") || strings.HasPrefix(name, "data.terraform_remote_state.")
}

func (m *module) add(body *hclsyntax.Body) {
	for _, b := range body.Blocks {
		switch {
		case b.Type == "locals":
			for name, a := range b.Body.Attributes {
				m.locals[name] = a.Expr
			}
		case b.Type == "output" && len(b.Labels) == 1:
			if a, ok := b.Body.Attributes["value"]; ok {
				m.outputs[b.Labels[0]] = a.Expr
			}
		case b.Type == "resource" && len(b.Labels) == 2:
			m.blocks[b.Labels[0]+"."+b.Labels[1]] = b.Body
		case b.Type == "data" && len(b.Labels) == 2:
			m.blocks["data."+b.Labels[0]+"."+b.Labels[1]] = b.Body
		case b.Type == "module" && len(b.Labels) == 1:
			m.blocks["module."+b.Labels[0]] = b.Body
		case b.Type == "provider":
			m.providers = append(m.providers, b.Body)
		}
	}
}

// deps collects what an expression derives from.
type deps struct {
	pointers map[string]bool
	unknown  []string
}

// expr adds what e refers to; seen guards against cycles (named by "local.x", "<block>").
func (m *module) expr(e hcl.Expression, d *deps, seen map[string]bool) {
	for _, t := range e.Variables() {
		m.traversal(t, d, seen)
	}
}

func (m *module) traversal(t hcl.Traversal, d *deps, seen map[string]bool) {
	root := t.RootName()
	attr := func(i int) string {
		if i < len(t) {
			if a, ok := t[i].(hcl.TraverseAttr); ok {
				return a.Name
			}
		}
		return ""
	}
	switch root {
	case "var":
		if attr(1) == "config" {
			d.pointers[pointer(t[2:])] = true
		}
	case "local":
		name := attr(1)
		e, ok := m.locals[name]
		switch {
		case !ok:
			d.unknown = append(d.unknown, "local."+name+" is not defined")
		case !seen["local."+name]:
			seen["local."+name] = true
			m.expr(e, d, seen)
		}
	case "count", "each", "path", "self", "terraform":
	case "data":
		m.block("data."+attr(1)+"."+attr(2), "", d, seen)
	case "module":
		m.block("module."+attr(1), "", d, seen)
	default:
		key := ""
		if root == "terraform_data" && attr(2) == "output" {
			key = attr(3)
			if key == "" {
				key = "*"
			}
		}
		m.block(root+"."+attr(1), key, d, seen)
	}
}

// block adds what a block's arguments refer to: of terraform_data, only its input (the item
// key of it when key is not "*"); of anything else, every argument.
func (m *module) block(name, key string, d *deps, seen map[string]bool) {
	b, ok := m.blocks[name]
	if !ok {
		d.unknown = append(d.unknown, name+" is not defined in the module")
		return
	}
	if key != "" {
		if in, ok := b.Attributes["input"]; ok {
			if obj, ok := in.Expr.(*hclsyntax.ObjectConsExpr); ok && key != "*" {
				for _, item := range obj.Items {
					if keyOf(item.KeyExpr) == key {
						m.expr(item.ValueExpr, d, seen)
						return
					}
				}
				d.unknown = append(d.unknown, name+".output."+key+" is not in its input")
				return
			}
			m.expr(in.Expr, d, seen)
			return
		}
	}
	id := name + "#" + key
	if seen[id] {
		return
	}
	seen[id] = true
	m.body(b, d, seen)
	if !builtin(name) && !seen["provider"] {
		seen["provider"] = true
		for _, p := range m.providers {
			m.body(p, d, seen)
		}
	}
}

func (m *module) body(b *hclsyntax.Body, d *deps, seen map[string]bool) {
	for _, a := range b.Attributes {
		m.expr(a.Expr, d, seen)
	}
	for _, nested := range b.Blocks {
		m.body(nested.Body, d, seen)
	}
}

// keyOf is an object constructor item's key: a bare name or a literal string.
func keyOf(e hclsyntax.Expression) string {
	if k := hcl.ExprAsKeyword(e); k != "" {
		return k
	}
	v, diags := e.Value(nil)
	if diags.HasErrors() || !v.IsKnown() || v.Type() != cty.String {
		return ""
	}
	return v.AsString()
}

// pointer turns var.config's traversal steps into a JSON pointer, stopping at the first step
// that is not a name or a literal index.
func pointer(steps hcl.Traversal) string {
	var b strings.Builder
	for _, s := range steps {
		var tok string
		switch s := s.(type) {
		case hcl.TraverseAttr:
			tok = s.Name
		case hcl.TraverseIndex:
			switch {
			case s.Key.Type() == cty.String:
				tok = s.Key.AsString()
			case s.Key.Type() == cty.Number:
				f, _ := s.Key.AsBigFloat().Int64()
				tok = strconv.FormatInt(f, 10)
			default:
				return b.String()
			}
		default:
			return b.String()
		}
		b.WriteString("/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(tok))
	}
	return b.String()
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
