package resolve

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

// Ordering between change sets (shared/changeset): a new change set waits behind, for each
// component it shares with earlier unfinished change sets of its environment, the latest of them
// (changeset.Ahead; each of those waits behind the ones before it), and starts when they are
// done — or explicitly superseded (change.superseded). The change set that finishes releases the
// ones queued directly behind it, in the handler of the event that finished it; one that ended
// without running (changeset.EndedUnrun) has them ordered again instead.

// newestTrees is how many of the environment's latest change sets newest looks at.
const newestTrees = 50

// newest returns the commit a pushed commit's change set is built from: the commit itself, or,
// when a push arrived after a later commit that contains it was already resolved (webhooks are
// not delivered in order), that later commit — deploying the older tree would undo the later
// one. The change set then names the later commit as its tree and the pushed commit as its
// cause, so the lineage says both. Only a later commit on the deploy branch counts: a change
// request's commit on its own branch (KARMA_GIT_WRITE=change-branch), waiting for approval or
// rejected, or a commit the branch was rewound past, is no one's intent for the environment, and
// building from it would deploy its unapproved config under the pushed commit's name.
func (w *Worker) newest(ctx context.Context, env, commit string) (string, error) {
	best, seen := commit, 0
	head := ""       // the deploy branch's head, read when a later commit is first found
	var gitErr error // the repository's, as opposed to the store's
	// The commits of env's change sets, newest first.
	err := changeset.EachCommit(ctx, w.ChangeSets, env, func(c string) (bool, error) {
		if c == "" || c == best {
			return true, nil
		}
		if seen++; seen > newestTrees {
			return false, nil
		}
		// The usual case first, found after a short walk: an earlier change set's commit is an
		// ancestor of this one.
		older, err := w.Commits.IsAncestor(ctx, c, best)
		if err != nil {
			gitErr = fmt.Errorf("resolve: is %s an ancestor of %s: %w", c, best, err)
			return false, gitErr
		}
		if older {
			return true, nil
		}
		later, err := w.Commits.IsAncestor(ctx, best, c)
		if err != nil {
			gitErr = fmt.Errorf("resolve: is %s an ancestor of %s: %w", best, c, err)
			return false, gitErr
		}
		if !later {
			return true, nil
		}
		if head == "" {
			if head, err = w.Commits.Head(ctx); err != nil {
				gitErr = fmt.Errorf("resolve: the deploy branch's head: %w", err)
				return false, gitErr
			}
		}
		onBranch := c == head
		if !onBranch {
			if onBranch, err = w.Commits.IsAncestor(ctx, c, head); err != nil {
				gitErr = fmt.Errorf("resolve: is %s an ancestor of %s: %w", c, head, err)
				return false, gitErr
			}
		}
		if onBranch {
			best = c
		}
		return true, nil
	})
	switch {
	case gitErr != nil:
		return "", gitErr
	case err != nil:
		return "", pipeline.Transient(err)
	}
	return best, nil
}

// look is what queue's look at the unfinished change sets found: the ids of those sharing a
// component with the change set, which its create hands the store (changeset.CreateAfterLook).
type look struct{ ids []string }

// lookAttempts bounds how many times a change set is built and ordered again because a change
// set sharing a component with it was created between its look and its create
// (changeset.ErrLookedTooEarly): each time, another resolve's create came first.
const lookAttempts = 5

// queue fills cs.QueuedBehind and starts cs when nothing is ahead of it; it returns what the look
// found (nil when it did not look: a change set rejected, or without components).
func (w *Worker) queue(ctx context.Context, cs *changeset.ChangeSet) (*look, error) {
	var found *look
	if cs.Rejected == "" && len(cs.Nodes) > 0 {
		earlier, err := w.active(ctx, cs, cs.ID)
		if err != nil {
			return nil, err
		}
		found = &look{}
		for _, q := range earlier {
			found.ids = append(found.ids, q.ID)
		}
		cs.OrderAfter(earlier) // created after them, whatever the clocks said
		cs.QueueBehind(changeset.Ahead(earlier, cs.ID, cs.CreatedAt))
	}
	cs.Start()
	return found, nil
}

// create creates cs, ordered by a look that found found (nil: none), handing the store what
// the look found (changeset.CreateAfterLook): a store whose look and create are not one
// transaction refuses, with changeset.ErrLookedTooEarly, a change set whose look missed one
// sharing a component with it, created in between.
func (w *Worker) create(ctx context.Context, cs *changeset.ChangeSet, found *look) (bool, error) {
	if found == nil {
		return w.ChangeSets.Create(ctx, cs)
	}
	return changeset.CreateAfterLook(ctx, w.ChangeSets, cs, found.ids)
}

// active lists the change sets of of's environment that are not done and share a component with
// of, except id (through the store's index of unfinished change sets when it has one:
// changeset.Unfinished). Only those can be queued behind of, or be ahead of it.
func (w *Worker) active(ctx context.Context, of *changeset.ChangeSet, except string) ([]changeset.Queued, error) {
	if len(of.Nodes) == 0 {
		return nil, nil // shares nothing with anything
	}
	unfinished, err := changeset.Unfinished(ctx, w.ChangeSets, of.Env, slices.Sorted(maps.Keys(of.Nodes)))
	if err != nil {
		return nil, pipeline.Transient(err)
	}
	var out []changeset.Queued
	for _, cs := range unfinished {
		if cs.ID != except {
			out = append(out, cs)
		}
	}
	return out, nil
}

// recheck orders a just-created change set again if some of what it is queued behind finished
// between the look and the create (their release did not see it). Which have finished is read
// without their documents when the store can tell (changeset.Finished); as a rule none has,
// and nothing more is read or written.
func (w *Worker) recheck(ctx context.Context, cs *changeset.ChangeSet) (*changeset.ChangeSet, error) {
	done, err := changeset.Finished(ctx, w.ChangeSets, cs.QueuedBehind)
	if err != nil {
		return nil, pipeline.Transient(err)
	}
	if len(done) == 0 {
		return cs, nil
	}
	return w.requeue(ctx, cs.ID, done, "") // its decisions are announced by its own handler
}

// requeue orders change set id again after gone, change sets it was queued behind, are done:
// it waits behind what is ahead of it now instead (changeset.Requeue), or starts. Needed when
// one of gone ended without running (changeset.EndedUnrun), or may have (recheck): it did not
// wait for what it was queued behind, which may still be ahead of id. What is ahead is read
// before the update; if any of it finishes meanwhile (its release may not see id queued behind
// it yet), id is ordered again, until what it waits behind is all unfinished. A start records
// starter, the change set whose end is being handled ("" for none), as StartedBy: its
// redelivered end announces what the start decided (release).
func (w *Worker) requeue(ctx context.Context, id string, gone []string, starter string) (*changeset.ChangeSet, error) {
	for {
		cs, err := w.ChangeSets.Get(ctx, id)
		if err != nil {
			return nil, pipeline.Transient(err)
		}
		unfinished, err := w.active(ctx, cs, id)
		if err != nil {
			return nil, err
		}
		unfinished = slices.DeleteFunc(unfinished, func(q changeset.Queued) bool { return slices.Contains(gone, q.ID) })
		ahead := changeset.Ahead(unfinished, id, cs.CreatedAt)
		updated, err := w.ChangeSets.Update(ctx, id, func(cs *changeset.ChangeSet) error {
			cs.Requeue(gone, ahead, starter)
			return nil
		})
		if err != nil {
			return nil, err
		}
		if updated.Started || len(updated.QueuedBehind) == 0 {
			return updated, nil
		}
		if gone, err = changeset.Finished(ctx, w.ChangeSets, updated.QueuedBehind); err != nil {
			return nil, pipeline.Transient(err)
		} else if len(gone) == 0 {
			return updated, nil
		}
	}
}

// release starts the change sets queued directly behind finished (which is done) that waited for
// nothing else — or, when finished ended without running, orders them again (requeue) — and
// returns their first decisions; of the change sets its end started already, it returns the
// decisions not yet announced (a delivery of in that released them and died before
// publishing). The messages continue each released change set's own story: its correlation,
// caused by in (the event that finished the one ahead).
func (w *Worker) release(ctx context.Context, in message.Envelope, finished *changeset.ChangeSet) ([]message.Envelope, error) {
	waiting, err := w.active(ctx, finished, finished.ID)
	if err != nil {
		return nil, err
	}
	sort.Slice(waiting, func(i, j int) bool { return waiting[i].CreatedAt.Before(waiting[j].CreatedAt) })
	var out []message.Envelope
	for _, q := range waiting {
		if !contains(q.QueuedBehind, finished.ID) && len(q.QueuedBehind) > 0 && finished.EndedUnrun() {
			// An earlier delivery of in may have ordered it again (requeue) behind a change set
			// that finished before that delivery died: nothing else would release it.
			done, err := changeset.Finished(ctx, w.ChangeSets, q.QueuedBehind)
			if err != nil {
				return nil, pipeline.Transient(err)
			}
			if len(done) > 0 {
				updated, err := w.requeue(ctx, q.ID, done, finished.ID)
				if err != nil {
					return nil, err
				}
				q.QueuedBehind = updated.QueuedBehind
			}
		}
		if !contains(q.QueuedBehind, finished.ID) {
			if len(q.QueuedBehind) > 0 {
				continue // still behind another
			}
			// Started: maybe by an earlier delivery of in that died before publishing what it
			// released. If this change set's end started it, publish what it has not
			// announced (nothing, as a rule); decisions another event made are that event's.
			cs, err := w.ChangeSets.Get(ctx, q.ID)
			if err != nil {
				return nil, err
			}
			if cs.StartedBy != finished.ID || len(cs.Unannounced()) == 0 {
				continue
			}
			msgs, err := w.announce(ctx, continuing(in, cs), cs, false)
			if err != nil {
				return nil, err
			}
			out = append(out, msgs...)
			continue
		}
		var updated *changeset.ChangeSet
		if finished.EndedUnrun() {
			updated, err = w.requeue(ctx, q.ID, []string{finished.ID}, finished.ID)
		} else {
			updated, err = w.ChangeSets.Update(ctx, q.ID, func(cs *changeset.ChangeSet) error {
				cs.Release(finished.ID)
				return nil
			})
		}
		if err != nil {
			return nil, err
		}
		msgs, err := w.announce(ctx, continuing(in, updated), updated, false)
		if err != nil {
			return nil, err
		}
		out = append(out, msgs...)
	}
	return out, nil
}

// continuing is in as the cause of messages of another change set: derived messages take the
// correlation and actor of that change set's root.
func continuing(in message.Envelope, cs *changeset.ChangeSet) message.Envelope {
	in.CorrelationID, in.Actor = cs.CorrelationID, cs.Actor
	return in
}

// superseded skips what is left of a change set in favour of a later one, then releases what
// was queued behind it.
func (w *Worker) superseded(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
	var p message.ChangeSuperseded
	if err := message.Decode(in, &p); err != nil {
		return nil, err
	}
	by, err := w.ChangeSets.Get(ctx, p.SupersededBy)
	if err != nil {
		return nil, pipeline.Permanent(fmt.Errorf("resolve: superseding %s: the later change set %s: %w", p.ChangeSetID, p.SupersededBy, err))
	}
	detail := fmt.Sprintf("superseded by change set %s", by.ID)
	if by.Commit != "" {
		detail += " (commit " + by.Commit + ")"
	}
	detail += ", at the request of " + in.Actor.Name
	cs, err := w.ChangeSets.Update(ctx, p.ChangeSetID, func(cs *changeset.ChangeSet) error {
		if cs.SupersededBy == by.ID {
			return nil // a redelivery: announce what is left to announce
		}
		if err := cs.CanBeSupersededBy(by); err != nil {
			return err
		}
		return cs.Supersede(by.ID, detail)
	})
	if err != nil {
		if errors.Is(err, changeset.ErrNotFound) || errors.Is(err, changeset.ErrCannotSupersede) || errors.Is(err, changeset.ErrInFlight) {
			return nil, pipeline.Permanent(fmt.Errorf("resolve: superseding %s by %s: %w", p.ChangeSetID, p.SupersededBy, err))
		}
		return nil, err
	}
	out, err := w.announce(ctx, in, cs, false)
	if err != nil {
		return nil, err
	}
	released, err := w.release(ctx, in, cs)
	return append(out, released...), err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
