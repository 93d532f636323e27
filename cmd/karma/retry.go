package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
)

func newRetryCmd(g *globals) *cobra.Command {
	var as string
	c := &cobra.Command{
		Use:   "retry <deployment-id | change-id>",
		Short: "Run a failed deployment again (or every failed deployment of a change), from the same commit",
		Long: `Runs a failed deployment again inside its own change: the same commit's config and Terraform
module (never the working tree), a new deployment whose lineage says "retry of <the failed one>",
then its dependents as usual (those its failure blocked are decided again). Given a change id,
every failed deployment of the change runs again. A change that is not auto-approved needs a new
approval: its new plans are shown by 'karma plan' and approved by 'karma apply <change-id>'.

Refused, with nothing changed: an unknown id, a deployment that did not fail (or was run again
already), a change superseded since, and a component that a later change deployed since, is
deploying, or failed too (retry that one instead).`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			s, st, err := g.openStack(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			all, err := st.changeSets.List(c.Context())
			if err != nil {
				return err
			}
			targets, err := retryTargets(all, args[0])
			if errors.Is(err, errUnknownID) {
				return &usageError{cmd: c.CommandPath(), err: err}
			}
			if err != nil {
				return err
			}
			return st.retry(c.Context(), c.OutOrStdout(), targets, message.Actor{Kind: "cli", Name: as})
		},
	}
	c.Flags().StringVar(&as, "as", localUser(), "who runs it again (recorded) [KARMA_ACTOR]")
	return c
}

// retry re-opens each target's change set and queues the new deployments.
func (st *stack) retry(ctx context.Context, w io.Writer, targets []retryTarget, by message.Actor) error {
	byChange := map[string][]retryTarget{}
	var order []string
	for _, t := range targets {
		if _, ok := byChange[t.cs.ID]; !ok {
			order = append(order, t.cs.ID)
		}
		byChange[t.cs.ID] = append(byChange[t.cs.ID], t)
	}
	for _, id := range order {
		var retried []*changeset.Node
		var reopened []string
		cs, err := st.changeSets.Update(ctx, id, func(cs *changeset.ChangeSet) error {
			var err error
			retried, reopened, err = reopen(cs, byChange[id])
			return err
		})
		if err != nil {
			return err
		}
		if err := st.publishRetries(ctx, cs, retried, by); err != nil {
			return fmt.Errorf("change %s re-opened, but queueing its deployments failed (run the same 'karma retry' again): %w", cs.ID, err)
		}
		printRetry(w, cs, byChange[id], retried, reopened)
	}
	return nil
}

// publishRetries announces the retried deployments (deployment.scheduled), as part of the
// change's story: its correlation, the actor who ran them again.
func (st *stack) publishRetries(ctx context.Context, cs *changeset.ChangeSet, retried []*changeset.Node, by message.Actor) error {
	for _, n := range retried {
		m, err := message.New(message.TypeDeploymentScheduled, cs.Env, by, "deployment.scheduled:"+n.DeploymentID, message.DeploymentScheduled{
			ChangeSetID: cs.ID, DeploymentID: n.DeploymentID, Component: n.Component, Wave: n.Wave, CausedBy: n.Causes,
			ConfigHash: n.ConfigHash, Destroy: n.Destroy})
		if err != nil {
			return err
		}
		m.CorrelationID, m.CausationID = cs.CorrelationID, cs.CorrelationID
		if err := st.publish(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

func printRetry(w io.Writer, cs *changeset.ChangeSet, targets []retryTarget, retried []*changeset.Node, reopened []string) {
	fmt.Fprintf(w, "change %s [%s] at commit %.12s:\n", cs.ID, cs.Env, cs.Commit)
	for i, n := range retried {
		fmt.Fprintf(w, "  %-32s %s runs again as %s (retry of %s)\n", n.Component, targets[i].failed, n.DeploymentID, targets[i].failed)
	}
	sort.Strings(reopened)
	if len(reopened) > 0 {
		fmt.Fprintf(w, "  blocked by the failure, decided again once it deploys: %s\n", strings.Join(reopened, ", "))
	}
	if cs.AutoApprove {
		fmt.Fprintf(w, "next: karma apply %s\n", cs.ID)
		return
	}
	fmt.Fprintf(w, "its new plans need a review: karma plan, then karma apply %s\n", cs.ID)
}
