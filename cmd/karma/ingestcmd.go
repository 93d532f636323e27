package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/workers/ingest"
)

func newIngestCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "ingest",
		Short: "Turn a Git commit or a parameter change into a queued change (what webhooks and events do in AWS)",
		Args:  argsUsage(cobra.NoArgs),
		RunE:  func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	c.AddCommand(newIngestCommitCmd(g))
	return c
}

func newIngestCommitCmd(g *globals) *cobra.Command {
	var auto bool
	c := &cobra.Command{
		Use:   "commit [REV...]",
		Short: "Queue the config changes of Git commits (default HEAD) of the config repository",
		RunE: func(c *cobra.Command, revs []string) error {
			if len(revs) == 0 {
				revs = []string{"HEAD"}
			}
			s, st, err := g.openStack(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			src, err := s.source()
			if err != nil {
				return err
			}
			for _, rev := range revs {
				sha, err := src.Repo.Resolve(rev)
				if err != nil {
					return err
				}
				info, err := src.Repo.CommitInfo(c.Context(), sha)
				if err != nil {
					return err
				}
				known, err := st.ingestedAs(c.Context(), info.SHA)
				if err != nil {
					return err
				}
				if known != nil {
					printIngested(c.OutOrStdout(), info.SHA, known)
					continue
				}
				var files []ingest.FileChange
				for _, f := range info.Files {
					files = append(files, ingest.FileChange{Path: f.Path, Removed: f.Removed})
				}
				msgs, err := ingest.FromCommit(ingest.Commit{SHA: info.SHA, Author: info.Author, Message: info.Message, Branch: src.Repo.Branch(),
					Files: files, AutoApprove: auto}, st.settings.ModulesDir)
				if err != nil {
					return err
				}
				if len(msgs) == 0 {
					fmt.Fprintf(c.OutOrStdout(), "commit %.12s changes nothing Karma deploys\n", info.SHA)
					continue
				}
				if err := st.publish(c.Context(), msgs...); err != nil {
					return err
				}
				// Recorded once queued, so that a failed publish never claims the commit. (Two ingests
				// of the commit at once both queue it: resolve runs it once, by its idempotency key.)
				if _, err := st.records.RecordFirst(c.Context(), commitChangeKey(info.SHA), msgs[0].ID); err != nil {
					return fmt.Errorf("commit %.12s: change %s queued, but not recorded as the commit's change: %w", info.SHA, msgs[0].ID, err)
				}
				fmt.Fprintf(c.OutOrStdout(), "commit %.12s by %s: %d file(s) -> change %s queued\n", info.SHA, info.Author, len(files), msgs[0].ID)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&auto, "auto-approve", false, "the change may be applied without review")
	return c
}

func newParamsPutCmd(g *globals) *cobra.Command {
	var env, actor string
	var auto bool
	c := &cobra.Command{
		Use:   "put <name> <value | @file> --env E",
		Short: "Write a parameter as someone outside Karma would, and emit its change event",
		Long: `Writes a parameter to the (embedded) parameter store and turns the write into a change the way a
Parameter Store Change event does in AWS: a /config write deploys that component, a /runtime write
redeploys the dependents that consume a changed key, anything else is recorded and ignored.`,
		Args: argsUsage(cobra.ExactArgs(2)),
		RunE: func(c *cobra.Command, args []string) error {
			if env == "" {
				return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("--env is required")}
			}
			value := args[1]
			if strings.HasPrefix(value, "@") {
				data, err := readInput(value[1:])
				if err != nil {
					return err
				}
				value = strings.TrimSpace(string(data))
			}
			s, st, err := g.openStack(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			store, err := s.params(env)
			if err != nil || store == nil {
				return fmt.Errorf("no parameter store for %s: %v", env, err)
			}
			var prev []byte
			if old, err := store.Get(c.Context(), args[0]); err == nil {
				prev = []byte(old.Value)
			} else if !errors.Is(err, params.ErrNotFound) {
				return err
			}
			r, err := store.Put(c.Context(), params.PutInput{Name: args[0], Value: value, User: actor})
			if err != nil {
				return err
			}
			if !r.Changed {
				fmt.Fprintf(c.OutOrStdout(), "%s unchanged (version %d): no event\n", args[0], r.Version)
				return nil
			}
			msgs, err := ingest.FromParameter(ingest.ParameterChange{Env: env, Prefix: st.settings.Prefix, Name: args[0], Version: r.Version,
				Operation: "Update", ModifiedBy: actor, Value: []byte(value), Previous: prev, AutoApprove: auto})
			if err != nil {
				return err
			}
			if len(msgs) == 0 {
				fmt.Fprintf(c.OutOrStdout(), "%s version %d written; not a component config or runtime: recorded, nothing to deploy\n", args[0], r.Version)
				return nil
			}
			if err := st.publish(c.Context(), msgs...); err != nil {
				return err
			}
			var p message.ChangeDetected
			_ = message.Decode(msgs[0], &p)
			fmt.Fprintf(c.OutOrStdout(), "%s version %d written by %s -> change %s queued (%s", args[0], r.Version, actor, msgs[0].ID, p.Source)
			if p.Source == message.SourceRuntime {
				fmt.Fprintf(c.OutOrStdout(), ", changed keys: %s", strings.Join(p.ChangedKeys, ", "))
			}
			fmt.Fprintln(c.OutOrStdout(), ")")
			return nil
		},
	}
	c.Flags().StringVar(&env, "env", "", "environment (account)")
	c.Flags().StringVar(&actor, "as", localUser(), "who writes it (recorded as LastModifiedUser)")
	c.Flags().BoolVar(&auto, "auto-approve", false, "the change may be applied without review")
	return c
}
