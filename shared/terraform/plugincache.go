package terraform

import (
	"context"
	"fmt"
	"os"
)

// lockPluginCache takes, when terraform is given a provider plugin cache (TF_PLUGIN_CACHE_DIR,
// an existing folder), an exclusive lock on <cache>/.karma.lock for
// one init, waiting for it until ctx is done. Terraform's cache is not safe for concurrent
// inits (its CLI configuration docs; hashicorp/terraform#31964): two workspaces installing the
// same provider at once, the plan and apply functions sharing a cache on EFS, fail with a
// package matching none of the lock file's checksums, or leave a partial one in the cache. A
// plugin_cache_dir set in a CLI configuration file is not seen here.
func lockPluginCache(ctx context.Context) (unlock func(), err error) {
	dir := os.Getenv("TF_PLUGIN_CACHE_DIR")
	if dir == "" {
		return func() {}, nil
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return func() {}, nil
	}
	unlock, err = lockRoot(ctx, dir) // <dir>/.karma.lock, which terraform's cache ignores
	if err != nil {
		return nil, fmt.Errorf("locking the provider plugin cache %s (TF_PLUGIN_CACHE_DIR) for init: %w", dir, err)
	}
	return unlock, nil
}
