package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/usekarma/karma/shared/config"
	"github.com/usekarma/karma/shared/queue"
	"github.com/usekarma/karma/shared/terraform"
)

// globals are the flags every command shares.
type globals struct {
	repo          string
	stateDir      string
	prefix        string
	paramsBackend string
	cfg           config.Config // the one configuration (KARMA_CONFIG, environment)
	server        string        // --server: a running Karma's API instead of the stores

	// Test hooks (never set by flags): a Terraform runner to use instead of the binary, and a
	// wrapper around the transport (e.g. one that delivers every message twice).
	testRunner    terraform.Runner
	testTransport func(queue.Queue) queue.Queue
	testRetryBase time.Duration // the first retry delay (default 1 s)
	// testBeforeApprove runs in karma apply after the plans are shown and confirmed, before the
	// approval is recorded (a test makes another process's plan there).
	testBeforeApprove func(*stack)
}

func newRootCmd() *cobra.Command { return newRootCmdWith(&globals{}) }

func newRootCmdWith(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "karma",
		Short: "Infrastructure that deploys as a consequence of change",
		Long: `Karma models infrastructure as a graph of components (iac/<env>/<type>/<nickname>/config.json),
publishes their resolved config to Parameter Store and deploys what a change affects, in waves.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          argsUsage(cobra.NoArgs),
		RunE:          func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	// Defaults come from the one configuration (docs/configuration.md): KARMA_CONFIG file, then
	// environment variables; flags override both.
	cfg, cfgErr := config.Load(os.Getenv)
	g.cfg = cfg
	paramsDefault := cfg.Params
	if paramsDefault == config.AWS {
		paramsDefault = "ssm"
	}
	root.PersistentPreRunE = func(c *cobra.Command, _ []string) error {
		if cfgErr != nil {
			return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("configuration: %w", cfgErr)}
		}
		if g.server != "" && !remoteCommands[strings.TrimPrefix(c.CommandPath(), "karma ")] {
			return g.localOnly(c)
		}
		return nil
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.repo, "repo", cfg.Repo, "config repository (holds iac/ and account_environments/) [KARMA_REPO]")
	pf.StringVar(&g.stateDir, "state-dir", cfg.StateDir, "embedded state directory (one SQLite file) [KARMA_HOME]")
	pf.StringVar(&g.prefix, "prefix", cfg.Prefix, "Parameter Store prefix (default from karma.json, else /iac) [KARMA_PREFIX]")
	pf.StringVar(&g.server, "server", os.Getenv("KARMA_SERVER"), "a running Karma's API (http(s)://host:port) instead of the stores; token in KARMA_TOKEN [KARMA_SERVER]")
	pf.StringVar(&g.paramsBackend, "params-backend", paramsDefault, "parameter store: embedded | ssm | none [KARMA_PARAMS_BACKEND]")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{cmd: c.CommandPath(), err: err}
	})
	root.AddCommand(newGraphCmd(g), newImpactCmd(g), newParamsCmd(g), newProposeChangeCmd(g), newPlanCmd(g), newApplyCmd(g),
		newIngestCmd(g), newLineageCmd(g), newAuditCmd(g), newDLQCmd(g), newSupersedeCmd(g), newRetryCmd(g), newChangesCmd(g), newRejectCmd(g),
		newDriftCmd(g), newRollbackCmd(g), newPromoteCmd(g), newExpireCmd(g))
	root.AddCommand(newServeCmd(g))
	return root
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// dbPath is the embedded state file.
func (g *globals) dbPath() string { return filepath.Join(g.stateDir, "karma.db") }

// validateBackend rejects an unknown --params-backend.
func (g *globals) validateBackend(c *cobra.Command) error {
	switch g.paramsBackend {
	case "embedded", "ssm", "aws", "none":
		return nil
	}
	return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("--params-backend %q: want embedded, ssm (aws) or none", g.paramsBackend)}
}

// exactArgs and friends turn cobra's argument errors into usage errors (exit 2).
func argsUsage(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := check(c, args); err != nil {
			return &usageError{cmd: c.CommandPath(), err: err}
		}
		return nil
	}
}

// remoteCommands work through a running Karma's API with --server.
var remoteCommands = map[string]bool{"impact": true, "propose-change": true, "apply": true, "reject": true, "changes": true,
	"audit log": true, "lineage": true, "rollback": true, "promote": true, "promote status": true,
	"drift": true}
