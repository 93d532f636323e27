package model_test

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/model/modeltest"
)

// Benchmarks of model.Build (no parameter store) on generated repositories. Targets (see
// docs/performance.md): 10,000 components under 1 s; 100,000 under 10 s and 600 MiB resident.
// BenchmarkBuildVsFloor10k (floor_bench_test.go) compares the CPU time with the floor.
// Timings are never asserted: run `make bench`.

func BenchmarkBuild10k(b *testing.B) {
	benchmarkBuild(b, modeltest.Spec{Components: 10_000, Envs: []string{"dev", "prod"}, Layers: 10, RefsPerComponent: 3, Seed: 1})
}

func BenchmarkBuild100k(b *testing.B) {
	if testing.Short() {
		b.Skip("100,000 components: skipped with -short")
	}
	benchmarkBuild(b, modeltest.Spec{Components: 100_000, Envs: []string{"dev", "staging", "prod", "dr"}, Layers: 20, RefsPerComponent: 3, Seed: 1})
}

func benchmarkBuild(b *testing.B, spec modeltest.Spec) {
	dir := b.TempDir()
	st, err := modeltest.Generate(dir, spec) // b.Loop runs this function once: generated once, untimed
	if err != nil {
		b.Fatal(err)
	}
	var res *model.Result
	for b.Loop() {
		res, err = model.Build(context.Background(), dir, model.BuildOptions{})
		if err != nil {
			b.Fatal(err)
		}
	}
	if errs := res.Diagnostics.Errors(); len(errs) > 0 {
		b.Fatalf("%d error diagnostics, first: %s", len(errs), errs[0])
	}
	b.ReportMetric(float64(st.Components)*float64(b.N)/b.Elapsed().Seconds(), "components/s")
	b.ReportMetric(float64(st.References), "refs")
	b.ReportMetric(float64(len(res.Graph.Edges)), "edges")
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "MB-retained")
	runtime.KeepAlive(res)
}

func TestGenerateLoads(t *testing.T) {
	dir := t.TempDir()
	st, err := modeltest.Generate(dir, modeltest.Spec{Components: 200, Envs: []string{"dev", "prod"}, Layers: 5, RefsPerComponent: 3, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	res, err := model.Build(context.Background(), dir, model.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range res.Diagnostics.Errors() {
		t.Errorf("diagnostic: %s", d)
	}
	if got := len(res.Repo.Components); got != st.Components || got != 200 {
		t.Errorf("components: got %d, generated %d, want 200", got, st.Components)
	}
	refs, kinds, extended, based := 0, map[string]int{}, 0, 0
	for _, c := range res.Repo.Components {
		if c.Broken {
			t.Errorf("%s is broken", c.ID())
		}
		refs += len(c.References)
		for _, r := range c.References {
			kinds[r.Kind]++
		}
		for _, f := range c.Files {
			switch {
			case strings.HasSuffix(f, "/defaults/config.json"):
				extended++
			case strings.HasPrefix(f, "iac/_base/"):
				based++
			}
		}
	}
	if refs != st.References {
		t.Errorf("references: got %d, generated %d", refs, st.References)
	}
	if got := len(res.Graph.Edges); got != st.Edges {
		t.Errorf("edges: got %d, generated %d", got, st.Edges)
	}
	for _, k := range []string{model.RefExplicit, model.RefInferred, model.RefInterpolation} {
		if kinds[k] == 0 {
			t.Errorf("no %s references generated (%v)", k, kinds)
		}
	}
	if extended == 0 || based == 0 {
		t.Errorf("want some components extending a base template (%d) and some with a base layer (%d)", extended, based)
	}
	waves, err := res.Graph.Waves()
	if err != nil {
		t.Fatal(err)
	}
	if len(waves) != 5 {
		t.Errorf("waves: got %d, want 5 (one per layer)", len(waves))
	}
	// Deterministic: the same Spec gives the same repository.
	dir2 := t.TempDir()
	if _, err := modeltest.Generate(dir2, modeltest.Spec{Components: 200, Envs: []string{"dev", "prod"}, Layers: 5, RefsPerComponent: 3, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	res2, err := model.Build(context.Background(), dir2, model.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range res.Repo.Components {
		if c2 := res2.Repo.Components[i]; c.ID() != c2.ID() || c.Hash != c2.Hash {
			t.Fatalf("not deterministic: %s %s vs %s %s", c.ID(), c.Hash, c2.ID(), c2.Hash)
		}
	}
}

func TestGenerateFanout(t *testing.T) {
	dir := t.TempDir()
	st, err := modeltest.GenerateFanout(dir, 2000, 150)
	if err != nil {
		t.Fatal(err)
	}
	res, err := model.Build(context.Background(), dir, model.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if errs := res.Diagnostics.Errors(); len(errs) > 0 {
		t.Fatalf("%d errors, first: %s", len(errs), errs[0])
	}
	hub, ok := res.Graph.Index(st.Hub)
	if !ok {
		t.Fatalf("hub %q not in the graph", st.Hub)
	}
	imp, err := res.Graph.Downstream([]int32{hub}, graph.ImpactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(imp.Affected) - 1; got != 150 {
		t.Errorf("downstream of %s: got %d, want 150", st.Hub, got)
	}
}
