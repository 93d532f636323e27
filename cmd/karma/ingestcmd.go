package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/usekarma/karma/shared/api"
	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/trigger"
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
		Short: "Queue the config changes of Git commits (default HEAD) of the checked-out branch of the config repository",
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
				// Its git.pushed names the checked-out branch: a commit that is not on it (another
				// branch's, or one the branch was reset past) would be recorded as pushed there,
				// and resolve refuses it.
				branch := src.Repo.Branch()
				if on, err := src.Repo.OnBranch(c.Context(), info.SHA, branch); err != nil {
					return err
				} else if !on {
					if branch == "" {
						branch = "HEAD (detached)"
					}
					return fmt.Errorf("commit %.12s (%s) is not on the checked-out branch %s: nothing queued; check out the branch it is on, or merge it", info.SHA, rev, branch)
				}
				known, err := st.ingestedAs(c.Context(), info.SHA)
				if err != nil {
					return err
				}
				if known != nil {
					printIngested(c.OutOrStdout(), info.SHA, known)
					continue
				}
				// Every commit it brings that was never handed over deploys with it, as a push's
				// commits do: its files are diffed against the commits handed over before (as a
				// push's, against the branch's previous head), and the policies and separation of
				// duties ask about each of their authors.
				authors, bases, err := src.Repo.AuthorsSince(c.Context(), info.SHA, func(sha string) (bool, error) {
					id, err := st.records.Recorded(c.Context(), trigger.RecordKey(sha))
					return id != "", err
				})
				if err != nil {
					return fmt.Errorf("commit %.12s: listing the commits it brings: %w", info.SHA, err)
				}
				// With none handed over before, what runs is unknown (deployed by other means,
				// perhaps): the commit's own files, as before.
				changes := info.Files
				if len(bases) > 0 && (len(bases) != 1 || bases[0] != info.Parent) {
					if changes, err = filesSince(c.Context(), src.Repo, bases, info.SHA); err != nil {
						return fmt.Errorf("commit %.12s: listing the files of the commits it brings: %w", info.SHA, err)
					}
				}
				var files []trigger.FileChange
				for _, f := range changes {
					files = append(files, trigger.FileChange{Path: f.Path, Removed: f.Removed})
				}
				pushed, err := trigger.GitPushed(trigger.Push{SHA: info.SHA, Author: info.Author, Message: info.Message, Branch: branch,
					Files: files, AutoApprove: auto, Authors: authors}, pushModulesDir(c.Context(), src, info.SHA), "")
				if errors.Is(err, trigger.ErrNothingDeployable) {
					fmt.Fprintf(c.OutOrStdout(), "commit %.12s changes nothing Karma deploys\n", info.SHA)
					continue
				}
				if err != nil {
					return err
				}
				if err := st.publish(c.Context(), pushed); err != nil {
					return err
				}
				// Recorded once queued, so that a failed publish never claims the commit. (Two ingests
				// of the commit at once both queue it: ingest and resolve run it once, by its keys.)
				change := pushed.CorrelationID
				if _, err := st.records.RecordFirst(c.Context(), trigger.RecordKey(info.SHA), change); err != nil {
					return fmt.Errorf("commit %.12s: change %s queued, but not recorded as the commit's change: %w", info.SHA, change, err)
				}
				fmt.Fprintf(c.OutOrStdout(), "commit %.12s by %s: %d file(s) -> change %s queued\n", info.SHA, info.Author, len(files), change)
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
		Long: `Writes a parameter to the (embedded) parameter store and queues its parameter.changed trigger, as a
Parameter Store Change event does in AWS; the ingest stage then decides: a /config write deploys
that component, a /runtime write redeploys the dependents that consume a changed key, anything else
is recorded and ignored.`,
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
			if ptrs := api.PlaceholderPointers([]byte(value)); len(ptrs) > 0 || strings.Contains(value, api.Redacted) {
				if len(ptrs) == 0 {
					ptrs = []string{"the value"}
				}
				return fmt.Errorf("%s: %s hold(s) %q, the placeholder Karma shows for a secret (params get, GET /components), not its value: put the secret back; nothing written", args[0], strings.Join(ptrs, ", "), api.Redacted)
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
			r, err := store.Put(c.Context(), params.PutInput{Name: args[0], Value: value, User: actor})
			if err != nil {
				return err
			}
			if !r.Changed {
				fmt.Fprintf(c.OutOrStdout(), "%s unchanged (version %d): no event\n", args[0], r.Version)
				return nil
			}
			// The time the version was written keys its trigger with its number: a parameter
			// deleted and created again starts again at version 1.
			written, err := params.GetVersion(c.Context(), store, args[0], r.Version)
			if err != nil {
				return fmt.Errorf("%s version %d written, but reading it back failed, so no change is queued (the reconcile job of karma serve finds it): %w", args[0], r.Version, err)
			}
			// What a Parameter Store Change event does in AWS: the trigger, which the ingest stage
			// turns into a change (a component's /config or /runtime written outside Karma) or not.
			changed, err := trigger.ParameterChanged(trigger.ParameterChange{Env: env, Name: args[0], Operation: "Update", Version: r.Version,
				WrittenAt: written.LastModified, Actor: message.Actor{Kind: "cli", Name: actor}, AutoApprove: auto})
			if err != nil {
				return err
			}
			if err := st.publish(c.Context(), changed); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "%s version %d written by %s -> %s queued (change %s when it concerns a component's config or runtime)\n",
				args[0], r.Version, actor, message.TypeParameterChanged, changed.CorrelationID)
			return nil
		},
	}
	c.Flags().StringVar(&env, "env", "", "environment (account)")
	c.Flags().StringVar(&actor, "as", localUser(), "who writes it (recorded as LastModifiedUser)")
	c.Flags().BoolVar(&auto, "auto-approve", false, "the change may be applied without review")
	return c
}

// filesSince lists the files that differ between commit and any of bases — the commits handed
// over before, where the commits commit brings begin (several after a merge): what a push of
// those commits changed.
func filesSince(ctx context.Context, repo *gitrepo.Repo, bases []string, commit string) ([]gitrepo.Change, error) {
	removed := map[string]bool{}
	for _, b := range bases {
		changes, err := repo.Diff(ctx, b, commit)
		if err != nil {
			return nil, err
		}
		for _, f := range changes {
			removed[f.Path] = f.Removed
		}
	}
	out := make([]gitrepo.Change, 0, len(removed))
	for _, p := range slices.Sorted(maps.Keys(removed)) {
		out = append(out, gitrepo.Change{Path: p, Removed: removed[p]})
	}
	return out, nil
}

// pushModulesDir is the modules folder a commit's changed files are classified against: its
// karma.json's modules_dir (default components; KARMA_MODULES_DIR overrides), so that a commit
// changing only a Terraform module deploys the components of its type, as the webhook function
// does. A karma.json that cannot be read leaves the default: the commit is still queued, and
// resolve refuses it with the reason, recorded.
func pushModulesDir(ctx context.Context, src *configrepo.Source, commit string) string {
	st, err := src.SettingsAt(ctx, commit)
	if err != nil || st.ModulesDir == "" {
		return model.Settings{}.Defaults().ModulesDir
	}
	return st.ModulesDir
}
