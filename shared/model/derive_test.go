package model_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/model/modeltest"
	"github.com/usekarma/karma/shared/params"
)

// fixedStore is a parameter store holding a fixed list.
type fixedStore []params.Parameter

func (s fixedStore) Get(_ context.Context, name string) (params.Parameter, error) {
	for _, p := range s {
		if p.Name == name {
			return p, nil
		}
	}
	return params.Parameter{}, params.ErrNotFound
}

func (s fixedStore) GetByPath(_ context.Context, path string) ([]params.Parameter, error) {
	var out []params.Parameter
	for _, p := range s {
		if strings.HasPrefix(p.Name, path+"/") {
			out = append(out, p)
		}
	}
	return out, nil
}

func (fixedStore) Put(context.Context, params.PutInput) (params.PutResult, error) {
	return params.PutResult{}, fmt.Errorf("read-only")
}
func (fixedStore) Delete(context.Context, string) error { return fmt.Errorf("read-only") }

// storeFor publishes a runtime for most of repo's components, in every shape ReadParamState
// classifies (present, placeholder, malformed, per-key leaves), and a config no component has.
func storeFor(repo *model.Repo) func(string) params.Store {
	stores := map[string]fixedStore{}
	for i, c := range repo.Components {
		p := params.Parameter{Name: model.RuntimeParam(repo.Settings.Prefix, c.Type, c.Nickname), Version: int64(i + 1)}
		switch i % 5 {
		case 0:
			continue // missing
		case 1:
			p.Value = `{"placeholder": true}`
		case 2:
			p.Value = `not json`
		case 3:
			p.Name += "/arn"
			p.Value = "arn:" + c.Nickname
		default:
			p.Value = fmt.Sprintf(`{"arn": "arn:%s", "id": %d}`, c.Nickname, i)
		}
		stores[c.Env] = append(stores[c.Env], p)
		for _, name := range c.SubRuntimes {
			stores[c.Env] = append(stores[c.Env], params.Parameter{Name: model.RuntimeParam(repo.Settings.Prefix, c.Type, name), Value: `{"arn": "x"}`})
		}
	}
	for env := range stores {
		stores[env] = append(stores[env], params.Parameter{Name: model.ConfigParam(repo.Settings.Prefix, "gone", "old"), Value: "{}", Version: 3})
	}
	return func(env string) params.Store {
		if s, ok := stores[env]; ok {
			return s
		}
		return nil
	}
}

// deriveFixture is a repository for the equivalence test, with what its overrides derive from.
type deriveFixture struct {
	name string
	fsys fs.FS
	env  string
	// extra override sets, for what the generated ones do not reach
	extra map[string]map[string][]byte
}

// rulesExtra changes what the reference rules of karma.json link in testdata/rules: a zone's name
// (its dependents' lookups then find none, or two), a lambda's functions (one named like another
// component's runtime, one another lambda writes too), a runtime path to nothing.
var rulesExtra = map[string]map[string][]byte{
	"zone renamed":        {"iac/prod/route53-zone/example-net/config.json": []byte(`{"zone_name": "example.com"}`)},
	"zones alike":         {"iac/prod/route53-zone/example-net/config.json": []byte(`{"zone_name": "example.org"}`)},
	"zone without a name": {"iac/prod/route53-zone/example-org/config.json": []byte(`{"zone_name": 7}`)},
	"functions renamed":   {"iac/prod/lambda/shop/config.json": []byte(`{"functions": {"checkout2": {"runtime": "python3.12"}, "core": {}}}`)},
	"function of another": {"iac/prod/clickhouse/core/config.json": []byte(`{"vpc_nickname": "core", "functions": {"cart": {}}}`),
		"iac/prod/lambda/shop/config.json": []byte(`{"functions": {"shop": {}, "cart": {}}}`)},
	"runtime path to nothing": {"iac/prod/grafana/ops/config.json": []byte(`{"vpc_runtime_path": "/iac/vpc/none/runtime", "clickhouse_runtime_path": "/elsewhere/x"}`)},
	"zone and its dependent": {"iac/prod/route53-zone/example-net/config.json": []byte(`{"zone_name": "shop.example"}`),
		"iac/prod/serverless-api/shop/config.json": []byte(`{"route53_zone_name": "shop.example.", "enable_custom_domain": true}`)},
	"too large": {"iac/prod/vpc/core/config.json": []byte(`{"cidr": "10.1.0.0/16", "padding": "` + strings.Repeat("x", 9000) + `"}`)},
}

// chainsExtra: changes to the parents and templates of chainsFS, one or several at once.
var chainsExtra = map[string]map[string][]byte{
	"middle of a chain":           {"iac/prod/app/api/config.json": []byte(`{"karma": {"extends": "app/web"}, "name": "api2"}`)},
	"parent fixed":                {"iac/prod/app/bad/config.json": []byte(`{"karma": {"extends": "app/tmpl"}}`)},
	"duplicate fixed":             {"iac/prod/app/dup/config.json": []byte(`{"karma": {"extends": "app/tmpl"}}`)},
	"template and a child":        {"iac/_base/app/tmpl2/config.json": []byte(`{"tier": "silver"}`), "iac/prod/app/t2other/config.json": []byte(`{"karma": {"extends": "app/web"}}`)},
	"template broken":             {"iac/_base/app/tmpl/config.json": []byte(`{`)},
	"base layer broken":           {"iac/_base/app/web/config.json": []byte(`[]`)},
	"unused base layer":           {"iac/_base/app/unused/config.json": []byte(`{"karma": {"bogus": true}}`)},
	"cycle made":                  {"iac/prod/app/web/config.json": []byte(`{"karma": {"extends": "app/worker"}}`)},
	"template made a cycle":       {"iac/_base/app/tmpl/config.json": []byte(`{"karma": {"extends": "app/tmpl2"}}`)},
	"schema broken":               {"iac/prod/app/web/config.json": []byte(`{"karma": {"extends": "app/tmpl"}, "port": "eighty"}`)},
	"function written twice":      {"iac/prod/lambda/two/config.json": []byte(`{"functions": {"f1": {}, "f2": {}}}`)},
	"function named like another": {"iac/prod/lambda/one/config.json": []byte(`{"functions": {"two": {}, "f1": {}}}`)},
	"function removed":            {"iac/prod/lambda/one/config.json": []byte(`{"functions": {}}`)},
	"karma block odd":             {"iac/prod/app/worker/config.json": []byte(`{"karma": {"extends": 7, "depends_on": "vpc/core"}}`)},
}

// cycleFS has an extends cycle: what is loaded from it is not derived from, but built in full.
func cycleFS() fstest.MapFS {
	return fstest.MapFS{
		"iac/prod/app/a/config.json": {Data: []byte(`{"karma": {"extends": "app/b"}}`)},
		"iac/prod/app/b/config.json": {Data: []byte(`{"karma": {"extends": "app/a"}}`)},
		"iac/prod/app/c/config.json": {Data: []byte(`{"karma": {"extends": "app/a"}}`)},
		"iac/prod/vpc/d/config.json": {Data: []byte(`{}`)},
	}
}

// chainsFS is a repository exercising resolution: a base-only template extended by a template
// and by components, base layers, extends chains three deep, a parent that does not parse, a
// missing parent, components whose ids differ only by case, problems in karma blocks.
func chainsFS() fstest.MapFS {
	files := map[string]string{
		"karma.json":                              `{"prefix": "/iac"}`,
		"iac/_base/app/tmpl/config.json":          `{"size": "m", "karma": {"depends_on": ["vpc/core"]}}`,
		"iac/_base/app/tmpl2/config.json":         `{"karma": {"extends": "app/tmpl", "bogus": 2}, "tier": "gold"}`,
		"iac/_base/app/web/config.json":           `{"port": 80, "name": "base"}`,
		"iac/_base/app/unused/config.json":        `{"never": "merged"}`,
		"iac/prod/vpc/core/config.json":           `{"cidr": "10.0.0.0/16"}`,
		"iac/prod/app/web/config.json":            `{"karma": {"extends": "app/tmpl"}, "name": "web"}`,
		"iac/prod/app/api/config.json":            `{"karma": {"extends": "app/web"}, "name": "api", "vpc_nickname": "core"}`,
		"iac/prod/app/worker/config.json":         `{"karma": {"extends": "app/api"}, "queue": "q", "size": null}`,
		"iac/prod/app/lost/config.json":           `{"karma": {"extends": "app/missing"}}`,
		"iac/prod/app/bad/config.json":            `{"broken": `,
		"iac/prod/app/child-of-bad/config.json":   `{"karma": {"extends": "app/bad"}, "x": 1}`,
		"iac/prod/app/Dup/config.json":            `{"x": 1}`,
		"iac/prod/app/dup/config.json":            `{"x": 2}`,
		"iac/prod/app/kbad/config.json":           `{"karma": {"bogus": 1, "extends": "app/tmpl"}}`,
		"iac/prod/app/t2child/config.json":        `{"karma": {"extends": "app/tmpl2"}, "api": "${app/api.runtime.url}"}`,
		"iac/prod/app/t2other/config.json":        `{"karma": {"extends": "app/tmpl2"}}`,
		"iac/prod/queue/jobs/config.json":         `{"app_nickname": "worker", "karma": {"depends_on": ["app/web"]}}`,
		"iac/prod/lambda/one/config.json":         `{"functions": {"f1": {"runtime": "python3.12"}}}`,
		"iac/prod/lambda/two/config.json":         `{"functions": {"f2": {}}}`,
		"iac/prod/app/fn-user/config.json":        `{"arn": "${lambda/f1.runtime.arn}", "other": "${lambda/f2.runtime.arn}"}`,
		"iac/dev/app/web/config.json":             `{"name": "dev-web", "karma": {"extends": "app/tmpl"}}`,
		"iac/dev/app/api/config.json":             `{"karma": {"extends": "app/web"}}`,
		"account_environments/prod.json":          `{"environment": "prod"}`,
		"components/app/config.schema.json":       `{"type": "object", "properties": {"port": {"type": "integer"}}}`,
		"components/vpc/config.schema.json":       `{"type": "object", "required": ["cidr"]}`,
		"iac/prod/app/web/notes/readme.json":      `{}`,
		"iac/prod/queue/jobs/notes/not-used.json": `{}`,
	}
	fsys := fstest.MapFS{}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	return fsys
}

// overrideSets lists the override sets tried on a repository: each config file with a changed
// value and with broken JSON; each environment file with its extends changed, added, removed and
// made missing, with references added (to a component and to nothing) and removed; several at
// once; and paths Derive does not take (karma.json, a new component), which load in full.
func overrideSets(t *testing.T, fsys fs.FS, base *model.Repo) map[string]map[string][]byte {
	t.Helper()
	read := func(file string) map[string]any {
		data, err := fs.ReadFile(fsys, file)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return map[string]any{} // a file that does not parse: start over
		}
		return m
	}
	enc := func(m map[string]any) []byte {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	karma := func(m map[string]any) map[string]any {
		k, _ := m["karma"].(map[string]any)
		if k == nil {
			k = map[string]any{}
			m["karma"] = k
		}
		return k
	}
	var files []string
	fs.WalkDir(fsys, "iac", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, "/config.json") && strings.Count(p, "/") == 4 {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	refs := map[string][]string{} // env -> "<type>/<nickname>"
	for _, c := range base.Components {
		refs[c.Env] = append(refs[c.Env], c.Ref())
	}
	sets := map[string]map[string][]byte{}
	for i, f := range files {
		env := strings.Split(f, "/")[1]
		m := read(f)
		m["zz_changed"] = i
		sets["value "+f] = map[string][]byte{f: enc(m)}
		sets["broken "+f] = map[string][]byte{f: []byte(`{"oops": [1, `)}
		sets["not an object "+f] = map[string][]byte{f: []byte(`[1, 2]`)}
		if env == model.BaseEnv {
			continue
		}
		others := refs[env]
		if len(others) > 0 {
			m = read(f)
			karma(m)["extends"] = others[(i+1)%len(others)]
			sets["extends other "+f] = map[string][]byte{f: enc(m)}
		}
		m = read(f)
		karma(m)["extends"] = "app/tmpl"
		sets["extends template "+f] = map[string][]byte{f: enc(m)}
		m = read(f)
		karma(m)["extends"] = "nope/missing"
		sets["extends missing "+f] = map[string][]byte{f: enc(m)}
		m = read(f)
		delete(karma(m), "extends")
		sets["extends removed "+f] = map[string][]byte{f: enc(m)}
		m = read(f)
		deps := []any{"nope/missing"}
		if len(others) > 0 {
			deps = append(deps, others[0])
		}
		karma(m)["depends_on"] = deps
		m["vpc_nickname"] = "core"
		m["route53_zone_name"] = "example.net"
		sets["references added "+f] = map[string][]byte{f: enc(m)}
		sets["references removed "+f] = map[string][]byte{f: []byte(`{}`)}
	}
	several := map[string][]byte{}
	all := map[string][]byte{}
	for i, f := range files {
		m := read(f)
		m["zz_several"] = true
		if i < 3 {
			several[f] = enc(m)
		}
		all[f] = enc(m)
	}
	sets["several"] = several
	sets["every file"] = all
	sets["karma.json"] = map[string][]byte{"karma.json": []byte(`{"prefix": "/other"}`)}
	sets["new component"] = map[string][]byte{"iac/prod/new-type/new/config.json": []byte(`{}`)}
	sets["new and existing"] = map[string][]byte{"iac/prod/new-type/new/config.json": []byte(`{}`), files[0]: []byte(`{}`)}
	return sets
}

// componentLines renders what callers see of the repository's components.
func componentLines(repo *model.Repo) []string {
	var out []string
	for _, c := range repo.Components {
		refs, _ := json.Marshal(c.References)
		owners := ""
		for _, name := range c.SubRuntimes {
			if o, ok := repo.SubRuntimeOwner(c.Env, c.Type+"/"+name); ok {
				owners += " " + name + "<-" + o.ID()
			}
		}
		out = append(out, fmt.Sprintf("%s files=%v broken=%v hash=%s subs=%v%s\n  resolved=%s\n  refs=%s",
			c.ID(), c.Files, c.Broken, c.Hash, c.SubRuntimes, owners, c.Resolved, refs))
	}
	return out
}

func diagSet(ds model.Diagnostics) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = fmt.Sprintf("%+v", d)
	}
	sort.Strings(out)
	return out
}

func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	gs, ws := map[string]bool{}, map[string]bool{}
	for _, l := range got {
		gs[l] = true
	}
	for _, l := range want {
		ws[l] = true
	}
	var diff []string
	for _, l := range want {
		if !gs[l] {
			diff = append(diff, "- "+l)
		}
	}
	for _, l := range got {
		if !ws[l] {
			diff = append(diff, "+ "+l)
		}
	}
	t.Errorf("%s differ (%d derived, %d in full; - only in full, + only derived):\n%s", what, len(got), len(want), strings.Join(diff, "\n"))
}

// TestDeriveEqualsFullLoad is the proof of Repo.Derive and BuildDerived: for every override set
// of overrideSets on the examples, the rules fixture and chainsFS, the build derived from a
// repository loaded without overrides equals a full build with the overrides — every
// component (files, resolved config, hash, references, sub-runtimes and their owners), the
// graph (components with their runtime fields, edges with their sources), the diagnostics and
// the orphans — and the base repository is unchanged.
func TestDeriveEqualsFullLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fixtures := []deriveFixture{
		{"examples", os.DirFS(examplesDir), "prod", nil},
		{"examples", os.DirFS(examplesDir), "dev", nil},
		{"examples", os.DirFS(examplesDir), "", nil},
		{"rules", os.DirFS(filepath.Join("testdata", "rules")), "prod", rulesExtra},
		{"chains", chainsFS(), "prod", chainsExtra},
		{"chains", chainsFS(), "", chainsExtra},
		{"cycle", cycleFS(), "prod", nil},
	}
	for _, fx := range fixtures {
		t.Run(fx.name+"/"+fx.env, func(t *testing.T) {
			t.Parallel()
			lo := model.LoadOptions{Env: fx.env, Derivable: true}
			base, err := model.LoadFS(fx.fsys, fx.name, lo)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := base.Derive(nil); ok == (fx.name == "cycle") {
				t.Fatalf("Derive(nil): ok %v (an extends cycle: %v)", ok, fx.name == "cycle")
			}
			// A load not asked to be Derivable keeps nothing to derive from.
			if plain, err := model.LoadFS(fx.fsys, fx.name, model.LoadOptions{Env: fx.env}); err != nil {
				t.Fatal(err)
			} else if _, ok := plain.Derive(nil); ok {
				t.Fatal("Derive(nil) of a load without Derivable: ok")
			}
			store := storeFor(base)
			baseLines, baseDiags := componentLines(base), diagSet(base.Diagnostics)
			derived := 0
			sets := overrideSets(t, fx.fsys, base)
			for name, over := range fx.extra {
				sets["extra "+name] = over
			}
			for name, over := range sets {
				opts := model.BuildOptions{LoadOptions: model.LoadOptions{Env: fx.env, Overrides: over}, Params: store}
				want, err := model.BuildFS(ctx, fx.fsys, fx.name, opts)
				if err != nil {
					t.Fatalf("%s: full build: %v", name, err)
				}
				got, err := model.BuildDerived(ctx, base, opts)
				if err != nil {
					t.Fatalf("%s: derived build: %v", name, err)
				}
				_, ok := base.Derive(over)
				if ok {
					derived++
				} else if fx.name != "cycle" && mustDerive(fx.env, name, over) {
					t.Errorf("%s: loaded in full, not derived", name)
				}
				t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) { sameBuild(t, got, want) })
			}
			if derived == 0 && fx.name != "cycle" {
				t.Error("no override set was derived")
			}
			sameLines(t, "base components after deriving", componentLines(base), baseLines)
			sameLines(t, "base diagnostics after deriving", diagSet(base.Diagnostics), baseDiags)
		})
	}
}

// mustDerive says whether Derive must take an override set: one of existing config files of the
// environment loaded (or of the base layer) that cannot make an extends cycle.
func mustDerive(env, name string, over map[string][]byte) bool {
	if strings.HasPrefix(name, "extends other ") || name == "every file" || strings.Contains(name, "cycle") {
		return false // may make a cycle
	}
	for f := range over {
		if !strings.HasPrefix(f, "iac/") || strings.Contains(f, "new-type") {
			return false
		}
		if e := strings.Split(f, "/")[1]; env != "" && e != env && e != model.BaseEnv {
			return false
		}
	}
	return true
}

// sameBuild fails t where the derived build got differs from the full build want.
func sameBuild(t *testing.T, got, want *model.Result) {
	t.Helper()
	sameLines(t, "components", componentLines(got.Repo), componentLines(want.Repo))
	sameLines(t, "repository diagnostics", diagSet(got.Repo.Diagnostics), diagSet(want.Repo.Diagnostics))
	sameLines(t, "diagnostics", diagSet(got.Diagnostics), diagSet(want.Diagnostics))
	if !reflect.DeepEqual(got.Graph.Components, want.Graph.Components) {
		t.Errorf("graph components differ:\n%+v\n%+v", got.Graph.Components, want.Graph.Components)
	}
	if !reflect.DeepEqual(got.Graph.Edges, want.Graph.Edges) {
		t.Errorf("graph edges differ:\n%+v\n%+v", got.Graph.Edges, want.Graph.Edges)
	}
	if !reflect.DeepEqual(got.Graph, want.Graph) { // its indexes too
		t.Error("graphs differ")
	}
	if !reflect.DeepEqual(got.Orphans, want.Orphans) {
		t.Errorf("orphans %v, want %v", got.Orphans, want.Orphans)
	}
	if !reflect.DeepEqual(got.Repo.Environments, want.Repo.Environments) || !reflect.DeepEqual(got.Repo.Accounts, want.Repo.Accounts) ||
		!reflect.DeepEqual(got.Repo.Settings, want.Repo.Settings) {
		t.Errorf("environments %v, accounts or settings differ, want %v", got.Repo.Environments, want.Repo.Environments)
	}
}

// TestDeriveEqualsFullLoadGenerated tries random override sets — one to three config files,
// environment or base layer, each given a new value, broken JSON, another parent or no karma
// block — on a generated repository with templates, base layers and references in two
// environments, comparing each derived build with a full one.
func TestDeriveEqualsFullLoadGenerated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := modeltest.Generate(dir, modeltest.Spec{Components: 300, Envs: []string{"dev", "prod"}, Layers: 5, RefsPerComponent: 3, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	fsys := os.DirFS(dir)
	var files []string
	fs.WalkDir(fsys, "iac", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, "/config.json") {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	for _, env := range []string{"prod", ""} {
		base, err := model.LoadFS(fsys, "generated", model.LoadOptions{Env: env, Derivable: true})
		if err != nil {
			t.Fatal(err)
		}
		var refs []string
		for _, c := range base.Components {
			refs = append(refs, c.Ref())
		}
		store := storeFor(base)
		rng := rand.New(rand.NewPCG(7, uint64(len(env))))
		derived := 0
		for n := range 80 {
			over := map[string][]byte{}
			for range 1 + rng.IntN(3) {
				f := files[rng.IntN(len(files))]
				if env != "" && !strings.HasPrefix(f, "iac/"+env+"/") && !strings.HasPrefix(f, "iac/_base/") {
					continue
				}
				data, _ := fs.ReadFile(fsys, f)
				var m map[string]any
				json.Unmarshal(data, &m)
				switch rng.IntN(5) {
				case 0:
					over[f] = []byte(`{"broken": `)
					continue
				case 1:
					m["karma"] = map[string]any{"extends": refs[rng.IntN(len(refs))]}
				case 2:
					delete(m, "karma")
				case 3:
					m["karma"] = map[string]any{"depends_on": []any{refs[rng.IntN(len(refs))], "nope/none"}}
				}
				m["revision"] = n
				over[f], _ = json.Marshal(m)
			}
			opts := model.BuildOptions{LoadOptions: model.LoadOptions{Env: env, Overrides: over}, Params: store}
			want, err := model.BuildFS(ctx, fsys, "generated", opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := model.BuildDerived(ctx, base, opts)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := base.Derive(over); ok {
				derived++
			}
			names := make([]string, 0, len(over))
			for f := range over {
				names = append(names, f)
			}
			sort.Strings(names)
			t.Run(fmt.Sprintf("%s/%d", env, n), func(t *testing.T) {
				t.Logf("overrides: %v", names)
				sameBuild(t, got, want)
			})
		}
		t.Logf("env %q: %d of 80 override sets derived", env, derived)
		if derived < 40 {
			t.Errorf("env %q: only %d of 80 override sets derived", env, derived)
		}
	}
}
