package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/usekarma/karma/shared/api"
	"github.com/usekarma/karma/shared/api/client"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
)

func newChangesCmd(g *globals) *cobra.Command {
	var env, state string
	var asJSON bool
	c := &cobra.Command{
		Use:   "changes [--env E] [--state S] [--json]",
		Short: "The change sets, newest first: their state, source, author, commit and deployments",
		Long: `Lists change sets newest first, in the states of the API's GET /changes: ` + strings.Join(changeStates, ", ") + `.
Works on the stores, or through a running Karma with --server.`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if state != "" && !slices.Contains(changeStates, state) {
				return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("--state %q: not a change state: want one of %s", state, strings.Join(changeStates, ", "))}
			}
			list := []api.ChangeSummary{} // [] when none, as GET /changes answers
			if cl, err := g.remote(c); err != nil {
				return err
			} else if cl != nil {
				if list, err = remoteChanges(c.Context(), cl, env, state); err != nil {
					return err
				}
			} else {
				s, st, err := g.openStack(c.Context())
				if err != nil {
					return err
				}
				defer s.close()
				all, err := st.changeSets.List(c.Context())
				if err != nil {
					return err
				}
				for _, cs := range all {
					v := api.Summarize(cs)
					if (env == "" || v.Env == env) && (state == "" || v.State == state) {
						list = append(list, v)
					}
				}
			}
			if asJSON {
				return writeJSON(c.OutOrStdout(), list)
			}
			printChanges(c.OutOrStdout(), list)
			return nil
		},
	}
	c.Flags().StringVar(&env, "env", "", "only this environment")
	c.Flags().StringVar(&state, "state", "", "only this state")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// changeStates are the states GET /changes answers and filters by, in shared/api's order
// (api.Summarize gives each change set one of them). shared/api keeps its list unexported: this one
// is held to it by TestChangesStatesAreTheAPIs, which asks the API handler itself.
var changeStates = []string{api.StateInvalid, api.StateHeld, api.StateRejected, api.StateExpired, api.StateSuperseded, api.StateQueued,
	api.StateAwaiting, api.StateInProgress, api.StateDone, api.StateFailed}

// changesPageMax is the largest page GET /changes serves (its limit: 1 to 500, shared/api/changes.go).
const changesPageMax = 500

// remoteChanges asks GET /changes page after page, following next_cursor to the end: every
// change set the filters match, as the local command lists them.
func remoteChanges(ctx context.Context, cl *client.Client, env, state string) ([]api.ChangeSummary, error) {
	list := []api.ChangeSummary{}
	cursor := ""
	for pages := 1; ; pages++ {
		page, err := cl.Changes(ctx, client.ChangesQuery{Env: env, State: state, Limit: changesPageMax, Cursor: cursor})
		if err != nil {
			if pages > 1 {
				return nil, fmt.Errorf("changes: %d change set(s) read, then page %d failed (nothing printed): %w", len(list), pages, err)
			}
			return nil, err
		}
		list = append(list, page.Changes...)
		if page.NextCursor == "" {
			return list, nil
		}
		if page.NextCursor == cursor || len(page.Changes) == 0 {
			return nil, fmt.Errorf("changes: the server's page %d (%d change set(s)) gives no way on (next_cursor %q): nothing printed", pages, len(page.Changes), page.NextCursor)
		}
		cursor = page.NextCursor
	}
}

func printChanges(w io.Writer, list []api.ChangeSummary) {
	for _, v := range list {
		counts := []string{}
		for _, s := range []string{changeset.Applied, changeset.Planned, changeset.Skipped, changeset.Failed, changeset.Blocked} {
			if n := v.Counts[s]; n > 0 {
				counts = append(counts, fmt.Sprintf("%d %s", n, s))
			}
		}
		fmt.Fprintf(w, "%s  [%s] %-17s %-9s by %s, commit %.12s; %s\n", v.ID, v.Env, v.State, v.Source, v.Actor.Name, v.Commit, strings.Join(counts, ", "))
	}
	fmt.Fprintf(w, "%d change(s)\n", len(list))
}

func newRejectCmd(g *globals) *cobra.Command {
	var reason, as string
	c := &cobra.Command{
		Use:   "reject <change-id> --reason R",
		Short: "Decide that a change waiting for approval is not deployed (recorded, with why)",
		Long: `Rejects a change set that is not approved: from then on it cannot be approved, and the pipeline
skips what is left of it (reason "rejected", naming who and why, in the lineage and the audit
log) and starts the change sets queued behind it. Works on the stores, or through a running Karma
with --server.`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("--reason is required: why the change is not deployed, for the record")}
			}
			if cl, err := g.remote(c); err != nil {
				return err
			} else if cl != nil {
				d, err := cl.Reject(c.Context(), args[0], reason)
				if err != nil {
					return remoteNotFound(c, err)
				}
				fmt.Fprintf(c.OutOrStdout(), "change %s rejected: %s\n", args[0], d.Change.State)
				return nil
			}
			s, st, err := g.openStack(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			cs, m, err := changeset.RejectChange(c.Context(), st.changeSets, args[0], message.Actor{Kind: "cli", Name: as}, reason)
			if errors.Is(err, changeset.ErrNotFound) {
				return &usageError{cmd: c.CommandPath(), err: err}
			}
			if err != nil {
				return err
			}
			if err := st.publish(c.Context(), m); err != nil {
				return fmt.Errorf("change set %s is rejected (it can no longer be approved), but asking the pipeline to skip what is left failed: %w: reject again", cs.ID, err)
			}
			if err := st.record(c.Context(), EntryCLIRejected, as, cs, map[string]any{"reason": cs.RejectReason}); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "change %s rejected by %s: %s (the pipeline skips what is left on its next run: karma plan)\n", cs.ID, as, reason)
			return nil
		},
	}
	c.Flags().StringVar(&reason, "reason", "", "why the change is not deployed")
	c.Flags().StringVar(&as, "as", localUser(), "who rejects (recorded) [KARMA_ACTOR]")
	return c
}
