package main

import (
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/usekarma/karma/shared/app"
	"github.com/usekarma/karma/shared/awscount"
	"github.com/usekarma/karma/shared/config"
)

// newApp is the composition root of a function: the configuration from the environment
// (docs/configuration.md) with every backend on AWS unless KARMA_BACKEND or a per-store variable
// says otherwise, the config repository as a cache clone of KARMA_GIT_URL under /tmp (fetched on
// demand, no EFS), workspaces under /tmp/karma/work, and the queues' visibility (16 minutes, at
// least the longest function timeout, as terraform/ sets it) as the idempotency lease. An HTTPS
// token for the repository comes from the Secrets Manager secret KARMA_GIT_TOKEN_SECRET names
// (shared/app fetches it when the repository is first opened). count, when not nil, counts the
// requests the function makes to AWS (shared/awscount; the tests measure with it).
func newApp(getenv func(string) string, cfg *aws.Config, log *slog.Logger, count *awscount.Counter) (*app.App, error) {
	c, err := config.Load(func(k string) string {
		if k == "KARMA_BACKEND" && getenv(k) == "" {
			return config.AWS
		}
		return getenv(k)
	})
	if err != nil {
		return nil, err
	}
	if c.WorkDir == "" {
		c.WorkDir = "/tmp/karma/work" // Lambda's only writable place
	}
	if c.CacheDir == "" {
		c.CacheDir = "/tmp/karma"
	}
	if c.StateDir == config.Defaults().StateDir {
		c.StateDir = "/tmp/karma/state" // only used by a store configured embedded (tests)
	}
	return app.New(c, app.Options{Repo: app.RepoCache, RemoteOnly: true, Log: log, AWS: cfg, Visibility: 16 * time.Minute, Count: count}), nil
}
