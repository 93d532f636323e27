package terraform

// lambdacode_test.go: what the Lambda binary reads from its environment, read from its source
// (go/ast), so that env_test.go follows the code rather than a list kept by hand.
//
//   - reads: every variable shared/config.Load reads (cmd/lambda hands it the whole
//     environment), every KARMA_* string literal passed to a call in cmd/lambda (getenv(…)), and
//     the variables read outside both (externalReads);
//   - uses(stage): what the code path of one KARMA_STAGE reads. Starting at cmd/lambda's main,
//     it follows calls into cmd/lambda's functions and shared/app's (App methods, through the
//     *app.App they are given), and records the KARMA_* literals they pass and the fields of
//     config.Config they read (a.Config.EventBus -> KARMA_EVENT_BUS; a method of Config counts
//     the fields it reads). It takes only the branch of the stage at hand where the code
//     dispatches on a stage constant (switch or if on a stage, a map keyed by stages) and stops
//     after a branch that returns.

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/usekarma/karma/shared/config"
)

var karmaVarRE = regexp.MustCompile(`^KARMA_[A-Z0-9_]+$`)

// externalReads: functions of other packages the walk reaches that read a variable themselves
// (env_test.go checks the package really reads it).
var externalReads = map[string]struct{ name, pkg string }{
	"terraform.FindTerraform": {"KARMA_TERRAFORM", "shared/terraform"},
}

// funcInfo is one function or method of the code walked.
type funcInfo struct {
	decl *ast.FuncDecl
	pkg  string          // "lambda", "app" or "config"
	apps map[string]bool // identifiers holding the *app.App (receiver or parameter)
	cfgs map[string]bool // identifiers holding a config.Config (a Config method's receiver)
}

// lambdaCode is what the test knows about the Lambda binary.
type lambdaCode struct {
	root   string
	fset   *token.FileSet
	funcs  map[string]*funcInfo // "lambda.setup", "App.Stage", "app.once", "Config.Work"
	stages map[string]string    // stage constant ("pipeline.StagePlan", "stageWebhook") -> value
	fields map[string][]string  // config.Config field path ("Git.URL") -> the variables setting it
	reads  map[string]string    // variable -> where the binary reads it
}

// parseDir parses the non-test Go files of dir.
func parseDir(fset *token.FileSet, dir string) ([]*ast.File, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	var files []*ast.File
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no Go files in %s", dir)
	}
	return files, nil
}

// stringConsts returns the string constants of files whose value is a literal or one of known
// (a selector pkg.Name), named qualifier+name.
func stringConsts(files []*ast.File, qualifier string, known map[string]string) map[string]string {
	out := map[string]string{}
	for _, f := range files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					switch v := vs.Values[i].(type) {
					case *ast.BasicLit:
						if v.Kind == token.STRING {
							out[qualifier+name.Name], _ = strconv.Unquote(v.Value)
						}
					case *ast.SelectorExpr:
						if x, ok := v.X.(*ast.Ident); ok {
							if val, ok := known[x.Name+"."+v.Sel.Name]; ok {
								out[qualifier+name.Name] = val
							}
						}
					}
				}
			}
		}
	}
	return out
}

// readLambdaCode reads cmd/lambda, shared/app, shared/config and shared/pipeline below root.
func readLambdaCode(root string) (*lambdaCode, error) {
	c := &lambdaCode{root: root, fset: token.NewFileSet(), funcs: map[string]*funcInfo{}, stages: map[string]string{}, reads: map[string]string{}}
	pipe, err := parseDir(c.fset, filepath.Join(root, "shared", "pipeline"))
	if err != nil {
		return nil, err
	}
	for name, v := range stringConsts(pipe, "pipeline.", nil) {
		if strings.HasPrefix(name, "pipeline.Stage") {
			c.stages[name] = v
		}
	}
	pkgs := map[string][]*ast.File{}
	for pkg, dir := range map[string]string{"lambda": "cmd/lambda", "app": "shared/app", "config": "shared/config"} {
		if pkgs[pkg], err = parseDir(c.fset, filepath.Join(root, dir)); err != nil {
			return nil, err
		}
	}
	for name, v := range stringConsts(pkgs["lambda"], "", c.stages) {
		if strings.HasPrefix(name, "stage") {
			c.stages[name] = v
		}
	}
	for pkg, files := range pkgs {
		for _, f := range files {
			for _, d := range f.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok || fd.Body == nil {
					continue
				}
				fi := &funcInfo{decl: fd, pkg: pkg, apps: map[string]bool{}, cfgs: map[string]bool{}}
				key := pkg + "." + fd.Name.Name
				if fd.Recv != nil && len(fd.Recv.List) == 1 {
					recv := fd.Recv.List[0]
					typ := recv.Type
					if s, ok := typ.(*ast.StarExpr); ok {
						typ = s.X
					}
					id, ok := typ.(*ast.Ident)
					if !ok || len(recv.Names) == 0 {
						continue
					}
					switch {
					case pkg == "app" && id.Name == "App":
						fi.apps[recv.Names[0].Name] = true
					case pkg == "config" && id.Name == "Config":
						fi.cfgs[recv.Names[0].Name] = true
					default:
						continue
					}
					key = id.Name + "." + fd.Name.Name
				}
				for _, p := range fd.Type.Params.List {
					if isAppType(p.Type, pkg) {
						for _, n := range p.Names {
							fi.apps[n.Name] = true
						}
					}
				}
				c.funcs[key] = fi
			}
		}
	}
	for _, k := range []string{"lambda.main", "lambda.lambdaHandler", "App.Stage"} {
		if c.funcs[k] == nil {
			return nil, fmt.Errorf("no %s: the walk of the Lambda's code starts there (extend lambdacode_test.go)", k)
		}
	}

	// What config.Load reads: all of it, as cmd/lambda passes it the environment.
	names, fields, err := configFields()
	if err != nil {
		return nil, err
	}
	c.fields = fields
	for _, n := range names {
		c.reads[n] = "shared/config.Load"
	}
	for _, f := range pkgs["lambda"] {
		ast.Inspect(f, func(n ast.Node) bool {
			if call, ok := n.(*ast.CallExpr); ok {
				for _, a := range call.Args {
					if v, pos, ok := karmaLiteral(a); ok {
						if _, seen := c.reads[v]; !seen {
							c.reads[v] = c.where(pos)
						}
					}
				}
			}
			return true
		})
	}
	return c, nil
}

func isAppType(e ast.Expr, pkg string) bool {
	s, ok := e.(*ast.StarExpr)
	if !ok {
		return false
	}
	switch t := s.X.(type) {
	case *ast.Ident:
		return pkg == "app" && t.Name == "App"
	case *ast.SelectorExpr:
		x, ok := t.X.(*ast.Ident)
		return ok && x.Name == "app" && t.Sel.Name == "App"
	}
	return false
}

func karmaLiteral(e ast.Expr) (string, token.Pos, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", 0, false
	}
	v, err := strconv.Unquote(lit.Value)
	if err != nil || !karmaVarRE.MatchString(v) {
		return "", 0, false
	}
	return v, lit.Pos(), true
}

func (c *lambdaCode) where(pos token.Pos) string {
	p := c.fset.Position(pos)
	if rel, err := filepath.Rel(c.root, p.Filename); err == nil {
		p.Filename = rel
	}
	return fmt.Sprintf("%s:%d", p.Filename, p.Line)
}

// stageOf is the stage a constant expression names.
func (c *lambdaCode) stageOf(e ast.Expr) (string, bool) {
	switch v := e.(type) {
	case *ast.Ident:
		s, ok := c.stages[v.Name]
		return s, ok
	case *ast.SelectorExpr:
		if x, ok := v.X.(*ast.Ident); ok {
			s, ok := c.stages[x.Name+"."+v.Sel.Name]
			return s, ok
		}
	}
	return "", false
}

// uses walks the code path of stage from cmd/lambda's main, in a function whose environment
// sets the variables in set, and returns the variables it reads, with where.
func (c *lambdaCode) uses(stage string, set map[string]bool) map[string]string {
	w := &walker{c: c, stage: stage, set: set, uses: map[string]string{}, seen: map[string]bool{}}
	w.fn("lambda.main")
	return w.uses
}

type walker struct {
	c     *lambdaCode
	stage string
	set   map[string]bool
	uses  map[string]string
	seen  map[string]bool
}

func (w *walker) use(name, where string) {
	if _, ok := w.uses[name]; !ok {
		w.uses[name] = where
	}
}

func (w *walker) fn(key string) {
	fi := w.c.funcs[key]
	if fi == nil || w.seen[key] {
		return
	}
	w.seen[key] = true
	w.stmts(fi.decl.Body.List, fi)
}

// stmts walks a statement list; it reports whether the walk reached a return on the stage's
// path (the statements after it are not on that path).
func (w *walker) stmts(list []ast.Stmt, fi *funcInfo) bool {
	for _, s := range list {
		if w.stmt(s, fi) {
			return true
		}
	}
	return false
}

// stmt walks one statement. Where its condition is known for the stage (a comparison with a
// stage constant; of a backend with config.AWS: terraform/ leaves every backend on aws,
// cmd/lambda's default; of a setting with "" when the function's environment sets it), only
// the branch taken is walked.
func (w *walker) stmt(s ast.Stmt, fi *funcInfo) bool {
	switch v := s.(type) {
	case *ast.BlockStmt:
		return w.stmts(v.List, fi)
	case *ast.ReturnStmt:
		w.node(v, fi)
		return true
	case *ast.IfStmt:
		w.node(v.Init, fi)
		w.node(v.Cond, fi)
		if val, known := w.eval(v.Cond, fi); known {
			if val {
				return w.stmts(v.Body.List, fi)
			}
			if v.Else != nil {
				return w.stmt(v.Else, fi)
			}
			return false
		}
		w.stmts(v.Body.List, fi)
		if v.Else != nil {
			w.stmt(v.Else, fi)
		}
		return false
	case *ast.SwitchStmt:
		w.node(v.Init, fi)
		w.node(v.Tag, fi)
		var def *ast.CaseClause
		var unknown []*ast.CaseClause
		for _, cl := range v.Body.List {
			cc := cl.(*ast.CaseClause)
			if cc.List == nil {
				def = cc
				continue
			}
			status := "false"
			for _, e := range cc.List {
				var val, known bool
				if v.Tag != nil {
					val, known = w.equal(v.Tag, e, fi)
				} else {
					val, known = w.eval(e, fi)
				}
				if known && val {
					status = "true"
					break
				}
				if !known {
					status = "unknown"
				}
			}
			switch status {
			case "true":
				return w.stmts(cc.Body, fi)
			case "unknown":
				unknown = append(unknown, cc)
			}
		}
		if len(unknown) == 0 {
			if def != nil {
				return w.stmts(def.Body, fi)
			}
			return false
		}
		for _, cc := range append(unknown, def) {
			if cc != nil {
				w.stmts(cc.Body, fi)
			}
		}
		return false
	}
	w.node(s, fi)
	return false
}

// eval is the value of a condition on the stage's path, if known.
func (w *walker) eval(e ast.Expr, fi *funcInfo) (val, known bool) {
	switch v := e.(type) {
	case *ast.ParenExpr:
		return w.eval(v.X, fi)
	case *ast.UnaryExpr:
		if v.Op == token.NOT {
			val, known = w.eval(v.X, fi)
			return !val, known
		}
	case *ast.BinaryExpr:
		switch v.Op {
		case token.LAND, token.LOR:
			x, kx := w.eval(v.X, fi)
			y, ky := w.eval(v.Y, fi)
			short := v.Op == token.LOR // the value that decides alone
			if (kx && x == short) || (ky && y == short) {
				return short, true
			}
			return !short, kx && ky
		case token.EQL, token.NEQ:
			eq, known := w.equal(v.X, v.Y, fi)
			return eq == (v.Op == token.EQL), known
		}
	}
	return false, false
}

var backendFields = map[string]bool{"Params": true, "Queue": true, "Graph": true, "Audit": true, "State": true}

// equal is whether x == y on the stage's path, if known: one side a stage constant (the other
// the stage), a backend field of the configuration compared with a backend, or a field the
// function's environment sets compared with "".
func (w *walker) equal(x, y ast.Expr, fi *funcInfo) (eq, known bool) {
	for _, p := range [][2]ast.Expr{{x, y}, {y, x}} {
		if st, ok := w.c.stageOf(p[1]); ok {
			return st == w.stage, true
		}
		field, isField := w.configField(p[0], fi)
		if be, ok := backendValue(p[1]); ok && isField && backendFields[field] {
			return be == config.AWS, true
		}
		if lit, ok := p[1].(*ast.BasicLit); ok && lit.Value == `""` && isField {
			for _, n := range w.c.fields[field] {
				if w.set[n] {
					return false, true
				}
			}
		}
	}
	return false, false
}

func backendValue(e ast.Expr) (string, bool) {
	switch v := e.(type) {
	case *ast.SelectorExpr:
		if x, ok := v.X.(*ast.Ident); ok && x.Name == "config" {
			switch v.Sel.Name {
			case "AWS":
				return config.AWS, true
			case "Embedded":
				return config.Embedded, true
			}
		}
	case *ast.BasicLit:
		if s, err := strconv.Unquote(v.Value); err == nil {
			return s, true
		}
	}
	return "", false
}

// configField is the field path of config.Config that e reads (a.Config.Git.URL -> Git.URL).
func (w *walker) configField(e ast.Expr, fi *funcInfo) (string, bool) {
	var path []string
	for {
		s, ok := e.(*ast.SelectorExpr)
		if !ok {
			break
		}
		path = append([]string{s.Sel.Name}, path...)
		e = s.X
	}
	root, ok := e.(*ast.Ident)
	switch {
	case !ok || len(path) == 0:
		return "", false
	case fi.apps[root.Name] && path[0] == "Config" && len(path) > 1:
		return strings.Join(path[1:], "."), true
	case fi.cfgs[root.Name]:
		return strings.Join(path, "."), true
	}
	return "", false
}

// node records what n reads and walks into what it calls.
func (w *walker) node(n ast.Node, fi *funcInfo) {
	if n == nil {
		return
	}
	ast.Inspect(n, func(n ast.Node) bool {
		switch v := n.(type) {
		case *ast.BlockStmt:
			w.stmts(v.List, fi)
			return false
		case *ast.IfStmt:
			w.stmt(v, fi)
			return false
		case *ast.SwitchStmt:
			w.stmt(v, fi)
			return false
		case *ast.KeyValueExpr:
			if st, ok := w.c.stageOf(v.Key); ok {
				if st == w.stage {
					w.node(v.Value, fi)
				}
				return false
			}
		case *ast.CallExpr:
			switch f := v.Fun.(type) {
			case *ast.Ident:
				w.fn(fi.pkg + "." + f.Name)
			case *ast.SelectorExpr:
				if x, ok := f.X.(*ast.Ident); ok {
					if r, ok := externalReads[x.Name+"."+f.Sel.Name]; ok {
						w.use(r.name, r.pkg+" ("+x.Name+"."+f.Sel.Name+")")
					}
					if x.Name == "app" {
						w.fn("app." + f.Sel.Name)
					}
				}
			}
			for _, a := range v.Args {
				if name, pos, ok := karmaLiteral(a); ok {
					w.use(name, w.c.where(pos))
				}
			}
		case *ast.SelectorExpr:
			var path []string
			var e ast.Expr = v
			for {
				s, ok := e.(*ast.SelectorExpr)
				if !ok {
					break
				}
				path = append([]string{s.Sel.Name}, path...)
				e = s.X
			}
			root, ok := e.(*ast.Ident)
			if !ok {
				return true
			}
			switch {
			case fi.apps[root.Name] && path[0] == "Config":
				w.config(path[1:], v.Pos())
			case fi.apps[root.Name]:
				w.fn("App." + path[0])
			case fi.cfgs[root.Name]:
				w.config(path, v.Pos())
			default:
				return true
			}
			return false
		}
		return true
	})
}

// config records the variables of a config.Config field path (or walks into a Config method).
func (w *walker) config(path []string, pos token.Pos) {
	if len(path) == 0 {
		return
	}
	if w.c.funcs["Config."+path[len(path)-1]] != nil {
		w.fn("Config." + path[len(path)-1])
		path = path[:len(path)-1]
		if len(path) == 0 {
			return
		}
	}
	p := strings.Join(path, ".")
	for field, names := range w.c.fields {
		if field == p || strings.HasPrefix(field, p+".") {
			for _, n := range names {
				w.use(n, "config.Config."+field+" at "+w.c.where(pos))
			}
		}
	}
}

// configFields returns every variable shared/config.Load reads, and the field of config.Config
// each one sets (e.g. KARMA_GIT_URL -> Git.URL), found by setting each alone and seeing what
// changes. A variable setting several fields at once (KARMA_BACKEND) is in no field's list.
func configFields() (names []string, fields map[string][]string, err error) {
	_, _ = config.Load(func(k string) string { names = append(names, k); return "" })
	base, _ := config.Load(func(string) string { return "" })
	fields = map[string][]string{}
	for _, name := range names {
		got, _ := config.Load(func(k string) string {
			if k == name {
				return "true"
			}
			return ""
		})
		var changed []string
		diffFields(reflect.ValueOf(base), reflect.ValueOf(got), "", &changed)
		if len(changed) == 1 {
			fields[changed[0]] = append(fields[changed[0]], name)
		}
	}
	if len(fields) == 0 {
		return nil, nil, fmt.Errorf("shared/config.Load reads no variable that sets a field: the analysis is broken")
	}
	return names, fields, nil
}

func diffFields(a, b reflect.Value, prefix string, out *[]string) {
	if a.Kind() == reflect.Struct {
		for i := range a.NumField() {
			diffFields(a.Field(i), b.Field(i), prefix+a.Type().Field(i).Name+".", out)
		}
		return
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		*out = append(*out, strings.TrimSuffix(prefix, "."))
	}
}
