package model_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/usekarma/karma/shared/model"
)

// BenchmarkRuleLinking builds repositories where every reference comes from a rule of karma.json:
// n/4 hosted zones, n/4 sites finding theirs by name, n/4 APIs with the lambda of their nickname
// (n/4 lambdas, two functions each) and a *_runtime_path to another API's function. The cost per
// component must stay flat as n grows (attributes and runtimes are indexed once per build, never
// scanned per reference). Timings are reported, never asserted.
func BenchmarkRuleLinking(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			dir := b.TempDir()
			writeRuleRepo(b, dir, n/4)
			var res *model.Result
			var err error
			for b.Loop() {
				res, err = model.Build(context.Background(), dir, model.BuildOptions{})
				if err != nil {
					b.Fatal(err)
				}
			}
			if errs := res.Diagnostics.Errors(); len(errs) > 0 {
				b.Fatalf("%d errors, first: %s", len(errs), errs[0])
			}
			if got, want := len(res.Graph.Edges), 3*(n/4); got != want {
				b.Fatalf("edges %d, want %d", got, want)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/component")
		})
	}
}

func writeRuleRepo(b *testing.B, dir string, k int) {
	b.Helper()
	write := func(rel, content string) {
		p := filepath.Join(dir, "iac", "prod", filepath.FromSlash(rel), "config.json")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for i := range k {
		write(fmt.Sprintf("route53-zone/z%d", i), fmt.Sprintf(`{"zone_name":"Zone%d.example."}`, i))
		write(fmt.Sprintf("serverless-site/s%d", i), fmt.Sprintf(`{"enable_custom_domain":true,"route53_zone_name":"zone%d.example"}`, i))
		write(fmt.Sprintf("lambda/a%d", i), fmt.Sprintf(`{"functions":{"f%d":{},"g%d":{}}}`, i, i))
		write(fmt.Sprintf("serverless-api/a%d", i), fmt.Sprintf(`{"peer_runtime_path":"/iac/lambda/g%d/runtime"}`, (i+1)%k))
	}
}
