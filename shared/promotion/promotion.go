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

// Key is the idempotency key of the change that promotes from change set from.
func Key(from string) string { return "promotion:" + from }

// Next builds the change.detected that starts cs's change in the next environment. It continues
// the change: its correlation, its actor (who skipped a soak is in the payload), caused by cause
// when given (the message that finished cs), else by the change's root.
func Next(cs *changeset.ChangeSet, cause *message.Envelope) (message.Envelope, error) {
	p := cs.Promotion
	if p == nil {
		return message.Envelope{}, fmt.Errorf("promotion: change set %s promotes nowhere", cs.ID)
	}
	promo := &message.Promotion{From: cs.ID, FromEnv: cs.Env, SoakSkipped: p.SoakSkipped}
	if p.Soaked {
		promo.Soak = p.Soak.String()
	}
	payload := message.ChangeDetected{ChangeSetID: cs.CorrelationID, Source: cs.Source, Components: []message.ComponentRef{},
		Files: p.Files, Commit: p.Commit, Removed: p.Removed, AutoApprove: p.AutoApprove, Promotion: promo}
	e, err := message.New(message.TypeChangeDetected, p.Next, cs.Actor, Key(cs.ID), payload)
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
// now, oldest change set first, then records each promoted. It reports what it started; an error stops it (what it
// published before stays recorded or is published again next time, harmlessly).
func Start(ctx context.Context, store Store, publish Publisher, now time.Time) ([]Started, error) {
	all, err := store.List(ctx)
	if err != nil {
		return nil, err
	}
	return start(ctx, store, publish, all, now)
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
	sets = slices.Clone(sets)
	slices.SortStableFunc(sets, func(a, b *changeset.ChangeSet) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
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
