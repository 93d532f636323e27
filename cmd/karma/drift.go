package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/usekarma/karma/shared/api/client"
	"github.com/usekarma/karma/shared/config"
	"github.com/usekarma/karma/shared/drift"
	"github.com/usekarma/karma/shared/message"
)

const driftLong = `Compares what is published and deployed with Karma's intent, the deploy branch's head
(docs/drift.md), for every component of the environments asked for:

  config          Git's resolved config vs <prefix>/<type>/<nickname>/config (canonically), a
                  missing /config, a /config of a component Git no longer defines (orphan)
  runtime         .../runtime vs what Karma's last deployment published (Karma's provenance in
                  the parameter's description; only components Karma deployed are judged)
  infrastructure  the real infrastructure vs the Terraform state: a refresh-only plan of each
                  deployed component, only in environments whose account_environments file sets
                  drift_refresh (it calls the cloud)

Components a change set is deploying are left alone. Each drift is an event, published once
(drift.detected, recorded in the lineage and the audit log when the pipeline runs: karma plan,
karma apply, karma serve); the same drift seen again is the same event. When the environment's
allow_drift is false (the default) a corrective change set (source drift) is queued with it: it
deploys the head again, and needs the usual approval unless --auto-approve.

With --params-backend ssm one account is one environment: --env is required.
Exit codes: 0 no drift, 1 drift found (or something could not be compared), 2 usage.`

type driftFlags struct {
	env, component, as string
	asJSON, auto, dry  bool
}

func newDriftCmd(g *globals) *cobra.Command {
	var f driftFlags
	c := &cobra.Command{
		Use:   "drift [--env E] [--component ID] [--json]",
		Short: "Find drift: Parameter Store and the infrastructure vs Git's intent; record it, queue corrections",
		Long:  driftLong,
		Args:  argsUsage(cobra.NoArgs),
		RunE:  func(c *cobra.Command, _ []string) error { return runDrift(c, g, f) },
	}
	fl := c.Flags()
	fl.StringVar(&f.env, "env", "", "only this environment (required with --params-backend ssm)")
	fl.StringVar(&f.component, "component", "", "only this component: <env>/<type>/<nickname>, or <type>/<nickname> with --env")
	fl.BoolVar(&f.asJSON, "json", false, "print the report as JSON")
	fl.BoolVar(&f.auto, "auto-approve", false, "corrective change sets may be applied without review")
	fl.BoolVar(&f.dry, "dry-run", false, "compare and report only: publish no event, queue no correction")
	fl.StringVar(&f.as, "as", localUser(), "who runs the check, for the events and the audit log [KARMA_ACTOR]")
	return c
}

func runDrift(c *cobra.Command, g *globals, f driftFlags) error {
	if cl, err := g.remote(c); err != nil || cl != nil {
		if err != nil {
			return err
		}
		return remoteDrift(c, cl, f)
	}
	if err := g.validateBackend(c); err != nil {
		return err
	}
	opts, err := driftOptions(g, f)
	if err != nil {
		return &usageError{cmd: c.CommandPath(), err: err}
	}
	s, err := g.open(c.Context())
	if err != nil {
		return err
	}
	defer s.close()
	rep, err := checkDrift(c.Context(), s, opts, f)
	if drift.IsNotFound(err) {
		return &usageError{cmd: c.CommandPath(), err: err}
	}
	if err != nil {
		return err
	}
	return reportDrift(c, rep, f)
}

// reportDrift prints the report; exit 1 when something drifted or could not be compared.
func reportDrift(c *cobra.Command, rep *drift.Report, f driftFlags) error {
	if f.asJSON {
		if err := writeJSON(c.OutOrStdout(), rep); err != nil {
			return err
		}
	} else {
		printDrift(c.OutOrStdout(), rep, f.dry)
	}
	switch {
	case rep.Failed():
		return &silentError{fmt.Errorf("drift: some comparisons failed")}
	case rep.Drifted():
		return &silentError{fmt.Errorf("drift found")}
	}
	return nil
}

// driftOptions checks the flags: a component is <env>/<type>/<nickname>, or <type>/<nickname>
// with --env; on SSM (one account, one environment) --env is required.
func driftOptions(g *globals, f driftFlags) (drift.Options, error) {
	o := drift.Options{Env: f.env}
	if g.paramsBackend == "none" {
		return o, fmt.Errorf("--params-backend none: there is no parameter store to compare")
	}
	if (g.paramsBackend == "ssm" || g.paramsBackend == config.AWS) && f.env == "" {
		return o, fmt.Errorf("--env is required with --params-backend ssm (one account is one environment)")
	}
	return componentOption(o, f)
}

// componentOption reads --component into o.
func componentOption(o drift.Options, f driftFlags) (drift.Options, error) {
	if f.component == "" {
		return o, nil
	}
	switch parts := strings.Split(f.component, "/"); {
	case len(parts) == 3 && !slicesContainsEmpty(parts):
		o.Component = f.component
	case len(parts) == 2 && !slicesContainsEmpty(parts) && f.env != "":
		o.Component = f.env + "/" + f.component
	case len(parts) == 2 && !slicesContainsEmpty(parts):
		return o, fmt.Errorf("--component %s: give --env, or <env>/<type>/<nickname>", f.component)
	default:
		return o, fmt.Errorf("--component %q: want <env>/<type>/<nickname> or <type>/<nickname>", f.component)
	}
	return o, nil
}

func slicesContainsEmpty(parts []string) bool {
	for _, p := range parts {
		if p == "" {
			return true
		}
	}
	return false
}

// checkDrift runs the check and, unless a dry run, records what it found.
func checkDrift(ctx context.Context, s *session, opts drift.Options, f driftFlags) (*drift.Report, error) {
	checker, err := s.app.DriftChecker(ctx)
	if err != nil {
		return nil, err
	}
	rep, err := checker.Check(ctx, opts)
	if err != nil || f.dry {
		return rep, err
	}
	rec, err := s.app.DriftRecorder(ctx, message.Actor{Kind: "cli", Name: f.as}, f.auto)
	if err != nil {
		return nil, err
	}
	return rep, rec.Record(ctx, rep)
}

// remoteDrift is `karma drift --server`: GET /drift, a read. The API compares the parameters
// only and records nothing, so --auto-approve (which is about corrections) is refused and the
// report is shown as a dry run's.
func remoteDrift(c *cobra.Command, cl *client.Client, f driftFlags) error {
	if f.auto {
		return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("--server: the API's drift check is a read (nothing recorded or queued): --auto-approve does not apply; the schedules and karma drift on the stores queue corrections")}
	}
	o, err := componentOption(drift.Options{Env: f.env}, f)
	if err != nil {
		return &usageError{cmd: c.CommandPath(), err: err}
	}
	rep, err := cl.Drift(c.Context(), o.Env, o.Component)
	if err != nil {
		return err
	}
	f.dry = true
	return reportDrift(c, rep, f)
}
