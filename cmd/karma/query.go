package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/usekarma/karma/shared/neptune"
)

// newGraphQueryCmd is `karma graph query`: a read-only Gremlin query against Neptune (or a
// Gremlin Server), results as JSON lines.
func newGraphQueryCmd(g *globals) *cobra.Command {
	_ = g // the query needs none of the repository or state flags
	var query, endpoint, region string
	var iam, allowWrite bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "query --gremlin '<traversal>'",
		Short: "Run a read-only Gremlin query against the Neptune graph; print each result as a JSON line",
		Long: `Submits the Gremlin string to Neptune (script submission: the one place Karma sends Gremlin as
text; its own reads and writes are bytecode) and prints each result as one JSON line. Vertices
and edges print as {"type","id","label"} (edges with "outV" and "inV"); use elementMap() or
valueMap() for properties.

The graph (see docs/graph-model.md): vertices "component" (id <env>/<type>/<nickname>), edges
"depends_on" (dependent -> dependency) and "emits_runtime_to" (the reverse), lineage vertices
"change", "deployment", "root" with edges "triggered", "deploys", "caused_by", "rooted_in".

The command is read-only: a query calling addV, addE, property, drop, mergeV, mergeE (inside
sideEffect too), io().read/write, or a lambda is refused (exit 2) unless --allow-write. This
guards against mistakes; for a guarantee, connect with an IAM role allowed only
neptune-db:ReadDataViaQuery.

Examples:
  karma graph query --gremlin "g.V().hasLabel('component').has('env','prod').count()"
  karma graph query --gremlin "g.V('prod/vpc/core').in('depends_on').id()"
  karma graph query --iam --gremlin "g.V('prod/vpc/core').inE('deploys').outV().elementMap()"`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			usage := func(format string, a ...any) error {
				return &usageError{cmd: c.CommandPath(), err: fmt.Errorf(format, a...)}
			}
			if strings.TrimSpace(query) == "" {
				return usage("--gremlin is required")
			}
			if endpoint == "" {
				return usage("--endpoint is required (or set KARMA_NEPTUNE_ENDPOINT), e.g. wss://<cluster>:8182/gremlin")
			}
			if w := neptune.MutatingSteps(query); len(w) > 0 && !allowWrite {
				return usage("refusing a query that may write the graph (%s): this command is read-only; add --allow-write to run it anyway",
					strings.Join(w, ", "))
			}
			for _, s := range neptune.StepCalls(query) {
				if s == "profile" {
					return usage("profile() results cannot be decoded by the Gremlin Go driver: run it in a Neptune notebook or the Gremlin console")
				}
			}
			if iam && region == "" {
				return usage("--iam needs --region (or AWS_REGION)")
			}
			ctx := c.Context()
			client, err := neptune.Open(ctx, neptune.Options{Endpoint: endpoint, IAM: iam, Region: region, RequestTimeout: timeout})
			if err != nil {
				return err
			}
			defer client.Close()
			res, err := client.Submit(ctx, query)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(c.OutOrStdout())
			enc.SetEscapeHTML(false)
			for _, r := range res {
				if err := enc.Encode(neptune.JSONValue(r)); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&query, "gremlin", "", "the Gremlin traversal, e.g. \"g.V().hasLabel('component').count()\"")
	f.StringVar(&endpoint, "endpoint", os.Getenv("KARMA_NEPTUNE_ENDPOINT"), "Neptune websocket endpoint, wss://<cluster>:8182/gremlin [KARMA_NEPTUNE_ENDPOINT]")
	f.BoolVar(&iam, "iam", envBool("KARMA_NEPTUNE_IAM"), "sign the connection with SigV4 (Neptune IAM authentication) [KARMA_NEPTUNE_IAM]")
	f.StringVar(&region, "region", envOr("AWS_REGION", os.Getenv("AWS_DEFAULT_REGION")), "AWS region of the cluster, for --iam [AWS_REGION]")
	f.BoolVar(&allowWrite, "allow-write", false, "run the query even if it may write the graph")
	f.DurationVar(&timeout, "timeout", 2*time.Minute, "give up on the query after this long")
	return c
}

func envBool(key string) bool {
	switch strings.ToLower(os.Getenv(key)) {
	case "1", "true", "yes":
		return true
	}
	return false
}
