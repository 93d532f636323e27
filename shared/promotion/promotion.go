// Package promotion moves a change through the environments of the promotion order (karma.json
// "promotion", shared/model): it builds the change.detected that starts the change in the next
// environment, publishes those that are due (Start: run by karma plan/apply/promote, by karma
// serve's timer and by the scheduled Lambda function), and says where a change stands (Status).
//
// The state lives in the change sets (shared/changeset's Promotion): when the change set of
// environment N succeeded, its promotion is due after the soak (DueAt, stored: a restart loses
// nothing); publishing the next environment's change and recording it promoted are two steps, in
// that order, so a crash in between publishes it again — which resolve recognises (the
// idempotency key "promotion:<change set>" and the change set id "<change>/<env>").
package promotion

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
)

// Key is the idempotency key of the change that promotes from change set from (its first try).
func Key(from string) string { return "promotion:" + from }

// AttemptKey is the idempotency key of the attempt-th try of that promotion, after held ones.
func AttemptKey(from string, attempt int) string {
	if attempt <= 1 {
		return Key(from)
	}
	return fmt.Sprintf("%s@%d", Key(from), attempt)
}

// Next builds the change.detected that starts cs's change in the next environment. It continues
// the change: its correlation, its actor (who skipped a soak is in the payload), caused by cause
// when given (the message that finished cs), else by the change's root.
func Next(cs *changeset.ChangeSet, cause *message.Envelope) (message.Envelope, error) {
	return next(cs, cause, 1)
}

// next is Next's attempt-th try.
func next(cs *changeset.ChangeSet, cause *message.Envelope, attempt int) (message.Envelope, error) {
	p := cs.Promotion
	if p == nil {
		return message.Envelope{}, fmt.Errorf("promotion: change set %s promotes nowhere", cs.ID)
	}
	promo := &message.Promotion{From: cs.ID, FromEnv: cs.Env, SoakSkipped: p.SoakSkipped}
	if attempt > 1 {
		promo.Attempt = attempt
	}
	if p.Soaked {
		promo.Soak = p.Soak.String()
	}
	payload := message.ChangeDetected{ChangeSetID: cs.CorrelationID, Source: cs.Source, Components: []message.ComponentRef{},
		Files: p.Files, Commit: p.Commit, Removed: p.Removed, AutoApprove: p.AutoApprove, Promotion: promo}
	e, err := message.New(message.TypeChangeDetected, p.Next, cs.Actor, AttemptKey(cs.ID, attempt), payload)
	if err != nil {
		return e, err
	}
	e.CorrelationID, e.CausationID = cs.CorrelationID, cs.CorrelationID
	if cause != nil {
		e.CausationID = cause.ID
	}
	return e, nil
}

// Started is a promotion Start published.
type Started struct {
	From, Env, ChangeSetID string // the change set promoted from, the next environment, its change set
	Skipped                *message.GateSkip
	// Attempt is the try (2 or more) of a promotion held before; 0 for the first.
	Attempt int
	// Held is, for the try again of a commit's change held where it entered without a
	// promotion (a hotfix), the held change set (From is then empty).
	Held string
}

// HeldKey is the idempotency key of the attempt-th try of the commit's change sha into env held
// where it entered without a promotion.
func HeldKey(sha, env string, attempt int) string {
	return fmt.Sprintf("git:%s/%s@%d", sha, env, attempt)
}

// tryHeld builds the change.detected of the next try of held, a commit's change held in its
// environment, which it entered without a promotion: the same change, with retry.attempt.
func tryHeld(held *changeset.ChangeSet) (message.Envelope, error) {
	c := held.Held.Change
	if c == nil || c.Commit == nil {
		return message.Envelope{}, fmt.Errorf("promotion: held change set %s records no change to try again", held.ID)
	}
	attempt := held.Held.Attempt + 1
	payload := message.ChangeDetected{ChangeSetID: held.CorrelationID, Source: held.Source, Components: []message.ComponentRef{},
		Files: c.Files, Commit: c.Commit, Removed: c.Removed, AutoApprove: c.AutoApprove, Retry: &message.HeldRetry{Attempt: attempt}}
	e, err := message.New(message.TypeChangeDetected, held.Env, held.Actor, HeldKey(c.Commit.SHA, held.Env, attempt), payload)
	if err != nil {
		return e, err
	}
	e.CorrelationID, e.CausationID = held.CorrelationID, held.CorrelationID
	return e, nil
}

// Store is the part of changeset.Store that Start uses.
type Store interface {
	Get(ctx context.Context, id string) (*changeset.ChangeSet, error)
	Update(ctx context.Context, id string, fn func(*changeset.ChangeSet) error) (*changeset.ChangeSet, error)
	List(ctx context.Context) ([]*changeset.ChangeSet, error)
}

// Publisher sends root messages into the pipeline.
type Publisher func(ctx context.Context, msgs ...message.Envelope) error

// Start publishes the next environment's change of every change set whose promotion is due at
// now, oldest change set first, then records each promoted; and tries again every promotion
// held whose waited-for environments moved since (Retry). It reports what it started; an error
// stops it (what it published before stays recorded or is published again next time,
// harmlessly).
//
// A store that lists the change sets with promotion work (changeset.PromotionLister) is asked
// for those alone; every change set is read only while a held try waits, to tell whether what it
// waits for moved.
func Start(ctx context.Context, store Store, publish Publisher, now time.Time) ([]Started, error) {
	if l, ok := store.(changeset.PromotionLister); ok {
		waiting, err := l.Promoting(ctx)
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(waiting, func(cs *changeset.ChangeSet) bool { return cs.Held != nil }) {
			return start(ctx, store, publish, waiting, now) // no held try: nothing to retry
		}
	}
	all, err := store.List(ctx)
	if err != nil {
		return nil, err
	}
	started, err := start(ctx, store, publish, all, now)
	if err != nil {
		return started, err
	}
	retried, err := retry(ctx, publish, all, now)
	return append(started, retried...), err
}

// LastTry follows the tries of cs's promotion into the next environment, from the first
// ("<change>/<env>") through each held one's RetriedAs: the latest, nil when none exists.
func LastTry(byID map[string]*changeset.ChangeSet, cs *changeset.ChangeSet) *changeset.ChangeSet {
	return latest(byID, byID[cs.NextChangeSetID()])
}

// latest follows the tries of t, a change set of a change in its environment, through each held
// one's RetriedAs: the latest stored (nil when t is).
func latest(byID map[string]*changeset.ChangeSet, t *changeset.ChangeSet) *changeset.ChangeSet {
	for seen := 0; t != nil && t.Held != nil && t.Held.RetriedAs != "" && seen < 1000; seen++ {
		next := byID[t.Held.RetriedAs]
		if next == nil {
			break // being created: the held one is still the latest stored
		}
		t = next
	}
	return t
}

// retry publishes the next try of every held promotion whose waited-for environments moved
// since it was held (changeset.HeldOn differs from its On): a later change went through them,
// or the environment was deployed again — and likewise of every commit's change held where it
// entered without a promotion (a hotfix whose tree carries a change not through the
// environments before: workers/resolve's heldChange). Resolve builds it as a change set of its own, or holds
// it again, saying why. Until resolve has, a check finds the same try to publish, whose
// idempotency key makes it one.
func retry(ctx context.Context, publish Publisher, all []*changeset.ChangeSet, now time.Time) ([]Started, error) {
	byID := make(map[string]*changeset.ChangeSet, len(all))
	for _, cs := range all {
		byID[cs.ID] = cs
	}
	sets := oldestFirst(all)
	var started []Started
	for _, cs := range sets {
		if cs.Promotion == nil || cs.Promotion.PromotedAt.IsZero() {
			continue
		}
		held := LastTry(byID, cs)
		if held == nil || held.Held == nil || held.Held.RetriedAs != "" || held.RejectedBy != "" ||
			changeset.HeldOn(all, held.Env, held.Held.Waiting, held.ID, now) == held.Held.On {
			continue
		}
		attempt := held.Held.Attempt + 1
		m, err := next(cs, nil, attempt)
		if err != nil {
			return started, err
		}
		if err := publish(ctx, m); err != nil {
			return started, fmt.Errorf("promotion of change set %s to %s, try %d: %w", cs.ID, cs.Promotion.Next, attempt, err)
		}
		started = append(started, Started{From: cs.ID, Env: cs.Promotion.Next, ChangeSetID: changeset.AttemptID(cs.CorrelationID, cs.Promotion.Next, attempt), Attempt: attempt})
	}
	// The commits' changes held where they entered without a promotion: their latest try.
	for _, held := range sets {
		if held.Held == nil || held.Held.Change == nil || held.PromotedFrom != "" || held.Held.RetriedAs != "" || held.RejectedBy != "" ||
			changeset.HeldOn(all, held.Env, held.Held.Waiting, held.ID, now) == held.Held.On {
			continue
		}
		m, err := tryHeld(held)
		if err != nil {
			return started, err
		}
		attempt := held.Held.Attempt + 1
		if err := publish(ctx, m); err != nil {
			return started, fmt.Errorf("change set %s held in %s, try %d: %w", held.ID, held.Env, attempt, err)
		}
		started = append(started, Started{Env: held.Env, ChangeSetID: changeset.AttemptID(held.CorrelationID, held.Env, attempt), Attempt: attempt, Held: held.ID})
	}
	return started, nil
}

// StartChangeSet is Start for change set id alone (POST /changes/{id}/promote).
func StartChangeSet(ctx context.Context, store Store, publish Publisher, id string, now time.Time) ([]Started, error) {
	cs, err := store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return start(ctx, store, publish, []*changeset.ChangeSet{cs}, now)
}

func start(ctx context.Context, store Store, publish Publisher, sets []*changeset.ChangeSet, now time.Time) ([]Started, error) {
	// Oldest first (List gives the newest first): the next environment creates, and so orders,
	// the change sets of its changes as the previous one did, never a later change's ahead of an
	// earlier one's on the components they share.
	sets = oldestFirst(sets)
	var started []Started
	for _, cs := range sets {
		if !cs.PromotionDue(now) {
			continue
		}
		m, err := Next(cs, nil)
		if err != nil {
			return started, err
		}
		if err := publish(ctx, m); err != nil {
			return started, fmt.Errorf("promotion of change set %s to %s: %w", cs.ID, cs.Promotion.Next, err)
		}
		if _, err := store.Update(ctx, cs.ID, func(cs *changeset.ChangeSet) error {
			cs.MarkPromoted(now)
			return nil
		}); err != nil {
			return started, err
		}
		started = append(started, Started{From: cs.ID, Env: cs.Promotion.Next, ChangeSetID: cs.NextChangeSetID(), Skipped: cs.Promotion.SoakSkipped})
	}
	return started, nil
}

// oldestFirst returns a copy of sets ordered by creation, oldest first (of equal times, by id).
func oldestFirst(sets []*changeset.ChangeSet) []*changeset.ChangeSet {
	sets = slices.Clone(sets)
	slices.SortStableFunc(sets, func(a, b *changeset.ChangeSet) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return sets
}
