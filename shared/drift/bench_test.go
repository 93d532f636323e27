package drift

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/model/modeltest"
	"github.com/usekarma/karma/shared/params"
)

// Benchmarks of the drift check on the embedded default (docs/performance.md). Target: the
// Git-vs-Parameter-Store and runtime comparisons of 10,000 components in at most 5 s, with one
// paged read per environment, not a call per component. Timings are never asserted.

// driftBench is a generated repository of 10,000 components (dev and prod, 5,000 each), every
// component deployed: its config and runtime published with Karma's provenance, one change set
// per environment recording every deployment; perEnv configs and runtimes of each environment
// then overwritten outside Karma.
type driftBench struct {
	checker *Checker
	inputs  map[string]Inputs // per environment, read once: for the comparisons alone
}

func newDriftBench(b *testing.B, perEnv int) *driftBench {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	if _, err := modeltest.Generate(dir, modeltest.Spec{Components: 10_000, Envs: []string{"dev", "prod"}, Layers: 10, RefsPerComponent: 3, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	db, err := embedded.Open(filepath.Join(b.TempDir(), "karma.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	sets, err := embedded.NewChangeSets(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	stores := map[string]params.Store{}
	src := dirSource{dir}
	for _, env := range []string{"dev", "prod"} {
		if stores[env], err = embedded.NewParamStore(db, env); err != nil {
			b.Fatal(err)
		}
		res, err := src.Build(ctx, env, head, nil)
		if err != nil {
			b.Fatal(err)
		}
		deployAll(b, stores[env], sets, env, res.Repo.Components, perEnv)
	}
	bench := &driftBench{checker: &Checker{Source: src, ChangeSets: sets, Params: func(env string) (params.Store, error) { return stores[env], nil }},
		inputs: map[string]Inputs{}}
	all, err := sets.List(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for env, st := range stores {
		res, _ := src.Build(ctx, env, head, nil)
		ps, err := params.GetByPathDescribed(ctx, st, "/iac")
		if err != nil {
			b.Fatal(err)
		}
		bench.inputs[env] = Inputs{Env: env, Prefix: "/iac", Commit: head, Components: res.Repo.Components, Params: ps, State: StateOf(all, env)}
	}
	return bench
}

// deployAll publishes every component's config and runtime as a deployment does, records the
// deployments in one change set, then overwrites drifted configs and runtimes outside Karma.
func deployAll(b *testing.B, store params.Store, sets *embedded.ChangeSets, env string, comps []*model.Component, drifted int) {
	b.Helper()
	ctx := context.Background()
	cs := &changeset.ChangeSet{ID: "cs-" + env, Env: env, Commit: head, CreatedAt: time.Unix(1, 0), Nodes: map[string]*changeset.Node{}}
	put := func(name, value, description string) {
		if _, err := store.Put(ctx, params.PutInput{Name: name, Value: value, Description: description}); err != nil {
			b.Fatal(err)
		}
	}
	for i, c := range comps {
		dep := fmt.Sprintf("dep-%016x", i)
		what := "deployment=" + dep + " change=" + cs.ID
		runtime, hash := model.Canonical(map[string]any{"arn": "arn:aws:x:::" + c.ID(), "id": c.Nickname, "url": "https://" + c.Nickname + ".example.com"})
		put(model.ConfigParam("/iac", c.Type, c.Nickname), string(c.Resolved), params.Provenance(what, string(c.Resolved)))
		put(model.RuntimeParam("/iac", c.Type, c.Nickname), string(runtime), params.Provenance(what, string(runtime)))
		cs.Nodes[c.ID()] = &changeset.Node{Component: c.ID(), State: changeset.Applied, DeploymentID: dep, Config: c.Resolved,
			Outcome: &changeset.Outcome{RuntimeVersion: 1, RuntimeHash: hash, Runtime: runtime}}
		if i < drifted {
			put(model.ConfigParam("/iac", c.Type, c.Nickname), `{"changed":"outside"}`, "")
			put(model.RuntimeParam("/iac", c.Type, c.Nickname), `{"id":"outside"}`, "")
		}
	}
	if _, err := sets.Create(ctx, cs); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDrift10k is the whole check of both environments, as `karma drift` runs it on the
// embedded default: the head built (uncached here; configrepo caches it per commit), the change
// sets listed, each environment's parameters read in one GetByPath, every component compared.
func BenchmarkDrift10k(b *testing.B) {
	bench := newDriftBench(b, 10)
	var rep *Report
	for b.Loop() {
		var err error
		if rep, err = bench.checker.Check(context.Background(), Options{}); err != nil {
			b.Fatal(err)
		}
	}
	reportDrift(b, rep)
}

// BenchmarkDriftCompare10k is the comparisons alone (CompareParameters over what was read).
func BenchmarkDriftCompare10k(b *testing.B) {
	bench := newDriftBench(b, 10)
	var rep Report
	for b.Loop() {
		rep = Report{}
		for _, env := range []string{"dev", "prod"} {
			c := CompareParameters(bench.inputs[env])
			rep.Envs = append(rep.Envs, EnvReport{Env: env, Compared: c.Compared, Findings: c.Findings})
		}
	}
	reportDrift(b, &rep)
}

func reportDrift(b *testing.B, rep *Report) {
	b.Helper()
	compared, found := 0, 0
	for _, e := range rep.Envs {
		compared += e.Compared
		found += len(e.Findings)
		if len(e.Errors) > 0 {
			b.Fatalf("%s: %v", e.Env, e.Errors)
		}
	}
	if compared != 10_000 || found != 40 {
		b.Fatalf("compared %d components, found %d drifts; want 10,000 and 40 (10 configs and 10 runtimes per environment)", compared, found)
	}
	b.ReportMetric(float64(compared)*float64(b.N)/b.Elapsed().Seconds(), "components/s")
}
