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
// demand, no EFS), workspaces under /tmp/karma/work, and claimLease as the idempotency lease. An HTTPS
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
	return app.New(c, app.Options{Repo: app.RepoCache, RemoteOnly: true, Log: log, AWS: cfg, Visibility: claimLeaseSeconds * time.Second, Count: count}), nil
}

// claimLeaseSeconds is how long a function's idempotency claim on a message holds unless renewed
// (pipeline.Idempotency renews it every third of that while the handler runs). A function that
// dies with the message (its timeout, a crash) leaves its claim to run out within the lease,
// which must be before the message comes back: each stage queue's visibility timeout is at
// least its function's timeout plus this (terraform/main.tf; terraform's
// TestQueueVisibilityOutlastsTheFunctionAndItsClaim checks it). A lease outlasting the
// visibility timeout (it was the 16 minutes of the longest, against 6 for ingest's queue) made
// each redelivery find the dead function's claim and be put back (InProgress), spending a
// receive of the maxReceiveCount SQS allows before it dead-letters the message with no reason.
const claimLeaseSeconds = 60
