package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/trigger"
)

// A commit is one change: every delivery of it — `karma ingest commit` again, a push webhook, the
// commit a proposed change became — is answered with the change it already has, never queued a
// second time (which the pipeline's idempotency would drop silently).

// commitChangeKey is where the change a commit started is recorded (pipeline.Records on the Seen
// store: the webhook of `karma serve`, shared/httpapi, records it under the same key).
func commitChangeKey(sha string) string { return trigger.RecordKey(sha) }

// ingestedChange is the change a commit already started.
type ingestedChange struct {
	id   string                 // the root change id
	sets []*changeset.ChangeSet // its change sets, once resolved
}

// ingestedAs finds the change commit sha started: its change sets (a push or a proposed change),
// or the change recorded for it and not resolved yet. Nil when none.
func (st *stack) ingestedAs(ctx context.Context, sha string) (*ingestedChange, error) {
	all, err := st.changeSets.List(ctx)
	if err != nil {
		return nil, err
	}
	var found *ingestedChange
	for _, cs := range all {
		if !startedBy(cs, sha) {
			continue
		}
		if found == nil {
			found = &ingestedChange{id: cs.CorrelationID}
		}
		if cs.CorrelationID == found.id {
			found.sets = append(found.sets, cs)
		}
	}
	if found != nil {
		return found, nil
	}
	id, err := st.records.Recorded(ctx, commitChangeKey(sha))
	if err != nil || id == "" {
		return nil, err
	}
	return &ingestedChange{id: id}, nil
}

// startedBy reports whether commit sha started cs: its root cause (a push; its tree may be a
// later commit that contains it), or the commit a proposed change became.
func startedBy(cs *changeset.ChangeSet, sha string) bool {
	if cs.Source == message.SourceRequest {
		return cs.Commit == sha
	}
	for _, c := range cs.RootCauses {
		if c.Kind == message.CauseCommit && c.ID == sha {
			return true
		}
	}
	return false
}

// printIngested says that the commit was ingested already, where its change stands and how to
// run it again.
func printIngested(w io.Writer, sha string, ch *ingestedChange) {
	if len(ch.sets) == 0 {
		fmt.Fprintf(w, "commit %.12s was already ingested as change %s (state: queued, not resolved yet: karma plan or karma apply runs it); nothing queued\n", sha, ch.id)
		return
	}
	var states []string
	failed, done := false, true
	for _, cs := range ch.sets {
		states = append(states, fmt.Sprintf("%s: %s", cs.Env, changeState(cs)))
		failed = failed || len(cs.FailedComponents()) > 0
		done = done && (cs.Done() || cs.Rejected != "")
	}
	fmt.Fprintf(w, "commit %.12s was already ingested as change %s (state: %s); nothing queued\n", sha, ch.id, strings.Join(states, "; "))
	switch {
	case failed:
		fmt.Fprintf(w, "to run it again: karma retry %s\n", ch.id)
	case done:
		fmt.Fprintf(w, "nothing of it failed, so 'karma retry %s' has nothing to run again; to deploy this config again, make a new commit\n", ch.id)
	}
}
