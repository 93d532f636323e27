//go:build unix

package model_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/model/modeltest"
)

// The floor of a build (issue 12): a program that only walks the repository, reads every
// config.json and decodes it with encoding/json, nothing else, one file after another (the least
// CPU for that work). model.Build's target is at most 1.3 times the floor's CPU time (user +
// system, from getrusage), measured in the same run: BenchmarkBuildVsFloor10k runs the two
// alternately on the same generated repository, so the machine's load weighs on both alike.

// floorWalk walks dir, reads every config.json and decodes it into an any; it returns how many
// files it decoded.
func floorWalk(dir string) (int, error) {
	n := 0
	err := filepath.WalkDir(filepath.Join(dir, "iac"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "config.json" {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			return err
		}
		n++
		return nil
	})
	return n, err
}

// cpuTime is the process's user + system CPU time so far (every thread, the collector's too).
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measured runs fn after a collection (so that neither side pays for the other's garbage) and
// returns the CPU and wall time it took.
func measured(tb testing.TB, fn func()) (cpu, wall time.Duration) {
	runtime.GC()
	c0, w0 := cpuTime(tb), time.Now()
	fn()
	return cpuTime(tb) - c0, time.Since(w0)
}

func BenchmarkBuildVsFloor10k(b *testing.B) {
	dir := b.TempDir()
	st, err := modeltest.Generate(dir, modeltest.Spec{Components: 10_000, Envs: []string{"dev", "prod"}, Layers: 10, RefsPerComponent: 3, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	var floorCPU, buildCPU, floorWall, buildWall time.Duration
	for b.Loop() {
		var files int
		c, w := measured(b, func() { files, err = floorWalk(dir) })
		if err != nil || files != st.Files {
			b.Fatalf("floor: %d files of %d: %v", files, st.Files, err)
		}
		floorCPU, floorWall = floorCPU+c, floorWall+w
		var res *model.Result
		c, w = measured(b, func() { res, err = model.Build(context.Background(), dir, model.BuildOptions{}) })
		if err != nil {
			b.Fatal(err)
		}
		if errs := res.Diagnostics.Errors(); len(errs) > 0 || len(res.Repo.Components) != st.Components {
			b.Fatalf("build: %d components of %d, %d errors", len(res.Repo.Components), st.Components, len(errs))
		}
		buildCPU, buildWall = buildCPU+c, buildWall+w
	}
	n := float64(b.N)
	b.ReportMetric(floorCPU.Seconds()*1e3/n, "floor-cpu-ms")
	b.ReportMetric(buildCPU.Seconds()*1e3/n, "build-cpu-ms")
	b.ReportMetric(floorWall.Seconds()*1e3/n, "floor-wall-ms")
	b.ReportMetric(buildWall.Seconds()*1e3/n, "build-wall-ms")
	b.ReportMetric(float64(buildCPU)/float64(floorCPU), "cpu-ratio")
}
