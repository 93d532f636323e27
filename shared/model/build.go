package model

import (
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"

	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/params"
)

// BuildOptions select what Build reads.
type BuildOptions struct {
	LoadOptions
	// Params returns the parameter store of an environment's account, or nil when it is not to
	// be read (runtime status is then "unknown").
	Params func(env string) params.Store
}

// Result is a built, validated graph.
type Result struct {
	Repo        *Repo
	Graph       *graph.Graph
	Diagnostics Diagnostics // every problem, errors and warnings, sorted
	// Orphans are components whose config is in the parameter store but not in Git (ids).
	Orphans []string
}

// Build loads the repository in directory root, reads each environment's parameter store, and
// builds and validates the graph. The error is for unusable input; problems are in
// Result.Diagnostics.
func Build(ctx context.Context, root string, opts BuildOptions) (*Result, error) {
	repo, err := Load(root, opts.LoadOptions)
	if err != nil {
		return nil, err
	}
	return build(ctx, repo, opts)
}

// BuildFS is Build over a file system: a directory or a commit's tree (see LoadFS).
func BuildFS(ctx context.Context, fsys fs.FS, name string, opts BuildOptions) (*Result, error) {
	repo, err := LoadFS(fsys, name, opts.LoadOptions)
	if err != nil {
		return nil, err
	}
	return build(ctx, repo, opts)
}

func build(ctx context.Context, repo *Repo, opts BuildOptions) (*Result, error) {
	res := &Result{Repo: repo, Diagnostics: append(Diagnostics{}, repo.Diagnostics...)}
	res.Diagnostics = append(res.Diagnostics, checkSizes(repo)...)
	states := map[string]*ParamState{}
	if opts.Params != nil {
		for _, env := range repo.Environments {
			store := opts.Params(env)
			if store == nil {
				continue
			}
			st, diags, err := ReadParamState(ctx, store, repo.Settings.Prefix)
			if err != nil {
				return nil, fmt.Errorf("environment %s: %w", env, err)
			}
			if st.Environment != "" && st.Environment != env {
				res.Diagnostics = append(res.Diagnostics, Diagnostic{Severity: SevError, Code: CodeEnvironmentBound,
					File:    EnvironmentParam(repo.Settings.Prefix),
					Message: fmt.Sprintf("the parameter store read for environment %q is bound to environment %q", env, st.Environment)})
				continue
			}
			res.Diagnostics = append(res.Diagnostics, diags...)
			states[env] = st
		}
	}
	res.Graph = res.buildGraph(states)
	res.Diagnostics.Sort()
	return res, nil
}

// Refreshed is res with the runtimes the parameter stores (opts.Params) hold now: res itself
// when every component's runtime status, hash and keys are as res has them, else the graph
// built again from res.Repo (no file is read again). A build is kept per commit (configrepo), so
// its runtimes are those of the moment it was made: deployments since have published others,
// and what is shown as the head's graph (GET /graph, the web page) must not say "missing" of a
// component deployed since.
func (res *Result) Refreshed(ctx context.Context, opts BuildOptions) (*Result, error) {
	if opts.Params == nil {
		return res, nil
	}
	fresh, err := build(ctx, res.Repo, opts)
	if err != nil {
		return nil, err
	}
	if sameRuntimes(res.Graph, fresh.Graph) {
		return res, nil
	}
	return fresh, nil
}

// sameRuntimes reports whether two graphs of one repository say the same of every runtime.
func sameRuntimes(a, b *graph.Graph) bool {
	if len(a.Components) != len(b.Components) {
		return false
	}
	for i := range a.Components {
		x, y := &a.Components[i], &b.Components[i]
		if x.ID != y.ID || x.RuntimeStatus != y.RuntimeStatus || x.RuntimeHash != y.RuntimeHash || !slices.Equal(x.RuntimeKeys, y.RuntimeKeys) {
			return false
		}
	}
	return true
}

// pendingEdge is an edge of the component being added, to index to.
type pendingEdge struct {
	to  int32
	src graph.Source
}

// compKey identifies a component without concatenating its id.
type compKey struct{ env, typ, nickname string }

func (res *Result) buildGraph(states map[string]*ParamState) *graph.Graph {
	repo := res.Repo
	prefix := repo.Settings.Prefix
	b := graph.NewBuilder(len(repo.Components))
	// components by (env, type, nickname): a reference is looked up without building its id
	index := make(map[compKey]int32, len(repo.Components))
	refs := 0
	for i, c := range repo.Components {
		index[compKey{c.Env, c.Type, c.Nickname}] = int32(i)
		refs += len(c.References)
	}
	b.ReserveEdges(refs)
	for _, c := range repo.Components {
		gc := graph.Component{ID: c.ID(), Env: c.Env, Type: c.Type, Nickname: c.Nickname,
			ConfigPath: ConfigParam(prefix, c.Type, c.Nickname), RuntimePath: RuntimeParam(prefix, c.Type, c.Nickname),
			Files: c.Files, ConfigHash: c.Hash, Broken: c.Broken, RuntimeStatus: graph.RuntimeUnknown}
		for _, name := range c.SubRuntimes {
			gc.SubRuntimePaths = append(gc.SubRuntimePaths, RuntimeParam(prefix, c.Type, name))
		}
		if st, ok := states[c.Env]; ok {
			rt := st.runtimeOf(c)
			gc.RuntimeStatus, gc.RuntimeHash, gc.RuntimeKeys = rt.Status, rt.Hash, rt.Keys
		}
		if _, err := b.AddComponent(gc); err != nil {
			panic(err) // ids are unique by construction (one folder per component)
		}
	}
	// Each component's edges are added by target index (its sources in reference order), so that
	// the builder receives them ordered by (From, To) and need not sort them.
	var out []pendingEdge
	for i, c := range repo.Components {
		out = out[:0]
		for _, r := range c.References {
			src := graph.Source{Kind: r.Kind, Pointer: r.Pointer, Rule: r.Rule, Keys: r.Keys, Redeploy: r.Redeploy}
			t, n, _ := strings.Cut(r.Target, "/")
			to, ok := index[compKey{c.Env, t, n}]
			if !ok {
				// not a component: perhaps a runtime another component writes per sub-object
				if owner, sub := repo.SubRuntimeOwner(c.Env, r.Target); sub {
					to, ok = b.Lookup(owner.ID())
					src.Runtime = RuntimeParam(prefix, t, n)
				}
			}
			if !ok {
				res.Diagnostics = append(res.Diagnostics, Diagnostic{Severity: SevError, Code: CodeMissingRef, File: c.File(),
					Pointer: r.Pointer, Component: c.ID(),
					Message: fmt.Sprintf("%s references %s (%s), which is not defined in %s", r.Rule, r.Target, r.Kind, c.Env)})
				continue
			}
			out = append(out, pendingEdge{to, src})
		}
		slices.SortStableFunc(out, func(x, y pendingEdge) int { return cmp.Compare(x.to, y.to) })
		for _, e := range out {
			b.AddEdge(int32(i), e.to, e.src)
		}
	}
	g := b.Graph()
	for _, cyc := range g.Cycles() {
		i, _ := g.Index(cyc[0])
		res.Diagnostics = append(res.Diagnostics, Diagnostic{Severity: SevError, Code: CodeCycle,
			File: repo.Components[i].File(), Component: cyc[0], Message: "dependency cycle: " + cyc.String()})
	}
	for env, st := range states {
		for ref := range st.Configs {
			if _, ok := g.Index(env + "/" + ref); !ok {
				res.Orphans = append(res.Orphans, env+"/"+ref)
			}
		}
	}
	sort.Strings(res.Orphans)
	return g
}
