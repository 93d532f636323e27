package app_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/usekarma/karma/shared/app"
	"github.com/usekarma/karma/shared/awscount"
	"github.com/usekarma/karma/shared/config"
	"github.com/usekarma/karma/shared/dynamo"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/terraform"
)

// With Options.Count, the stores' requests are counted by service and operation: DynamoDB and
// SSM through the AWS configuration, loaded from the environment or given (as Lambda gives it),
// Neptune through the Gremlin client.
func TestCountsRequests(t *testing.T) {
	_, ddbEP, gremlin := awsEnv(t)
	ctx := context.Background()
	prefix := fmt.Sprintf("cnt%06x", rand.Uint32()&0xffffff)
	ddb, err := dynamo.NewClient(ctx, ddbEP)
	if err != nil {
		t.Fatal(err)
	}
	tables := dynamo.DefaultTableNames(prefix)
	if err := dynamo.CreateTables(ctx, ddb, tables); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dynamo.DeleteTables(context.Background(), ddb, tables) })
	given, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, give := range map[string]bool{"loaded": false, "given": true} {
		t.Run(name, func(t *testing.T) {
			cfg := config.Defaults()
			cfg.StateDir = t.TempDir()
			cfg.Params, cfg.Graph, cfg.Audit = config.AWS, config.AWS, config.AWS
			cfg.AuditTable = tables.Audit
			cfg.NeptuneEndpoint, cfg.NeptuneNamespace = gremlin, prefix
			count := awscount.New(awscount.Options{})
			opts := app.Options{Terraform: &terraform.Noop{}, Count: count}
			if give {
				opts.AWS = &given
			}
			a := app.New(cfg, opts)
			defer a.Close()
			log, err := a.Audit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := log.Chains(ctx); err != nil {
				t.Fatal(err)
			}
			lin, err := a.Lineage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := lin.Deployments(ctx, "prod/vpc/core"); err != nil {
				t.Fatal(err)
			}
			ps, err := a.Params(ctx, "prod")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ps.Put(ctx, params.PutInput{Name: "/" + prefix + "/" + name + "/vpc/core/runtime", Value: `{}`}); err != nil {
				t.Fatal(err)
			}
			got := count.Snapshot()
			for _, s := range []string{awscount.DynamoDB, awscount.Neptune, awscount.SSM} {
				if got.Service(s) == 0 {
					t.Errorf("no %s request counted: %v", s, got)
				}
			}
			// Counted once per request: the one Put is one PutParameter — or more when the SDK
			// retried it (a loaded stand-in), a retry being a request too. A counter wired twice
			// would count every request twice, the single GetParameter too.
			if got[awscount.Key{Service: awscount.SSM, Operation: "PutParameter"}] < 1 || got[awscount.Key{Service: awscount.SSM, Operation: "GetParameter"}] != 1 {
				t.Errorf("SSM PutParameter counted %v times and GetParameter %v, want at least 1 and exactly 1: %v",
					got[awscount.Key{Service: awscount.SSM, Operation: "PutParameter"}], got[awscount.Key{Service: awscount.SSM, Operation: "GetParameter"}], got)
			}
		})
	}
	// The given configuration itself is left as it was: nothing else counts into this App's counter.
	if len(given.APIOptions) != 0 {
		t.Errorf("the given AWS configuration was changed: %d API options", len(given.APIOptions))
	}
}
