package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/mail"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/workers/ingest"
)

type proposeArgs struct {
	env, typ, nick, input, as string
	data                      []byte
	auto                      bool
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
	file := "iac/" + a.env + "/" + ref + "/config.json"
	committed, err := src.Repo.ReadFileAt(ctx, head, file)
	if err != nil {
		return proposed{}, fmt.Errorf("%s: no such component in %s at HEAD %.12s (%s): %w", ref, a.env, head, file, err)
	}
	if sameJSONDoc(committed, a.data) {
		return proposed{}, fmt.Errorf("%s: the proposal equals what commit %.12s holds for %s in %s: nothing to change, nothing queued", a.input, head, ref, a.env)
	}
	res, err := src.Build(ctx, a.env, head, map[string][]byte{file: a.data})
	if err != nil {
		return proposed{}, err
	}
	if err := printDiagnostics(c.ErrOrStderr(), res.Diagnostics.Errors()); err != nil {
		return proposed{}, fmt.Errorf("%s rejected, nothing committed or queued: %w", a.input, err)
	}
	seed, _ := res.Graph.Index(a.env + "/" + ref)
	imp, err := res.Graph.Downstream([]int32{seed}, graph.ImpactOptions{})
	if err != nil {
		return proposed{}, err
	}
	id := uuid.Must(uuid.NewV7()).String()
	requester := signature(a.as)
	w := &configrepo.Writer{Repo: src.Repo, Mode: configrepo.WriteCheckout}
	sha, err := w.Commit(ctx, configrepo.Proposal{ID: id, Base: head, Files: map[string][]byte{file: withNewline(a.data)}, Requester: requester,
		Summary: ref + " in " + a.env})
	if err != nil {
		return proposed{}, fmt.Errorf("%s: not committed, nothing queued: %w", a.input, err)
	}
	actor := message.Actor{Kind: "cli", Name: a.as}
	root, err := ingest.FromRequest(ingest.Request{ID: id, Env: a.env, Configs: map[string][]byte{ref: a.data}, Actor: actor, AutoApprove: a.auto,
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
	fmt.Fprintf(c.OutOrStdout(), "change %s queued (%s in %s, by %s): commit %.12s on %s\n", root.ID, ref, a.env, a.as, sha, src.Repo.Branch())
	printImpact(c.OutOrStdout(), impactReport(res.Graph, imp), false)
	return proposed{changeID: root.ID, commit: sha}, nil
}

// signature turns a requester ("Name <email>", an email, or a user name) into a commit author.
func signature(who string) gitrepo.Signature {
	if a, err := mail.ParseAddress(who); err == nil {
		name := a.Name
		if name == "" {
			name = a.Address
		}
		return gitrepo.Signature{Name: name, Email: a.Address}
	}
	return gitrepo.Signature{Name: who, Email: strings.ReplaceAll(who, " ", ".") + "@karma.invalid"}
}

func sameJSONDoc(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func withNewline(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return append(append([]byte{}, b...), '\n')
	}
	return b
}
