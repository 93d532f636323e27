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
			// Counted once per request: the one Put is one PutParameter, the one read of the
			// parameter one GetParameter — or more when the SDK retried them (a loaded stand-in: a
			// retry is a request too). A counter wired twice would count every request twice, so
			// every SDK operation an even number of times; retries make one of these three odd
			// only if all three were retried.
			sdk := []awscount.Key{{Service: awscount.SSM, Operation: "PutParameter"}, {Service: awscount.SSM, Operation: "GetParameter"},
				{Service: awscount.DynamoDB, Operation: "Query"}}
			odd := false
			for _, k := range sdk {
				if got[k] < 1 {
					t.Errorf("%s %s not counted: %v", k.Service, k.Operation, got)
				}
				odd = odd || int(got[k])%2 == 1
			}
			if !odd {
				t.Errorf("every SDK request counted an even number of times, as by a counter wired twice: %v", got)
			}
		})
	}
	// The given configuration itself is left as it was: nothing else counts into this App's counter.
	if len(given.APIOptions) != 0 {
		t.Errorf("the given AWS configuration was changed: %d API options", len(given.APIOptions))
	}
}
