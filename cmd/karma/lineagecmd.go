package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/message"
)

func newLineageCmd(g *globals) *cobra.Command {
	var env, forward string
	var asJSON bool
	c := &cobra.Command{
		Use:   "lineage <deployment-id | type/nickname> | --forward <commit | parameter@version | request-id | drift-id>",
		Short: "Why a component is deployed like this: the causal chain back to its root, and its drift; or all a root caused",
		Args: argsUsage(func(c *cobra.Command, args []string) error {
			if (forward == "") == (len(args) == 0) || len(args) > 1 {
				return fmt.Errorf("give one deployment id or component, or --forward <root>")
			}
			return nil
		}),
		RunE: func(c *cobra.Command, args []string) error {
			if cl, err := g.remote(c); err != nil || cl != nil {
				if err != nil {
					return err
				}
				if forward != "" {
					return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("--server: --forward works on the stores only")}
				}
				if !strings.HasPrefix(args[0], "dep-") {
					return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("--server: give a deployment id (dep-…): the API answers lineage by deployment")}
				}
				return remoteNotFound(c, remoteLineage(c.Context(), c.OutOrStdout(), cl, args[0], asJSON))
			}
			s, st, err := g.openStack(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			if forward != "" {
				tree, err := forwardTree(c.Context(), st, g.repo, forward)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(c.OutOrStdout(), tree)
				}
				printForward(c.OutOrStdout(), tree)
				return nil
			}
			target, err := lineageTarget(c, s, args[0], env)
			if err != nil {
				return err
			}
			chain, err := backwardWithDrift(c.Context(), st.lineage, target)
			if errors.Is(err, errUnknownID) {
				return &usageError{cmd: c.CommandPath(), err: err}
			}
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.OutOrStdout(), chain)
			}
			if chain.Step != nil {
				printBackward(c.OutOrStdout(), chain.Step, 0)
			}
			printDrifts(c.OutOrStdout(), chain.Drifts)
			return nil
		},
	}
	c.Flags().StringVar(&env, "env", "", "environment of <type>/<nickname> (needed when several environments define it)")
	c.Flags().StringVar(&forward, "forward", "", "a commit sha (or any git revision), <parameter>@<version>, a change request id or a drift id")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// lineageTarget is a deployment id, or the component <env>/<type>/<nickname> that arg names:
// <type>/<nickname> is in --env, else in the one environment of the repository defining it,
// found as `karma impact` finds it (resolveSeeds).
func lineageTarget(c *cobra.Command, s *session, arg, env string) (string, error) {
	switch {
	case strings.HasPrefix(arg, "dep-") || strings.Count(arg, "/") != 1:
		return arg, nil
	case env != "":
		return env + "/" + arg, nil
	}
	res, err := s.build(c.Context(), "")
	if err != nil {
		return "", fmt.Errorf("%s: give --env or <env>/<type>/<nickname> (the repository cannot tell: %w)", arg, err)
	}
	seeds, _, err := resolveSeeds(res, "", []string{arg})
	if err != nil {
		return "", &usageError{cmd: c.CommandPath(), err: err}
	}
	return res.Graph.Components[seeds[0]].ID, nil
}

func findDeployment(ctx context.Context, l lineage.Store, id string) (lineage.Deployment, error) {
	if strings.HasPrefix(id, "dep-") {
		return l.Deployment(ctx, id)
	}
	ds, err := l.Deployments(ctx, id)
	if err != nil {
		return lineage.Deployment{}, err
	}
	for _, d := range ds {
		if d.Status == lineage.StatusApplied || d.Status == lineage.StatusFailed {
			return d, nil
		}
	}
	return lineage.Deployment{}, fmt.Errorf("%s: %w (never deployed by Karma)", id, lineage.ErrNotFound)
}

func printBackward(w io.Writer, s *lineage.Step, depth int) {
	ind := strings.Repeat("  ", depth)
	d := s.Deployment
	fmt.Fprintf(w, "%s%s  %s  %s  wave %d  %s\n", ind, d.Component, d.ID, d.Status, d.Wave, d.At.Format("2006-01-02 15:04:05Z07:00"))
	if d.Status == lineage.StatusFailed {
		for _, l := range strings.Split(d.Detail, "\n") {
			fmt.Fprintf(w, "%s    %s\n", ind, l)
		}
	}
	for _, c := range s.Causes {
		switch c.Cause.Kind {
		case message.CauseDeployment:
			upstream := c.Cause.ID
			if c.Upstream != nil {
				upstream = c.Upstream.Deployment.Component
			}
			if c.Cause.Trigger == message.TriggerOnAnyApply {
				fmt.Fprintf(w, "%s  <- because %s was applied (its reference redeploys on any apply; no key it consumes changed)\n", ind, upstream)
			} else {
				fmt.Fprintf(w, "%s  <- because %s changed %s\n", ind, upstream, strings.Join(c.Cause.Keys, ", "))
			}
			printUpstream(w, c, depth+2)
		case message.CauseRetry:
			fmt.Fprintf(w, "%s  <- retry of %s, run again by %s (%s)\n", ind, c.Cause.ID, d.Actor.Name, d.Actor.Kind)
			printUpstream(w, c, depth+2)
		case message.CauseRollback:
			from := "nothing Karma applied"
			if c.Replaces != nil {
				from = c.Replaces.ID + " (change " + c.Replaces.ChangeSetID + ")"
			}
			fmt.Fprintf(w, "%s  <- rolled back from %s to %s by %s (%s), change %s: its config and module deployed again\n",
				ind, from, c.Cause.ID, d.Actor.Name, d.Actor.Kind, d.ChangeSetID)
			printUpstream(w, c, depth+2)
		case message.CausePromotion:
			from := c.Cause.ID
			if c.Change != nil {
				from += " [" + c.Change.Env + "], which applied successfully"
			}
			fmt.Fprintf(w, "%s  <- promoted from change set %s\n", ind, from)
		default:
			who := ""
			if c.Change != nil {
				who = " by " + c.Change.Actor.Name + " (" + c.Change.Actor.Kind + "), change " + c.Change.ID
			}
			fmt.Fprintf(w, "%s  <- root: %s %s%s\n", ind, c.Cause.Kind, c.Cause.ID, who)
		}
	}
}

// printUpstream prints the deployment a cause names, followed back; or that its lineage is
// printed above already (a deployment reached along two paths); or, when the lineage was not
// followed that far (lineage.MaxDepth), where it goes on.
func printUpstream(w io.Writer, c lineage.CauseStep, depth int) {
	if c.Upstream != nil {
		printBackward(w, c.Upstream, depth)
		return
	}
	if c.Repeated {
		fmt.Fprintf(w, "%s%s  its lineage is printed above\n", strings.Repeat("  ", depth), c.Cause.ID)
		return
	}
	fmt.Fprintf(w, "%s%s  not followed: the lineage stops %d deployments deep (karma lineage %s goes on from it)\n",
		strings.Repeat("  ", depth), c.Cause.ID, lineage.MaxDepth, c.Cause.ID)
}

// node of the forward tree.
type forwardNode struct {
	Deployment lineage.Deployment `json:"deployment"`
	Keys       []string           `json:"keys,omitempty"`     // the upstream keys that reached it
	RetryOf    string             `json:"retry_of,omitempty"` // the failed deployment it ran again
	Caused     []*forwardNode     `json:"caused"`
}

type forwardRoot struct {
	Kind    string           `json:"kind"`
	ID      string           `json:"id"`
	Changes []lineage.Change `json:"changes"`
	Caused  []*forwardNode   `json:"caused"`
	Skipped []changeset.Node `json:"skipped"`
}

var (
	hexRe     = regexp.MustCompile(`^[0-9a-f]{4,40}$`)
	driftIDRe = regexp.MustCompile(`^drift-[0-9a-f]{16}$`)
)

func forwardTree(ctx context.Context, st *stack, repo, root string) (*forwardRoot, error) {
	kind, id := message.CauseRequest, root
	switch {
	case driftIDRe.MatchString(root):
		kind = message.CauseDrift
	case strings.Contains(root, "@"):
		kind = message.CauseParameter
	case hexRe.MatchString(root) || root == "HEAD" || strings.HasPrefix(root, "HEAD~"):
		if info, err := gitrepo.ReadCommit(repo, root); err == nil {
			kind, id = message.CauseCommit, info.SHA
		} else if len(root) == 40 {
			kind = message.CauseCommit
		}
	}
	changes, err := st.lineage.ChangesByRoot(ctx, kind, id)
	if err != nil {
		return nil, err
	}
	if len(changes) == 0 {
		return nil, fmt.Errorf("%s %s: %w: it caused no change Karma recorded", kind, id, lineage.ErrNotFound)
	}
	fr := &forwardRoot{Kind: kind, ID: id, Changes: changes, Caused: []*forwardNode{}, Skipped: []changeset.Node{}}
	ds, err := st.lineage.CausedBy(ctx, kind, id)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, d := range ds {
		n, err := forwardFrom(ctx, st.lineage, d, nil, seen)
		if err != nil {
			return nil, err
		}
		fr.Caused = append(fr.Caused, n)
	}
	for _, ch := range changes {
		if cs, err := st.changeSets.Get(ctx, ch.ID); err == nil {
			for _, w := range cs.Waves {
				for _, cid := range w {
					if n := cs.Nodes[cid]; n.State == changeset.Skipped || n.State == changeset.Blocked {
						fr.Skipped = append(fr.Skipped, *n)
					}
				}
			}
		}
	}
	return fr, nil
}

func forwardFrom(ctx context.Context, l lineage.Store, d lineage.Deployment, keys []string, seen map[string]bool) (*forwardNode, error) {
	n := &forwardNode{Deployment: d, Keys: keys, Caused: []*forwardNode{}}
	if seen[d.ID] {
		return n, nil
	}
	seen[d.ID] = true
	next, err := l.CausedBy(ctx, message.CauseDeployment, d.ID)
	if err != nil {
		return nil, err
	}
	retries, err := l.CausedBy(ctx, message.CauseRetry, d.ID) // the failed deployment run again
	if err != nil {
		return nil, err
	}
	next = append(next, retries...)
	for _, c := range next {
		var ks []string
		retry := ""
		for _, cause := range c.CausedBy {
			if cause.ID == d.ID {
				ks = cause.Keys
				if cause.Kind == message.CauseRetry {
					retry = d.ID
				}
			}
		}
		child, err := forwardFrom(ctx, l, c, ks, seen)
		if err != nil {
			return nil, err
		}
		child.RetryOf = retry
		n.Caused = append(n.Caused, child)
	}
	return n, nil
}

func printForward(w io.Writer, fr *forwardRoot) {
	for _, ch := range fr.Changes {
		fmt.Fprintf(w, "%s %s by %s (%s) -> change %s [%s]\n", fr.Kind, fr.ID, ch.Actor.Name, ch.Actor.Kind, ch.ID, ch.Env)
	}
	var walk func(n *forwardNode, depth int)
	walk = func(n *forwardNode, depth int) {
		via := ""
		if len(n.Keys) > 0 {
			via = "  (via " + strings.Join(n.Keys, ", ") + ")"
		}
		if n.RetryOf != "" {
			via = "  (retry of " + n.RetryOf + ", by " + n.Deployment.Actor.Name + ")"
		}
		changed := "no output changed"
		if len(n.Deployment.ChangedKeys) > 0 {
			changed = "changed " + strings.Join(n.Deployment.ChangedKeys, ", ")
		}
		fmt.Fprintf(w, "%s└─ %s  %s  %s, %s%s\n", strings.Repeat("   ", depth), n.Deployment.Component, n.Deployment.ID, n.Deployment.Status, changed, via)
		for _, c := range n.Caused {
			walk(c, depth+1)
		}
	}
	for _, n := range fr.Caused {
		walk(n, 0)
	}
	for _, n := range fr.Skipped {
		fmt.Fprintf(w, "   not redeployed: %s (%s)\n", n.Component, n.Reason)
	}
}
