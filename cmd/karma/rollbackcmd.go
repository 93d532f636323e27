package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/rollback"
	"github.com/usekarma/karma/shared/trigger"
)

const rollbackLong = `Deploys again exactly what an applied deployment deployed — the config it applied, with the
Terraform module of the commit it used — over whatever runs now, then the dependents that consume a
runtime key it changes, in waves, each with its own config at the deploy branch's head. The
lineage says "rolled back from <the deployment it replaces> to <the deployment>".

The rollback is a change of its own: it runs to its plans, which are shown, and waits for your
approval as 'karma apply' does (a terminal asks; --auto-approve approves without asking). With
--server the server checks and queues it; its plans are read with 'karma changes <id>' and
approved with 'karma apply <id>'.

Refused, with nothing queued (exit 2 for an unknown deployment, else 1), naming why:
  - the deployment never applied (it failed, was skipped or is still pending), destroyed the
    component, or is what the component runs now;
  - the config can no longer be applied at the head commit: the component is no longer defined,
    a component its config references is no longer defined, or the config does not validate
    against its type's schema at head, or a dependent at head reads a key of its runtime that the
    deployment never published (rolled back, the runtime would lose it);
  - a change set of the environment that is not done deploys the component or a dependent: the
    rollback would wait behind it and deploy its old config over it. Finish or supersede it first.`

func newRollbackCmd(g *globals) *cobra.Command {
	var as string
	var auto bool
	var parallel int
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "rollback <deployment-id>",
		Short: "Deploy again an applied deployment's config (and its commit's module), then the dependents that consume a changed output",
		Long:  rollbackLong,
		Args:  argsUsage(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			if cl, err := g.remote(c); err != nil || cl != nil {
				if err != nil {
					return err
				}
				if err := remoteFlags(c, map[string]string{
					"as":           "the rollback is recorded as the token's caller (GET /me says who), not as --as",
					"auto-approve": "the server queues the rollback and never approves it: approve its plans with 'karma apply <change-id>'",
				}); err != nil {
					return err
				}
				return remoteRollback(c.Context(), c, cl, args[0])
			}
			s, st, err := g.openStack(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			csID, err := st.queueRollback(c.Context(), c.OutOrStdout(), s, args[0], message.Actor{Kind: "cli", Name: as})
			if errors.Is(err, rollback.ErrUnknown) {
				return &usageError{cmd: c.CommandPath(), err: err}
			}
			if err != nil {
				return err
			}
			return st.reviewAndApply(c, csID, reviewOptions{auto: auto, by: as, parallel: parallel, timeout: timeout})
		},
	}
	c.Flags().StringVar(&as, "as", localUser(), "who rolls back and approves (recorded) [KARMA_ACTOR]")
	c.Flags().BoolVar(&auto, "auto-approve", false, "approve the rollback's plans without asking")
	c.Flags().IntVar(&parallel, "parallelism", 4, "plans and applies run at once")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "give up after this long")
	return c
}

// queueRollback checks the rollback to deployment id and queues it; it returns its change set.
func (st *stack) queueRollback(ctx context.Context, w io.Writer, s *session, id string, by message.Actor) (string, error) {
	src, err := s.source()
	if err != nil {
		return "", err
	}
	all, err := st.changeSets.List(ctx)
	if err != nil {
		return "", err
	}
	p, err := rollback.Prepare(ctx, src, all, id)
	if err != nil {
		return "", err
	}
	m, err := trigger.FromRollback(trigger.RollbackRequest{Env: p.Target.ChangeSet.Env, Component: p.Target.Node.Component,
		Target: *p.Message(), Actor: by})
	if err != nil {
		return "", err
	}
	if err := st.publish(ctx, m); err != nil {
		return "", err
	}
	from := "nothing Karma applied"
	if p.Replaces != "" {
		from = p.Replaces
	}
	fmt.Fprintf(w, "rolling %s back from %s to %s (the config of commit %.12s, change %s) as change %s,\n  built at the head commit %.12s: %d component(s) may be affected\n",
		p.Target.Node.Component, from, id, p.Target.Commit(), p.Target.ChangeSet.ID, m.ID, p.Head, len(p.Affected))
	return m.ID, nil
}

// reviewOptions say how a change's plans are reviewed and applied.
type reviewOptions struct {
	auto     bool // approve without asking
	by       string
	parallel int
	timeout  time.Duration
}

// reviewAndApply runs change set id to its plans, shows them, asks for the approval (unless
// auto), approves and runs it to completion; exit 1 if anything failed or it was rejected.
func (st *stack) reviewAndApply(c *cobra.Command, id string, o reviewOptions) error {
	ctx, w := c.Context(), c.OutOrStdout()
	if err := st.progressWorkers(ctx, w, o.parallel); err != nil {
		return err
	}
	if err := st.runUntilIdle(ctx, o.timeout); err != nil {
		return err
	}
	cs, err := st.changeSets.Get(ctx, id)
	if errors.Is(err, changeset.ErrNotFound) {
		fmt.Fprintf(w, "change %s is queued; once resolved, 'karma plan' shows its plans and 'karma apply %s' approves them\n", id, id)
		return nil
	}
	if err != nil {
		return err
	}
	if cs.Rejected != "" || len(cs.QueuedBehind) > 0 {
		return summarise(ctx, w, st, []string{id}, nil, true, false)
	}
	printPlans(w, cs)
	shown := map[string]map[string]string{id: heldPlans(cs)} // the approval is for exactly these
	if len(cs.PlannedAwaitingApproval()) > 0 {
		if !o.auto {
			if err := confirm(c, w, []string{id}); err != nil {
				return err
			}
		}
		if err := st.approve(ctx, w, []string{id}, shown, o.by); err != nil {
			return err
		}
		if err := st.runUntilIdle(ctx, o.timeout); err != nil {
			return err
		}
	}
	return summarise(ctx, w, st, []string{id}, nil, true, false)
}

// progressWorkers wires the stages (once) with a progress line per state change on w.
func (st *stack) progressWorkers(ctx context.Context, w io.Writer, parallel int) error {
	if st.notices != nil {
		return nil
	}
	pv := newProgress(w)
	if err := st.workers(ctx, stackOptions{parallelism: parallel, observe: pv.observe}); err != nil {
		return err
	}
	st.notices = pv
	return nil
}

// printPlans shows the plans of a change set waiting for review, and what comes after them.
func printPlans(w io.Writer, cs *changeset.ChangeSet) {
	fmt.Fprintf(w, "plans of change %s [%s], built at commit %.12s:\n", cs.ID, cs.Env, cs.Commit)
	for _, id := range slices.Concat(cs.Waves...) {
		n := cs.Nodes[id]
		switch {
		case n.State == changeset.Planned && n.Plan != nil:
			pl := n.Plan.Plan
			fmt.Fprintf(w, "  %-32s %s  plan %.12s  %d to add, %d to change, %d to destroy  (module of commit %.12s)\n",
				id, n.DeploymentID, n.Plan.PlanHash, pl.Add, pl.Change, pl.Destroy, cs.ModuleCommit(id))
			for _, rc := range n.Plan.Resources {
				fmt.Fprintf(w, "      %-10s %s\n", strings.Join(rc.Actions, ","), rc.Address)
			}
			if n.Plan.ResourcesTruncated {
				fmt.Fprintf(w, "      … and more (terraform show of the saved plan lists them all)\n")
			}
		case n.State == changeset.Scheduled && n.Plan == nil && n.Outcome == nil && !cs.Approved:
			fmt.Fprintf(w, "  %-32s %s  still being planned: no approval until its plan is held and shown\n", id, n.DeploymentID)
		case n.State == changeset.Pending:
			fmt.Fprintf(w, "  %-32s then, if a runtime key it consumes changes (planned and applied in its wave)\n", id)
		}
	}
}
