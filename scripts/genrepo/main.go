// Command genrepo writes a synthetic config repository (see shared/model/modeltest) for
// benchmarks, and optionally builds it with model.Build to measure time and memory:
//
//	go run ./scripts/genrepo -dir /tmp/repo -n 100000
//	go run ./scripts/genrepo -dir /tmp/repo -build     # build it (generating it first if -dir is missing)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/model/modeltest"
)

func main() {
	dir := flag.String("dir", "", "repository folder to write (or build)")
	n := flag.Int("n", 100_000, "components, over all environments")
	envs := flag.String("envs", "dev,staging,prod,dr", "comma-separated environments")
	layers := flag.Int("layers", 20, "dependency layers")
	refs := flag.Int("refs", 3, "references per component")
	seed := flag.Int64("seed", 1, "random seed")
	build := flag.Bool("build", false, "run model.Build on the repository (generated first if -dir does not exist) and report time and memory")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the build to this file")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "genrepo: -dir is required")
		os.Exit(2)
	}
	if !*build || !exists(*dir) {
		start := time.Now()
		st, err := modeltest.Generate(*dir, modeltest.Spec{Components: *n, Envs: strings.Split(*envs, ","),
			Layers: *layers, RefsPerComponent: *refs, Seed: *seed})
		if err != nil {
			fmt.Fprintln(os.Stderr, "genrepo:", err)
			os.Exit(1)
		}
		fmt.Printf("generated %s: %d components, %d references, %d edges, %d files, %.1f MB in %s\n",
			*dir, st.Components, st.References, st.Edges, st.Files, float64(st.Bytes)/1e6, time.Since(start).Round(time.Millisecond))
	}
	if !*build {
		return
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "genrepo:", err)
			os.Exit(1)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "genrepo:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	res, err := model.Build(context.Background(), *dir, model.BuildOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "genrepo:", err)
		os.Exit(1)
	}
	took := time.Since(start)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("built %s: %d components, %d edges, %d errors, %d warnings in %s (heap in use %.0f MB, total from OS %.0f MB)\n",
		*dir, res.Graph.Len(), len(res.Graph.Edges), len(res.Diagnostics.Errors()), len(res.Diagnostics.Warnings()),
		took.Round(time.Millisecond), float64(ms.HeapInuse)/(1<<20), float64(ms.Sys)/(1<<20))
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
