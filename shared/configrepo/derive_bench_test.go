package configrepo_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/model/modeltest"
	"github.com/usekarma/karma/shared/params"
)

// runtimes is a parameter store holding one runtime document per component.
type runtimes []params.Parameter

func (s runtimes) Get(context.Context, string) (params.Parameter, error) {
	return params.Parameter{}, params.ErrNotFound
}
func (s runtimes) GetByPath(context.Context, string) ([]params.Parameter, error) { return s, nil }
func (runtimes) Put(context.Context, params.PutInput) (params.PutResult, error) {
	return params.PutResult{}, fmt.Errorf("read-only")
}
func (runtimes) Delete(context.Context, string) error { return fmt.Errorf("read-only") }

// BenchmarkBuildWithOverrides: Source.Build of a change request replacing one component's
// config file (one of 50, in turn, as in cmd/karma's BenchmarkPipeline) at a commit of a
// generated repository of 50 and of 2,000 components, with a runtime per component in the
// parameter store.
func BenchmarkBuildWithOverrides(b *testing.B) {
	for _, n := range []int{50, 2000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			dir := b.TempDir()
			if _, err := modeltest.Generate(dir, modeltest.Spec{Components: n, Envs: []string{"prod"}, Layers: 5, RefsPerComponent: 3, Seed: 1}); err != nil {
				b.Fatal(err)
			}
			var files []string
			filepath.WalkDir(filepath.Join(dir, "iac", "prod"), func(p string, d os.DirEntry, err error) error {
				if err == nil && d.Name() == "config.json" {
					rel, _ := filepath.Rel(dir, p)
					files = append(files, filepath.ToSlash(rel))
				}
				return nil
			})
			sort.Strings(files)
			var overrides []map[string][]byte
			for i := 0; i < len(files) && len(overrides) < 50; i += max(1, len(files)/50) {
				data, err := os.ReadFile(filepath.Join(dir, files[i]))
				if err != nil {
					b.Fatal(err)
				}
				changed := bytes.Replace(data, []byte("{"), []byte(`{"bench_revision": 2, `), 1)
				overrides = append(overrides, map[string][]byte{files[i]: changed})
			}
			o := gittest.OriginFrom(b, "config.git", dir)
			sha := o.Head(b)
			repo, err := gitrepo.OpenCache(filepath.Join(b.TempDir(), "cache"), gitrepo.Remote{URL: o.Bare}, "")
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { repo.Close() })
			var store runtimes
			src := &configrepo.Source{Repo: repo, Params: func(string) params.Store { return store }}
			res, err := src.Build(ctx, "prod", sha, nil)
			if err != nil {
				b.Fatal(err)
			}
			for i, c := range res.Repo.Components {
				store = append(store, params.Parameter{Name: model.RuntimeParam("/iac", c.Type, c.Nickname),
					Value: fmt.Sprintf(`{"arn": "arn:aws:x:us-east-1:111122223333:%s", "id": "%s-%d", "name": %q}`, c.Nickname, strings.ToUpper(c.Type), i, c.Nickname), Version: 1})
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				res, err := src.Build(ctx, "prod", sha, overrides[i%len(overrides)])
				if err != nil || len(res.Repo.Components) != n {
					b.Fatalf("%v: %d components", err, len(res.Repo.Components))
				}
				i++
			}
		})
	}
}
