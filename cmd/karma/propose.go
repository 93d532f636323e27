package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/usekarma/karma/shared/api"
	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/trigger"
)

type proposeArgs struct {
	env, typ, nick, input, as string
	data                      []byte
	auto, asJSON              bool
}

type proposed struct {
	changeID, commit string
}

// proposeChange validates a proposed environment file at HEAD, commits it to the local clone
// and queues the change of that commit.
func proposeChange(c *cobra.Command, s *session, a proposeArgs) (proposed, error) {
	ctx := c.Context()
	src, err := s.source()
	if err != nil {
		return proposed{}, err
	}
	head, err := src.Repo.Head(ctx)
	if err != nil {
		return proposed{}, err
	}
	if a.env == "" {
		envs, err := src.Environments(ctx, head)
		if err != nil {
			return proposed{}, err
		}
		if len(envs) != 1 {
			return proposed{}, &usageError{cmd: c.CommandPath(), err: fmt.Errorf("--env is required: the repository has %s", strings.Join(envs, ", "))}
		}
		a.env = envs[0]
	}
	ref := a.typ + "/" + a.nick
	chk, err := src.CheckProposal(ctx, head, a.env, a.typ, a.nick, a.data)
	var invalid *configrepo.InvalidProposalError
	switch {
	case errors.As(err, &invalid):
		return proposed{}, fmt.Errorf("%s rejected, nothing committed or queued: %w", a.input, printDiagnostics(c.ErrOrStderr(), invalid.Diagnostics))
	case errors.Is(err, configrepo.ErrUnchanged):
		return proposed{}, fmt.Errorf("%s: %w", a.input, err)
	case err != nil:
		return proposed{}, err
	}
	id := uuid.Must(uuid.NewV7()).String()
	requester, err := gitrepo.SignatureOf(a.as)
	if err != nil {
		return proposed{}, fmt.Errorf("--as: %w: nothing committed or queued", err)
	}
	w := &configrepo.Writer{Repo: src.Repo, Mode: configrepo.WriteCheckout}
	sha, err := w.Commit(ctx, configrepo.Proposal{ID: id, Base: head, Files: map[string][]byte{chk.File: withNewline(a.data)}, Requester: requester,
		Summary: ref + " in " + a.env})
	if err != nil {
		return proposed{}, fmt.Errorf("%s: not committed, nothing queued: %w", a.input, err)
	}
	actor := message.Actor{Kind: "cli", Name: a.as}
	root, err := trigger.FromRequest(trigger.Request{ID: id, Env: a.env, Configs: map[string][]byte{ref: a.data}, Actor: actor, AutoApprove: a.auto,
		Commit: &message.Commit{SHA: sha, Author: requester.Name + " <" + requester.Email + ">", Message: "karma change " + id, Branch: src.Repo.Branch()}})
	if err != nil {
		return proposed{}, fmt.Errorf("%s: %w", a.input, err)
	}
	st, err := s.stack(ctx, stackOptions{})
	if err != nil {
		return proposed{}, err
	}
	if err := st.publish(ctx, root); err != nil {
		return proposed{}, fmt.Errorf("committed %.12s but queueing its change failed (run 'karma ingest commit %s' to queue it): %w", sha, sha, err)
	}
	if _, err := st.records.RecordFirst(ctx, commitChangeKey(sha), root.ID); err != nil {
		return proposed{}, fmt.Errorf("committed %.12s, change %s queued, but not recorded as the commit's change: %w", sha, root.ID, err)
	}
	if a.asJSON { // as POST /request-change answers
		return proposed{changeID: root.ID, commit: sha}, writeJSON(c.OutOrStdout(), api.ChangeCreated{ChangeID: root.ID,
			Component: a.env + "/" + ref, Commit: sha, Branch: src.Repo.Branch(), Base: head, Impact: chk.Impact})
	}
	fmt.Fprintf(c.OutOrStdout(), "change %s queued (%s in %s, by %s): commit %.12s on %s\n", root.ID, ref, a.env, a.as, sha, src.Repo.Branch())
	printImpact(c.OutOrStdout(), chk.Impact, false)
	return proposed{changeID: root.ID, commit: sha}, nil
}

func withNewline(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return append(append([]byte{}, b...), '\n')
	}
	return b
}
