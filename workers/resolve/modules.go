package resolve

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"

	"github.com/usekarma/karma/shared/model"
)

// moduleCalls reads, in the modules folder of a commit, which folders each module calls
// through local module sources (`module "x" { source = "../common" }`): the folders a
// component type's module uses, directly or through other local modules, so that a change to
// a folder that is no type of its own (components/common/) deploys every type using it.
type moduleCalls struct {
	fsys fs.FS             // the modules folder
	name string            // its path in the repository, for messages
	memo map[string]called // folder (relative to the modules folder) -> the folders it calls
}

type called struct {
	folders []string
	err     error
}

func newModuleCalls(fsys fs.FS, name string) *moduleCalls {
	return &moduleCalls{fsys: fsys, name: name, memo: map[string]called{}}
}

// uses lists every folder (relative to the modules folder) the module in folder typ is made
// of: its own and those its local module calls reach, at any depth. An error says why this
// cannot be told (a file that does not parse, a source that is not a plain string, a local
// source leaving the modules folder): the module may use any folder.
func (m *moduleCalls) uses(typ string) ([]string, error) {
	seen := map[string]bool{typ: true}
	queue := []string{typ}
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		c, ok := m.memo[dir]
		if !ok {
			c.folders, c.err = m.read(dir)
			m.memo[dir] = c
		}
		if c.err != nil {
			return nil, c.err
		}
		for _, f := range c.folders {
			if !seen[f] {
				seen[f] = true
				queue = append(queue, f)
			}
		}
	}
	out := make([]string, 0, len(seen))
	for f := range seen {
		out = append(out, f)
	}
	sort.Strings(out)
	return out, nil
}

var moduleSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "module", LabelNames: []string{"name"}}}}
var sourceSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "source"}}}

// read lists the folders the module in dir calls directly through local sources (./ or ../,
// relative to dir), as Terraform reads them: every *.tf and *.tf.json file of dir (override
// files included: what they may replace is kept too, which only adds folders). A folder that
// does not exist calls nothing.
func (m *moduleCalls) read(dir string) ([]string, error) {
	where := path.Join(m.name, dir)
	entries, err := fs.ReadDir(m.fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	p := hclparse.NewParser()
	var out []string
	for _, e := range entries {
		name := e.Name()
		json := strings.HasSuffix(name, ".tf.json")
		if e.IsDir() || !json && !strings.HasSuffix(name, ".tf") {
			continue
		}
		file := path.Join(where, name)
		if !e.Type().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file", file)
		}
		src, err := fs.ReadFile(m.fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		var f *hcl.File
		var diags hcl.Diagnostics
		if json {
			f, diags = p.ParseJSON(src, file)
		} else {
			f, diags = p.ParseHCL(src, file)
		}
		if diags.HasErrors() {
			return nil, diags
		}
		content, _, diags := f.Body.PartialContent(moduleSchema)
		if diags.HasErrors() {
			return nil, diags
		}
		for _, b := range content.Blocks {
			attrs, _, diags := b.Body.PartialContent(sourceSchema)
			if diags.HasErrors() {
				return nil, diags
			}
			a, ok := attrs.Attributes["source"]
			if !ok {
				return nil, fmt.Errorf("%s: module %q has no source", b.DefRange, b.Labels[0])
			}
			v, diags := a.Expr.Value(nil)
			if diags.HasErrors() || v.IsNull() || !v.IsKnown() || !v.Type().Equals(cty.String) {
				return nil, fmt.Errorf("%s: module %q: the source is not a plain string", a.Expr.Range(), b.Labels[0])
			}
			s := v.AsString()
			if !strings.HasPrefix(s, "./") && !strings.HasPrefix(s, "../") {
				continue // a registry, Git or other remote source: not in the commit
			}
			to := path.Join(dir, s)
			if to == ".." || strings.HasPrefix(to, "../") {
				return nil, fmt.Errorf("%s: module %q: source %q leaves the modules folder %s", a.Expr.Range(), b.Labels[0], s, m.name)
			}
			if !slices.Contains(out, to) {
				out = append(out, to)
			}
		}
	}
	return out, nil
}

// within reports whether file (relative to the modules folder) is in folder dir, at any depth
// (a template or nested folder the module reads by path.module).
func within(file, dir string) bool {
	return file == dir || dir == "." || strings.HasPrefix(file, dir+"/")
}

// moduleTypes are the types of res's components whose modules use a changed file of the modules
// folder (files, relative to it), and why when it is not the type's own folder: which file and
// folder, or why it cannot be told — a type whose modules cannot be read may use any folder,
// and deploys.
func (w *Worker) moduleTypes(res *model.Result, files []string) (map[string]bool, map[string]string) {
	types, why := map[string]bool{}, map[string]string{}
	if len(files) == 0 {
		return types, why
	}
	var calls *moduleCalls
	fsys, name, err := res.Repo.Modules()
	if err == nil {
		calls = newModuleCalls(fsys, name)
	}
	for _, c := range res.Repo.Components {
		t := c.Type
		if _, done := types[t]; done {
			continue
		}
		types[t] = false
		if slices.ContainsFunc(files, func(f string) bool { return within(f, t) }) {
			types[t] = true // its own module changed
			continue
		}
		if calls == nil {
			types[t] = true
			why[t] = fmt.Sprintf("%s changed, and which folders the module of %s uses cannot be told (the modules folder: %v): deployed in case it uses it",
				files[0], t, err)
			continue
		}
		used, uerr := calls.uses(t)
		if uerr != nil {
			types[t] = true
			why[t] = fmt.Sprintf("%s changed, and which folders the module %s uses cannot be told (%v): deployed in case it uses it",
				path.Join(name, files[0]), path.Join(name, t), uerr)
			continue
		}
	found:
		for _, f := range files {
			for _, u := range used {
				if within(f, u) {
					types[t] = true
					why[t] = fmt.Sprintf("%s changed: the module %s uses %s", path.Join(name, f), path.Join(name, t), path.Join(name, u))
					break found
				}
			}
		}
	}
	return types, why
}
