package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
)

func newSupersedeCmd(g *globals) *cobra.Command {
	var by, as string
	c := &cobra.Command{
		Use:   "supersede <change-id> --by <later-change-id>",
		Short: "Replace what is left of a change set by a later one that deploys the same components",
		Long: `Change sets of one environment that deploy a same component run in the order they were created: a
later one waits ("queued behind") until the earlier one is done. supersede ends the wait
explicitly: the earlier change set's pending deployments and the plans waiting for its approval
are skipped with reason "superseded", naming the later change set (and its commit) in the
lineage and the audit log, and the later change set starts — or, if another change set ahead of the
earlier one still deploys a shared component, waits behind that one instead. A deployment being planned or
applied is never superseded: wait for it to finish.`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			if by == "" {
				return &usageError{cmd: c.CommandPath(), err: errors.New("--by is required: the later change set that deploys instead")}
			}
			s, st, err := g.openStack(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			old, err := st.changeSets.Get(c.Context(), args[0])
			if err != nil {
				return fmt.Errorf("change set %s: %w", args[0], err)
			}
			later, err := st.changeSets.Get(c.Context(), by)
			if err != nil {
				return fmt.Errorf("--by %s: %w", by, err)
			}
			if err := old.CanBeSupersededBy(later); err != nil {
				return err
			}
			for id, n := range old.Nodes {
				if n.State == changeset.Scheduled {
					return fmt.Errorf("change set %s: %s is being planned or applied: wait for it to finish, then supersede", old.ID, id)
				}
			}
			m, err := message.New(message.TypeChangeSuperseded, old.Env, message.Actor{Kind: "cli", Name: as},
				"change.superseded:"+old.ID, message.ChangeSuperseded{ChangeSetID: old.ID, SupersededBy: later.ID, Commit: later.Commit})
			if err != nil {
				return err
			}
			m.CorrelationID, m.CausationID = old.CorrelationID, old.CorrelationID // part of the earlier change's story
			if err := st.publish(c.Context(), m); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "change %s: what is left is to be superseded by %s (commit %.12s); run karma apply to continue\n", old.ID, later.ID, later.Commit)
			return nil
		},
	}
	c.Flags().StringVar(&by, "by", "", "the later change set that deploys instead")
	c.Flags().StringVar(&as, "as", localUser(), "who supersedes (recorded) [KARMA_ACTOR]")
	return c
}
