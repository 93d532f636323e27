package gitrepo_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
	"github.com/usekarma/karma/shared/model/modeltest"
)

// BenchmarkFetchPushedCommitWarm10k: a 10,000-component repository served by git http-backend on
// loopback, already in the cache; each iteration pushes one commit changing one component's config (untimed)
// and times the fetch of that commit into the cache. Target (docs/performance.md): <= 1 s.
func BenchmarkFetchPushedCommitWarm10k(b *testing.B) {
	gittest.Need(b)
	o := gittest.NewOrigin(b, "config.git", map[string]string{"README.md": "generated\n"})
	if _, err := modeltest.Generate(o.Work, modeltest.Spec{Components: 10_000, Envs: []string{"dev", "prod"}, Layers: 10, RefsPerComponent: 3, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	first := o.Commit(b, "10,000 components", nil)
	gittest.Git(b, o.Bare, "repack", "-adq")
	root := filepath.Dir(o.Bare)
	srv := gittest.NewHTTPServer(b, root, "tok")
	tokenFile := filepath.Join(b.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("tok"), 0o600)
	cache, err := gitrepo.OpenCache(filepath.Join(b.TempDir(), "cache"), gitrepo.Remote{URL: srv.RepoURL(root, o.Bare), TokenFile: tokenFile}, "")
	if err != nil {
		b.Fatal(err)
	}
	defer cache.Close()
	if err := cache.Fetch(ctx, first); err != nil { // the cold clone, untimed
		b.Fatal(err)
	}
	configs, _ := filepath.Glob(filepath.Join(o.Work, "iac", "prod", "*", "*", "config.json"))
	if len(configs) == 0 {
		b.Fatal("no prod config generated")
	}
	target := configs[len(configs)/2] // one component's config, four folders deep
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		os.WriteFile(target, []byte(fmt.Sprintf("{\"change\": %d}\n", i)), 0o644)
		sha := o.Commit(b, fmt.Sprintf("change %d", i), nil)
		b.StartTimer()
		if err := cache.Fetch(ctx, sha); err != nil {
			b.Fatal(err)
		}
	}
}
