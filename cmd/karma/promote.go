package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/promotion"
)

const promoteLong = `A commit that concerns several environments of the promotion order (karma.json "promotion")
deploys in one of them at a time: the next one starts once the previous one applied successfully,
its soak is over, and — where the environment's gate asks for it — its plans are approved.

'karma promote <change-id>' moves the change through the gate it is at:
  - soaking: ends the soak now; --reason says why (required, recorded with who in the promotion);
  - waiting for an approval: shows the plans and approves them (a terminal asks; --auto-approve);
  - due, or deploying: starts what is due and runs the pipeline;
and then says where the change stands, as 'karma promote status <change-id>' does. A failure, a
rejection or a supersession stops the promotion: promote says where and why, and exits 1 ('karma
retry' runs a failure again; the promotion goes on once that environment succeeds).

The change id is the root id 'karma ingest commit' printed, or any of its change sets' ids. With
--server the server moves it (POST /changes/{id}/promote): an approval gate is approved without
asking, as 'karma apply --server' does.`

func newPromoteCmd(g *globals) *cobra.Command {
	var o reviewOptions
	var reason string
	c := &cobra.Command{
		Use:   "promote <change-id> [--reason WHY] [--auto-approve]",
		Short: "Move a change through its next promotion gate (end a soak, approve), then show where it stands",
		Long:  promoteLong,
		Args:  argsUsage(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			if cl, err := g.remote(c); err != nil || cl != nil {
				if err != nil {
					return err
				}
				return remotePromote(c.Context(), c, cl, args[0], reason)
			}
			s, st, err := g.openStack(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			return st.promote(c, args[0], reason, o)
		},
	}
	c.Flags().StringVar(&reason, "reason", "", "why the soak ends early (recorded)")
	c.Flags().StringVar(&o.by, "as", localUser(), "who moves the change (recorded) [KARMA_ACTOR]")
	c.Flags().BoolVar(&o.auto, "auto-approve", false, "approve the plans without asking")
	c.Flags().IntVar(&o.parallel, "parallelism", 4, "plans and applies run at once")
	c.Flags().DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up after this long")
	c.AddCommand(newPromoteStatusCmd(g))
	return c
}

func newPromoteStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status <change-id>",
		Short: "Where a change stands in its promotion: each environment, the gate it is at, where and why it stopped",
		Args:  argsUsage(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			if cl, err := g.remote(c); err != nil || cl != nil {
				if err != nil {
					return err
				}
				return remotePromotionStatus(c.Context(), c, cl, args[0], asJSON)
			}
			s, st, err := g.openStack(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			r, err := st.promotionStatus(c, args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.OutOrStdout(), r)
			}
			printPromotion(c.OutOrStdout(), r, time.Now())
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// promotionStatus is where change id stands; an unknown id is a usage error.
func (st *stack) promotionStatus(c *cobra.Command, id string) (promotion.Report, error) {
	all, err := st.changeSets.List(c.Context())
	if err != nil {
		return promotion.Report{}, err
	}
	r, err := promotion.Status(all, id, time.Now())
	if errors.Is(err, promotion.ErrUnknown) {
		return r, &usageError{cmd: c.CommandPath(), err: err}
	}
	return r, err
}

// promote moves change id through the gate it is at.
func (st *stack) promote(c *cobra.Command, id, reason string, o reviewOptions) error {
	ctx, w := c.Context(), c.OutOrStdout()
	r, err := st.promotionStatus(c, id)
	if err != nil {
		return err
	}
	cur := r.Current()
	if reason != "" && cur.State != promotion.StateSoaking {
		return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("--reason ends a soak, and change %s is not soaking: in %s it is %s", r.Change, cur.Env, cur.State)}
	}
	switch cur.State {
	case promotion.StateStopped:
		printPromotion(w, r, time.Now())
		return &silentError{fmt.Errorf("the promotion stopped %s", r.Stopped)}
	case promotion.StateSoaking:
		if strings.TrimSpace(reason) == "" { // a blank reason is none
			return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("change %s soaks in %s until %s: --reason says why to end the soak now (recorded)",
				r.Change, cur.Env, cur.Until.Local().Format("15:04:05"))}
		}
		if err := st.skipSoak(ctx, cur.ChangeSetID, o.by, reason); err != nil {
			return err
		}
	case promotion.StateApproval:
		if err := st.reviewAndApply(c, cur.ChangeSetID, o); err != nil {
			return err
		}
	}
	if err := st.progressWorkers(ctx, w, o.parallel); err != nil {
		return err
	}
	if err := st.startPromotions(ctx, w); err != nil {
		return err
	}
	if err := st.runUntilIdle(ctx, o.timeout); err != nil {
		return err
	}
	if r, err = st.promotionStatus(c, id); err != nil {
		return err
	}
	printPromotion(w, r, time.Now())
	if r.Stopped != "" {
		return &silentError{fmt.Errorf("the promotion stopped %s", r.Stopped)}
	}
	if cur := r.Current(); cur.State == promotion.StateHeld {
		// nothing of it deployed there: it goes on by itself, but not because of this command
		return &silentError{fmt.Errorf("the promotion is held in %s (%s): tried again by itself once what it waits for moves", cur.Env, cur.ChangeSetID)}
	}
	return nil
}

// skipSoak ends the soak of change set id now, recording who and why.
func (st *stack) skipSoak(ctx context.Context, id, by, reason string) error {
	_, err := st.changeSets.Update(ctx, id, func(cs *changeset.ChangeSet) error {
		return cs.SkipSoak(by, reason, time.Now())
	})
	return err
}

// printPromotion says where a change stands, environment by environment, and what moves it.
func printPromotion(w io.Writer, r promotion.Report, now time.Time) {
	fmt.Fprintf(w, "change %s at commit %.12s:\n", r.Change, r.Commit)
	for i, s := range r.Steps {
		mark := " "
		if i == r.At {
			mark = ">"
		}
		detail := s.Detail
		if s.State == promotion.StateSoaking {
			detail += fmt.Sprintf(", until %s (%s left)", s.Until.Local().Format("15:04:05"), s.Until.Sub(now).Round(time.Millisecond))
		}
		fmt.Fprintf(w, "%s %-8s %-11s %s  %s\n", mark, s.Env, s.State, s.ChangeSetID, detail)
	}
	cur := r.Current()
	switch {
	case r.Stopped != "":
		fmt.Fprintf(w, "the promotion stopped %s\n", r.Stopped)
	case r.Complete():
		fmt.Fprintln(w, "the promotion is complete")
	case cur.State == promotion.StateSoaking:
		fmt.Fprintf(w, "next: it goes on by itself once the soak is over (karma plan, apply or serve); to end it now: karma promote %s --reason '…'\n", r.Change)
	case cur.State == promotion.StateApproval:
		fmt.Fprintf(w, "next: karma promote %s shows the plans of %s and approves them\n", r.Change, cur.Env)
	case cur.State == promotion.StateHeld:
		fmt.Fprintf(w, "next: it is tried again by itself once a change goes through the environments before %s, or %s is deployed again (karma plan, apply, promote or serve)\n", cur.Env, cur.Env)
	default:
		fmt.Fprintf(w, "next: karma promote %s (or karma apply) runs it on\n", r.Change)
	}
}
