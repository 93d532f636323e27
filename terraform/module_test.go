// Package terraform holds the tests of the Terraform root module in this folder (there is no
// Go code to deploy here): routing_test.go proves that the routing it deploys agrees with
// pipeline.Routes and that the functions' environment is what cmd/lambda reads;
// validate_test.go runs terraform itself (validate, and a broken copy that must fail).
package terraform

// module_test.go: a small evaluator of this folder's configuration with the HCL library
// Terraform is built on, so the routing test needs no terraform binary and no provider. It
// evaluates exactly what Terraform would at plan time for the expressions the tests read
// (locals, variables, for_each/count, resource arguments), with each resource or data source
// attribute standing in as a symbolic string naming it, e.g. `aws_sqs_queue.stage["plan"].arn`:
// those are only known after apply, and the tests follow such a name back to the resource it
// names. Where terraform is installed, validate_test.go compares what this evaluator computes
// with `terraform console`.

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// module is the configuration of one folder of .tf files.
type module struct {
	dir       string
	vars      map[string]cty.Value
	locals    map[string]hcl.Expression
	blocks    map[string]*hclsyntax.Block // "aws_sqs_queue.stage", "data.aws_subnet.selected"
	attrNames []string                    // every attribute name any traversal in the module uses
	// validations: the condition of each validation block, by variable name.
	validations map[string][]hcl.Expression
	funcs       map[string]function.Function

	localVals map[string]cty.Value
	resVals   map[string]cty.Value
	busy      map[string]bool
}

// instance is one instance of a resource or data block: its for_each key or count index.
type instance struct {
	addr  string // aws_sqs_queue.stage["plan"], aws_apigatewayv2_api.webhooks[0], aws_cloudwatch_event_bus.karma
	key   string // the for_each key or count index; "" for a single instance
	block *hclsyntax.Block
	scope map[string]cty.Value // "each" or "count"
}

// loadModule parses every .tf file of dir. vars are the values of input variables (as -var
// would give them); a variable without a default must be among them.
func loadModule(dir string, vars map[string]cty.Value) (*module, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no .tf files in %s", dir)
	}
	m := &module{dir: dir, vars: map[string]cty.Value{}, locals: map[string]hcl.Expression{}, blocks: map[string]*hclsyntax.Block{},
		localVals: map[string]cty.Value{}, resVals: map[string]cty.Value{}, busy: map[string]bool{}, funcs: functions(),
		validations: map[string][]hcl.Expression{}}
	names := map[string]bool{}
	var missing []string
	declared := map[string]bool{}
	for _, p := range paths {
		f, err := parseHCLFile(p)
		if err != nil {
			return nil, err
		}
		body := f.Body.(*hclsyntax.Body)
		for _, n := range f.attrNames {
			names[n] = true
		}
		for _, b := range body.Blocks {
			switch b.Type {
			case "variable":
				name := b.Labels[0]
				declared[name] = true
				for _, vb := range b.Body.Blocks {
					if c := vb.Body.Attributes["condition"]; vb.Type == "validation" && c != nil {
						m.validations[name] = append(m.validations[name], c.Expr)
					}
				}
				if v, ok := vars[name]; ok {
					m.vars[name] = v
				} else if d, ok := b.Body.Attributes["default"]; ok {
					v, diags := d.Expr.Value(nil)
					if diags.HasErrors() {
						return nil, diags
					}
					m.vars[name] = v
				} else {
					missing = append(missing, name)
				}
			case "locals":
				for name, a := range b.Body.Attributes {
					if _, dup := m.locals[name]; dup {
						return nil, fmt.Errorf("local.%s is defined twice", name)
					}
					m.locals[name] = a.Expr
				}
			case "resource":
				m.blocks[b.Labels[0]+"."+b.Labels[1]] = b
			case "data":
				m.blocks["data."+b.Labels[0]+"."+b.Labels[1]] = b
			}
		}
	}
	for name := range vars {
		if !declared[name] {
			return nil, fmt.Errorf("no variable %q in %s", name, dir)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("variables without a default need a value: %s", strings.Join(missing, ", "))
	}
	for n := range names {
		m.attrNames = append(m.attrNames, n)
	}
	slices.Sort(m.attrNames)
	return m, nil
}

// parsedFile is a parsed .tf file and the attribute names its traversals use.
type parsedFile struct {
	*hcl.File
	attrNames []string
}

var parsed = struct {
	sync.Mutex
	files map[string]*parsedFile // by file name and content
}{files: map[string]*parsedFile{}}

// parseHCLFile parses the .tf file at path, once for each name and content (the tests load
// the same folder, and copies of it, many times; evaluation does not change a parsed file). A
// copy's unchanged file is the original's: its diagnostics name the original's path.
func parseHCLFile(path string) (*parsedFile, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key := filepath.Base(path) + "\x00" + string(src)
	parsed.Lock()
	defer parsed.Unlock()
	if f, ok := parsed.files[key]; ok {
		return f, nil
	}
	hf, diags := hclparse.NewParser().ParseHCL(src, path)
	if diags.HasErrors() {
		return nil, diags
	}
	f := &parsedFile{File: hf}
	names := map[string]bool{}
	body := hf.Body.(*hclsyntax.Body)
	hclsyntax.VisitAll(body, func(n hclsyntax.Node) hcl.Diagnostics {
		var tr hcl.Traversal
		switch e := n.(type) {
		case *hclsyntax.ScopeTraversalExpr:
			tr = e.Traversal
		case *hclsyntax.RelativeTraversalExpr:
			tr = e.Traversal
		}
		for _, step := range tr {
			if a, ok := step.(hcl.TraverseAttr); ok {
				names[a.Name] = true
			}
		}
		return nil
	})
	for n := range names {
		f.attrNames = append(f.attrNames, n)
	}
	parsed.files[key] = f
	return f, nil
}

// eval evaluates expr, inside inst (for each.* and count.*) when it is not nil.
func (m *module) eval(expr hcl.Expression, inst *instance) (cty.Value, error) {
	ctx, err := m.context(expr, inst)
	if err != nil {
		return cty.NilVal, err
	}
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	return v, nil
}

func attrStep(tr hcl.Traversal, i int) (string, error) {
	if len(tr) > i {
		if a, ok := tr[i].(hcl.TraverseAttr); ok {
			return a.Name, nil
		}
	}
	return "", fmt.Errorf("%s: cannot read this reference", tr.SourceRange())
}

// context builds the evaluation context of expr: exactly the references it makes.
func (m *module) context(expr hcl.Expression, inst *instance) (*hcl.EvalContext, error) {
	vars := map[string]cty.Value{}
	locals := map[string]cty.Value{}
	res := map[string]map[string]cty.Value{}  // type -> name -> value
	data := map[string]map[string]cty.Value{} // type -> name -> value
	for _, tr := range expr.Variables() {
		root := tr.RootName()
		switch root {
		case "var":
			vars["var"] = cty.ObjectVal(m.vars)
		case "path":
			d := cty.StringVal(m.dir)
			vars["path"] = cty.ObjectVal(map[string]cty.Value{"module": d, "root": d, "cwd": d})
		case "terraform":
			vars["terraform"] = cty.ObjectVal(map[string]cty.Value{"workspace": cty.StringVal("default")})
		case "each", "count":
			if inst == nil || inst.scope[root] == cty.NilVal {
				return nil, fmt.Errorf("%s: %s outside a block with for_each or count", tr.SourceRange(), root)
			}
			vars[root] = inst.scope[root]
		case "local":
			name, err := attrStep(tr, 1)
			if err != nil {
				return nil, err
			}
			v, err := m.local(name)
			if err != nil {
				return nil, err
			}
			locals[name] = v
		case "data":
			typ, err := attrStep(tr, 1)
			if err != nil {
				return nil, err
			}
			name, err := attrStep(tr, 2)
			if err != nil {
				return nil, err
			}
			v, err := m.resource("data." + typ + "." + name)
			if err != nil {
				return nil, err
			}
			if data[typ] == nil {
				data[typ] = map[string]cty.Value{}
			}
			data[typ][name] = v
		default:
			name, err := attrStep(tr, 1)
			if err != nil {
				return nil, err
			}
			v, err := m.resource(root + "." + name)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", tr.SourceRange(), err)
			}
			if res[root] == nil {
				res[root] = map[string]cty.Value{}
			}
			res[root][name] = v
		}
	}
	if len(locals) > 0 {
		vars["local"] = cty.ObjectVal(locals)
	}
	if len(data) > 0 {
		d := map[string]cty.Value{}
		for typ, byName := range data {
			d[typ] = cty.ObjectVal(byName)
		}
		vars["data"] = cty.ObjectVal(d)
	}
	for typ, byName := range res {
		vars[typ] = cty.ObjectVal(byName)
	}
	return &hcl.EvalContext{Variables: vars, Functions: m.funcs}, nil
}

func (m *module) local(name string) (cty.Value, error) {
	if v, ok := m.localVals[name]; ok {
		return v, nil
	}
	expr, ok := m.locals[name]
	if !ok {
		return cty.NilVal, fmt.Errorf("no local.%s", name)
	}
	if m.busy["local."+name] {
		return cty.NilVal, fmt.Errorf("local.%s refers to itself", name)
	}
	m.busy["local."+name] = true
	defer delete(m.busy, "local."+name)
	v, err := m.eval(expr, nil)
	if err != nil {
		return cty.NilVal, fmt.Errorf("local.%s: %w", name, err)
	}
	m.localVals[name] = v
	return v, nil
}

// resource is the value a reference to the block key ("type.name" or "data.type.name") has
// at plan time: per instance (an object by for_each key, a tuple by count index, or one
// object) an object whose every attribute is the symbolic string naming it.
func (m *module) resource(key string) (cty.Value, error) {
	if v, ok := m.resVals[key]; ok {
		return v, nil
	}
	if _, ok := m.blocks[key]; !ok {
		return cty.NilVal, fmt.Errorf("no %s in the configuration", key)
	}
	if m.busy[key] {
		return cty.NilVal, fmt.Errorf("%s refers to itself", key)
	}
	m.busy[key] = true
	defer delete(m.busy, key)
	insts, known, err := m.instancesOf(key)
	if err != nil {
		return cty.NilVal, err
	}
	var v cty.Value
	b := m.blocks[key]
	switch {
	case !known:
		v = cty.DynamicVal
	case b.Body.Attributes["for_each"] != nil:
		byKey := map[string]cty.Value{}
		for _, in := range insts {
			byKey[in.key] = m.standIn(in.addr)
		}
		v = cty.ObjectVal(byKey)
	case b.Body.Attributes["count"] != nil:
		vals := make([]cty.Value, len(insts))
		for i, in := range insts {
			vals[i] = m.standIn(in.addr)
		}
		v = cty.TupleVal(vals)
	default:
		v = m.standIn(key)
	}
	m.resVals[key] = v
	return v, nil
}

func (m *module) standIn(addr string) cty.Value {
	attrs := map[string]cty.Value{}
	for _, a := range m.attrNames {
		attrs[a] = cty.StringVal(addr + "." + a)
	}
	return cty.ObjectVal(attrs)
}

// instances returns the instances of the block key; an unknown for_each or count is an error.
func (m *module) instances(key string) ([]instance, error) {
	insts, known, err := m.instancesOf(key)
	if err == nil && !known {
		err = fmt.Errorf("%s: for_each or count is only known after apply", key)
	}
	return insts, err
}

func (m *module) instancesOf(key string) (insts []instance, known bool, err error) {
	b, ok := m.blocks[key]
	if !ok {
		return nil, false, fmt.Errorf("no %s in the configuration", key)
	}
	if fe := b.Body.Attributes["for_each"]; fe != nil {
		v, err := m.eval(fe.Expr, nil)
		if err != nil {
			return nil, false, fmt.Errorf("%s for_each: %w", key, err)
		}
		if !v.IsWhollyKnown() {
			return nil, false, nil
		}
		if v.IsNull() {
			return nil, false, fmt.Errorf("%s: for_each is null", key)
		}
		ty := v.Type()
		for it := v.ElementIterator(); it.Next(); {
			k, ev := it.Element()
			if ty.IsSetType() {
				k = ev
			}
			if k.Type() != cty.String {
				return nil, false, fmt.Errorf("%s: for_each wants a map or a set of strings, not %s", key, ty.FriendlyName())
			}
			ks := k.AsString()
			insts = append(insts, instance{addr: key + "[" + strconv.Quote(ks) + "]", key: ks, block: b,
				scope: map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{"key": k, "value": ev})}})
		}
		return insts, true, nil
	}
	if c := b.Body.Attributes["count"]; c != nil {
		v, err := m.eval(c.Expr, nil)
		if err != nil {
			return nil, false, fmt.Errorf("%s count: %w", key, err)
		}
		if !v.IsWhollyKnown() {
			return nil, false, nil
		}
		n, _ := v.AsBigFloat().Int64()
		for i := range n {
			insts = append(insts, instance{addr: fmt.Sprintf("%s[%d]", key, i), key: strconv.FormatInt(i, 10), block: b,
				scope: map[string]cty.Value{"count": cty.ObjectVal(map[string]cty.Value{"index": cty.NumberIntVal(i)})}})
		}
		return insts, true, nil
	}
	return []instance{{addr: key, block: b}}, true, nil
}

// arg evaluates an argument of inst; path names nested blocks down to the argument, e.g.
// "environment", "variables". ok is false when the argument is not set.
func (m *module) arg(inst instance, path ...string) (v cty.Value, ok bool, err error) {
	body := inst.block.Body
	for _, typ := range path[:len(path)-1] {
		var next *hclsyntax.Body
		for _, b := range body.Blocks {
			if b.Type == typ {
				next = b.Body
				break
			}
		}
		if next == nil {
			return cty.NilVal, false, nil
		}
		body = next
	}
	a := body.Attributes[path[len(path)-1]]
	if a == nil {
		return cty.NilVal, false, nil
	}
	v, err = m.eval(a.Expr, &inst)
	if err != nil {
		return cty.NilVal, false, fmt.Errorf("%s.%s: %w", inst.addr, strings.Join(path, "."), err)
	}
	return v, true, nil
}

// blocksOf returns the keys of every resource block of type typ, sorted.
func (m *module) blocksOf(typ string) []string {
	var keys []string
	for k := range m.blocks {
		if strings.HasPrefix(k, typ+".") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// allInstances returns the instances of every resource block of type typ.
func (m *module) allInstances(typ string) ([]instance, error) {
	var out []instance
	for _, k := range m.blocksOf(typ) {
		insts, err := m.instances(k)
		if err != nil {
			return nil, err
		}
		out = append(out, insts...)
	}
	return out, nil
}

var refRE = regexp.MustCompile(`^((?:data\.)?[a-z0-9_]+\.[a-z0-9_]+)(\[(?:"[^"]*"|[0-9]+)\])?\.([a-z0-9_]+)$`)

// ref follows a symbolic attribute value back to the instance it names and the attribute.
func (m *module) ref(v cty.Value) (inst instance, attr string, ok bool) {
	if !v.IsKnown() || v.IsNull() || v.Type() != cty.String {
		return instance{}, "", false
	}
	sub := refRE.FindStringSubmatch(v.AsString())
	if sub == nil {
		return instance{}, "", false
	}
	insts, err := m.instances(sub[1])
	if err != nil {
		return instance{}, "", false
	}
	for _, in := range insts {
		if in.addr == sub[1]+sub[2] {
			return in, sub[3], true
		}
	}
	return instance{}, "", false
}

// str returns a known string, or an error naming what it is.
func str(v cty.Value, what string) (string, error) {
	if !v.IsWhollyKnown() || v.IsNull() || v.Type() != cty.String {
		return "", fmt.Errorf("%s: want a known string, got %#v", what, v)
	}
	return v.AsString(), nil
}

// functions are the Terraform functions this configuration calls, from the same cty library
// Terraform's own are built on.
func functions() map[string]function.Function {
	identity := function.New(&function.Spec{
		Params: []function.Parameter{{Name: "value", Type: cty.DynamicPseudoType, AllowNull: true, AllowUnknown: true, AllowDynamicType: true, AllowMarked: true}},
		Type:   func(args []cty.Value) (cty.Type, error) { return args[0].Type(), nil },
		Impl:   func(args []cty.Value, _ cty.Type) (cty.Value, error) { return args[0], nil },
	})
	one := function.New(&function.Spec{
		Params: []function.Parameter{{Name: "list", Type: cty.DynamicPseudoType, AllowNull: true, AllowUnknown: true, AllowDynamicType: true}},
		Type: func(args []cty.Value) (cty.Type, error) {
			ty := args[0].Type()
			switch {
			case ty.IsListType() || ty.IsSetType():
				return ty.ElementType(), nil
			case ty.IsTupleType() && len(ty.TupleElementTypes()) == 1:
				return ty.TupleElementTypes()[0], nil
			}
			return cty.DynamicPseudoType, nil
		},
		Impl: func(args []cty.Value, ret cty.Type) (cty.Value, error) {
			v := args[0]
			if !v.IsKnown() {
				return cty.UnknownVal(ret), nil
			}
			switch n := v.LengthInt(); n {
			case 0:
				return cty.NullVal(ret), nil
			case 1:
				it := v.ElementIterator()
				it.Next()
				_, e := it.Element()
				return e, nil
			default:
				return cty.NilVal, fmt.Errorf("one: %d elements", n)
			}
		},
	})
	unknownString := function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl:   func([]cty.Value, cty.Type) (cty.Value, error) { return cty.UnknownVal(cty.String), nil },
	})
	// Terraform's length takes a string too (its length in characters), cty's a collection only.
	length := function.New(&function.Spec{
		Params: []function.Parameter{{Name: "value", Type: cty.DynamicPseudoType, AllowDynamicType: true, AllowUnknown: true}},
		Type:   function.StaticReturnType(cty.Number),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if args[0].Type() == cty.String {
				return stdlib.Strlen(args[0])
			}
			return stdlib.Length(args[0])
		},
	})
	// Terraform's base64encode: the UTF-8 bytes of a string, in standard base64.
	base64encode := function.New(&function.Spec{
		Params: []function.Parameter{{Name: "str", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return cty.StringVal(base64.StdEncoding.EncodeToString([]byte(args[0].AsString()))), nil
		},
	})
	return map[string]function.Function{
		"base64encode": base64encode,
		"can":          tryfunc.CanFunc, "ceil": stdlib.CeilFunc, "try": tryfunc.TryFunc,
		"coalesce": stdlib.CoalesceFunc, "concat": stdlib.ConcatFunc, "contains": stdlib.ContainsFunc,
		"element": stdlib.ElementFunc, "flatten": stdlib.FlattenFunc, "format": stdlib.FormatFunc, "join": stdlib.JoinFunc,
		"jsondecode": stdlib.JSONDecodeFunc, "jsonencode": stdlib.JSONEncodeFunc, "keys": stdlib.KeysFunc,
		"length": length, "lookup": stdlib.LookupFunc, "lower": stdlib.LowerFunc, "max": stdlib.MaxFunc, "merge": stdlib.MergeFunc, "min": stdlib.MinFunc,
		"regex": stdlib.RegexFunc, "regexall": stdlib.RegexAllFunc, "replace": stdlib.ReplaceFunc, "sort": stdlib.SortFunc, "split": stdlib.SplitFunc, "upper": stdlib.UpperFunc,
		"values": stdlib.ValuesFunc,
		"tobool": stdlib.MakeToFunc(cty.Bool), "tonumber": stdlib.MakeToFunc(cty.Number), "tostring": stdlib.MakeToFunc(cty.String),
		"tolist": stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)), "toset": stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"tomap":     stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
		"sensitive": identity, "nonsensitive": identity, "one": one,
		// The Lambda zip is built by `make lambda`; its hash is not needed here.
		"filebase64sha256": unknownString,
	}
}

// moduleDir is this folder.
func moduleDir() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return wd
}
