package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/usekarma/karma/shared/api"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/params"
)

func newProposeChangeCmd(g *globals) *cobra.Command {
	var env, input, as string
	var auto, asJSON bool
	c := &cobra.Command{
		Use:   "propose-change <type> <nickname> --input updated.json [--env E]",
		Short: "Validate a config change, commit it to the config repository, show its impact and queue it",
		Long: `Validates the proposed environment file (JSON, schema, references, cycles) against the rest of the
repository at HEAD, commits it on the checked-out branch (author: --as; message: the change id),
prints the components it may redeploy in waves, and queues the change: what is deployed is that
commit, and the lineage names it. Git stays the source of intent: 'karma params publish' later
publishes the same config.

Refused, with nothing committed or queued: a folder that is not a git checkout, a detached HEAD,
a component file with uncommitted changes (they would be lost), a proposal equal to what is
committed, a proposal holding "(sensitive value)", the placeholder shown for a secret. Run 'karma plan' to see the plans, 'karma apply <change-id>' to deploy it.`,
		Args: argsUsage(cobra.ExactArgs(2)),
		RunE: func(c *cobra.Command, args []string) error {
			if input == "" {
				return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("--input is required")}
			}
			data, err := readInput(input)
			if err != nil {
				return err
			}
			if ptrs := api.PlaceholderPointers(data); len(ptrs) > 0 {
				return fmt.Errorf("--input %s: %s hold(s) %q, the placeholder Karma shows for a secret, not its value: put the secret (or a reference to it) back; nothing committed or queued",
					input, strings.Join(ptrs, ", "), api.Redacted)
			}
			if cl, err := g.remote(c); err != nil || cl != nil {
				if err != nil {
					return err
				}
				return remoteProposeChange(c.Context(), c, cl, env, args[0], args[1], data, as, auto, asJSON)
			}
			s, err := g.open(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			p, err := proposeChange(c, s, proposeArgs{env: env, typ: args[0], nick: args[1], input: input, data: data, as: as, auto: auto, asJSON: asJSON})
			if err != nil || asJSON {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "\ndependents are redeployed only if an output they consume changes.\nnext: karma plan, then karma apply %s\n", p.changeID)
			return nil
		},
	}
	c.Flags().StringVar(&env, "env", "", "environment")
	c.Flags().StringVar(&input, "input", "", "the new environment file (JSON object), or - for stdin")
	c.Flags().StringVar(&as, "as", localUser(), "the requester: the commit's author [KARMA_ACTOR]")
	c.Flags().BoolVar(&auto, "auto-approve", false, "the change may be applied without review")
	c.Flags().BoolVar(&asJSON, "json", false, "print the queued change as JSON (as POST /request-change answers)")
	return c
}

// readInput reads --input (a file, or - for standard input), at most api.DefaultMaxBody bytes:
// the most the API takes in a request body, and a bound on what is held in memory (a device such
// as /dev/zero, or a pipe that never ends, is refused after max+1 bytes, not read to the end).
func readInput(path string) ([]byte, error) {
	const limit = api.DefaultMaxBody
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("--input %s: %w", path, err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("--input %s: %w", path, err)
	}
	if len(data) > limit {
		return nil, fmt.Errorf("--input %s: larger than %d bytes, the most a change may carry (the API's request body limit): nothing committed or queued", path, limit)
	}
	if off := params.FirstInvalidUTF8(data); off >= 0 {
		return nil, fmt.Errorf("--input %s: invalid UTF-8 at byte offset %d: save the file as UTF-8", path, off)
	}
	if ptr, dup := api.FirstDuplicateName(data); dup {
		return nil, fmt.Errorf("--input %s: %s names a member its object already has: give each once (readers disagree on which one counts)", path, ptr)
	}
	var obj map[string]any
	if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("--input %s: not a JSON object: %v", path, err)
	}
	return data, nil
}

func newPlanCmd(g *globals) *cobra.Command {
	var parallel int
	var asJSON bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "plan",
		Short: "Run queued changes up to their plans (nothing is applied)",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			s, st, err := g.openStack(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			pv := newView(c.OutOrStdout(), asJSON)
			defer pv.Close()
			if err := st.workers(c.Context(), stackOptions{parallelism: parallel, observe: pv.observe}); err != nil {
				return err
			}
			st.notices = pv
			finished, err := finishedChangeSets(c.Context(), st)
			if err != nil {
				return err
			}
			if _, err := st.sweep(c.Context(), c.OutOrStdout()); err != nil {
				return err
			}
			if err := st.startPromotions(c.Context(), c.OutOrStdout()); err != nil {
				return err
			}
			if err := st.runUntilIdle(c.Context(), timeout); err != nil {
				return err
			}
			return summarise(c.Context(), c.OutOrStdout(), st, nil, finished, false, asJSON)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the change sets as JSON (as GET /changes), no progress")
	c.Flags().IntVar(&parallel, "parallelism", 4, "plans and applies run at once")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "give up after this long")
	return c
}

func newApplyCmd(g *globals) *cobra.Command {
	var auto, asJSON bool
	var as string
	var parallel int
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "apply [change-id...] [--auto-approve]",
		Short: "Approve queued changes and run them to completion, wave by wave",
		Long: `Approves the given change sets (default: every one not yet approved), then runs the pipeline until
nothing is left: plan and apply each deployment, publish its runtime, and deploy the dependents
whose consumed outputs changed. Exit 1 if any deployment failed or a change was rejected.
It first shows the plans each change set holds for review (component, deployment, plan hash,
counts, resources), as the change-set store holds them, on every backend, and approves exactly
those: a plan made again since they were shown (by another process), or a deployment still being
planned, refuses the approval (exit 1, nothing approved; run it again to see the plans held now).
Without --auto-approve, asks for confirmation on a terminal and refuses otherwise. On AWS backends
(KARMA_BACKEND=aws) the approval is published to the event bus and the functions apply it; the
command reports each change set's state as DynamoDB holds it.

The approval is --as's. Where karma.json says an environment needs several approvals, it counts
as one (the change set waits for the others); in a protected environment the change's requester
and its commit's author may not approve: refused with the reason, audited, exit 1. Change sets
past their approval expiry are expired first (karma expire).`,
		RunE: func(c *cobra.Command, args []string) error {
			if cl, err := g.remote(c); err != nil || cl != nil {
				if err != nil {
					return err
				}
				if err := remoteFlags(c, map[string]string{
					"as":   "the approval is recorded as the token's caller (GET /me says who), not as --as",
					"json": "the approval's reply is not printed as JSON: read the change with 'karma changes <id> --json'",
				}); err != nil {
					return err
				}
				return remoteApprove(c.Context(), c, cl, args)
			}
			s, st, err := g.openStack(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			// Every id named must be a change set (or may become one from the work queued)
			// before anything runs: a typo with nothing queued runs nothing.
			if err := knownChangeSets(c.Context(), st, args); err != nil {
				return &usageError{cmd: c.CommandPath(), err: err}
			}
			finished, err := finishedChangeSets(c.Context(), st)
			if err != nil {
				return err
			}
			pv := newView(c.OutOrStdout(), asJSON)
			defer pv.Close()
			if err := st.workers(c.Context(), stackOptions{parallelism: parallel, observe: pv.observe}); err != nil {
				return err
			}
			st.notices = pv
			if _, err := st.sweep(c.Context(), c.OutOrStdout()); err != nil {
				return err
			}
			if err := st.startPromotions(c.Context(), c.OutOrStdout()); err != nil {
				return err
			}
			// Resolve and plan first, so that what is approved has been shown.
			if err := st.runUntilIdle(c.Context(), timeout); err != nil {
				return err
			}
			ids, err := pendingApproval(c.Context(), st, args)
			if err != nil {
				return &usageError{cmd: c.CommandPath(), err: err}
			}
			// Show the plans to be approved, as the store holds them (also on AWS, also with
			// --auto-approve): the approval is for exactly these, and refused if one is made
			// again before it is recorded.
			pv.pause()
			prompt := c.OutOrStdout()
			if asJSON {
				prompt = c.ErrOrStderr() // standard output is the JSON
			}
			shown, err := st.showPlans(c.Context(), prompt, ids)
			if err != nil {
				return err
			}
			if len(ids) > 0 && !auto {
				if err := confirm(c, prompt, ids); err != nil {
					return err
				}
			}
			pv.resume()
			if g.testBeforeApprove != nil {
				g.testBeforeApprove(st)
			}
			if err := st.approve(c.Context(), c.OutOrStdout(), ids, shown, as); err != nil {
				return err
			}
			if err := st.runUntilIdle(c.Context(), timeout); err != nil {
				return err
			}
			return summarise(c.Context(), c.OutOrStdout(), st, args, finished, true, asJSON)
		},
	}
	c.Flags().BoolVar(&auto, "auto-approve", false, "apply without asking")
	c.Flags().BoolVar(&asJSON, "json", false, "print the change sets as JSON (as GET /changes), no progress")
	c.Flags().StringVar(&as, "as", localUser(), "who approves (recorded; separation of duties applies) [KARMA_ACTOR]")
	c.Flags().IntVar(&parallel, "parallelism", 4, "plans and applies run at once")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "give up after this long")
	return c
}

func pendingApproval(ctx context.Context, st *stack, args []string) ([]string, error) {
	all, err := st.changeSets.List(ctx)
	if err != nil {
		return nil, err
	}
	byID := map[string]*changeset.ChangeSet{}
	var ids []string
	for _, cs := range all {
		byID[cs.ID] = cs
		if len(args) == 0 && !cs.Approved && cs.CanBeApproved() == nil && !cs.PastExpiry(time.Now()) {
			ids = append(ids, cs.ID)
		}
	}
	if len(args) > 0 {
		for _, a := range args {
			cs, ok := byID[a]
			if !ok {
				return nil, fmt.Errorf("no change set %s (karma propose-change queues one)", a)
			}
			if !cs.Approved {
				ids = append(ids, a)
			}
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// knownChangeSets refuses ids that name no change set, naming every one of them — unless work is
// queued, which may be what makes them (a change just proposed or ingested becomes its change
// set when resolve runs): then the pipeline runs first and pendingApproval refuses what is still
// unknown after it, as before.
func knownChangeSets(ctx context.Context, st *stack, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	// (A queue that cannot be read, or one on AWS: as before, pendingApproval decides after the run.)
	if queued, err := st.queued(ctx); err != nil || queued {
		return nil
	}
	all, err := st.changeSets.List(ctx)
	if err != nil {
		return err
	}
	known := make(map[string]bool, len(all))
	for _, cs := range all {
		known[cs.ID] = true
	}
	var unknown []string
	for _, id := range ids {
		if !known[id] && !slices.Contains(unknown, id) {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("no change set %s (karma changes lists them; a change just proposed or ingested becomes one when karma plan has run): nothing run",
			strings.Join(unknown, ", "))
	}
	return nil
}

func confirm(c *cobra.Command, prompt io.Writer, ids []string) error {
	if fi, err := os.Stdin.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("not a terminal: pass --auto-approve to apply %s", strings.Join(ids, ", "))}
	}
	fmt.Fprintf(prompt, "Apply %s? Only 'yes' will be accepted: ", strings.Join(ids, ", "))
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		return fmt.Errorf("apply cancelled")
	}
	return nil
}

// finishedChangeSets are those done before this run (not shown again).
func finishedChangeSets(ctx context.Context, st *stack) (map[string]bool, error) {
	all, err := st.changeSets.List(ctx)
	if err != nil {
		return nil, err
	}
	done := map[string]bool{}
	for _, cs := range all {
		if cs.Done() || cs.Rejected != "" {
			done[cs.ID] = true
		}
	}
	return done, nil
}

// summarise prints the state of each change set this run touched (or those named); with strict,
// failures and rejections make the exit code 1.
func summarise(ctx context.Context, w io.Writer, st *stack, only []string, skip map[string]bool, strict, asJSON bool) error {
	all, err := st.changeSets.List(ctx)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, id := range only {
		want[id] = true
	}
	var problems []string
	summaries := []api.ChangeSummary{}
	for i := len(all) - 1; i >= 0; i-- {
		cs := all[i]
		if (len(want) > 0 && !want[cs.ID]) || (len(want) == 0 && skip[cs.ID]) {
			continue
		}
		if cs.Rejected != "" {
			problems = append(problems, cs.ID+" rejected")
		}
		if cs.Held != nil && cs.RejectedBy == "" {
			problems = append(problems, cs.ID+" held") // nothing of the promotion deployed there
		}
		f := cs.FailedComponents()
		if len(f) > 0 {
			problems = append(problems, fmt.Sprintf("%s: %s failed", cs.ID, strings.Join(f, ", ")))
		}
		if asJSON {
			summaries = append(summaries, api.Summarize(cs))
			continue
		}
		fmt.Fprintf(w, "change %s [%s] %s: %s\n", cs.ID, cs.Env, cs.Source, changeState(cs))
		if note := promotionNote(cs, time.Now()); note != "" {
			fmt.Fprintf(w, "  promotion: %s\n", note)
		}
		if len(f) > 0 {
			printFailures(w, cs, f)
		}
	}
	if asJSON {
		if err := writeJSON(w, summaries); err != nil {
			return err
		}
	}
	if strict && len(problems) > 0 {
		return &silentError{fmt.Errorf("%s", strings.Join(problems, "; "))}
	}
	return nil
}

// changeState is where a change set stands, for people: its outcomes so far, then its state.
func changeState(cs *changeset.ChangeSet) string {
	counts := map[string]int{}
	for _, n := range cs.Nodes {
		counts[n.State]++
	}
	state := "done"
	switch {
	case cs.Rejected != "":
		state = "rejected: " + cs.Rejected
	case cs.SupersededBy != "":
		state = "superseded by " + cs.SupersededBy
	case cs.RejectedBy != "":
		state = "rejected by " + cs.RejectedBy + ": " + cs.RejectReason
	case cs.Held != nil:
		state = "held, nothing deployed (tried again by itself once what it waits for moves; karma reject " + cs.ID + " gives it up): " + cs.Held.Reason
	case !cs.ExpiredAt.IsZero():
		state = fmt.Sprintf("expired at %s without its approvals (%d of %d)", cs.ExpiresAt.Format(time.RFC3339), len(cs.Approvals), cs.Required())
	case len(cs.QueuedBehind) > 0:
		state = fmt.Sprintf("queued behind %s, which deploy some of the same components: finish or approve them first, or replace what is left of them: karma supersede %s --by %s",
			strings.Join(cs.QueuedBehind, ", "), cs.QueuedBehind[0], cs.ID)
	case !cs.Done():
		state = "waiting for approval (karma apply " + cs.ID + ")"
		if cs.Required() > 1 || len(cs.Approvals) > 0 {
			state = fmt.Sprintf("waiting for approval: %d of %d (karma apply %s, by someone else)", len(cs.Approvals), cs.Required(), cs.ID)
		}
		if !cs.ExpiresAt.IsZero() {
			state += ", expires " + cs.ExpiresAt.Format(time.RFC3339)
		}
	}
	if cs.AutoApproveRefused != "" && !cs.Done() {
		state += "; " + cs.AutoApproveRefused
	}
	return fmt.Sprintf("%d applied, %d skipped, %d failed, %d blocked — %s",
		counts[changeset.Applied], counts[changeset.Skipped], counts[changeset.Failed], counts[changeset.Blocked], state)
}

// printFailures says what failed in a change set, in terraform's words, and how to run it again.
func printFailures(w io.Writer, cs *changeset.ChangeSet, failed []string) {
	for _, id := range failed {
		n := cs.Nodes[id]
		head, rest, _ := strings.Cut(n.Detail, "\n")
		fmt.Fprintf(w, "  %s failed (%s): %s\n", id, n.DeploymentID, head)
		printDetail(w, "    ", rest, "karma lineage "+n.DeploymentID)
		fmt.Fprintf(w, "    to run it again (same commit %.12s, then its dependents): karma retry %s\n", cs.Commit, n.DeploymentID)
	}
}
