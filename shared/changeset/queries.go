package changeset

// What the ordering between change sets (ordering.go, and the resolve stage) asks of a Store
// beyond Create, Get, Update and List. A store may answer each from an index, without reading
// every change set or decoding documents (the embedded store does: shared/embedded's
// changesets_index.go); the functions here ask it when it can, and otherwise work from Get or
// List.

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Queued is what the ordering between change sets reads of an unfinished change set: which it
// is, when it was created, what it is queued behind and which of the components asked about it
// has a node for (Unfinished).
type Queued struct {
	ID           string
	CreatedAt    time.Time
	QueuedBehind []string
	// Components are those of the components Unfinished was asked about that the change set has
	// a node for, sorted (nil when it was asked for every change set of the environment).
	Components []string
}

// UnfinishedLister is a Store that lists an environment's unfinished change sets touching given
// components without reading every change set (the embedded store keeps an index of them, and
// reads no document). The resolve stage asks this for every change set it creates and every one
// that finishes, so on a store without it the cost of each grows with the whole history.
type UnfinishedLister interface {
	// Unfinished returns env's change sets that are not Done and have a node for one of
	// components (every one of env when components is nil), newest first, each with those of
	// components it has a node for (Queued.Components).
	Unfinished(ctx context.Context, env string, components []string) ([]Queued, error)
}

// Unfinished returns env's change sets that are not Done and have a node for one of components
// (every one of env when components is nil), newest first: through the store's index when it
// has one (UnfinishedLister), else by listing every change set.
func Unfinished(ctx context.Context, s Store, env string, components []string) ([]Queued, error) {
	if u, ok := s.(UnfinishedLister); ok {
		return u.Unfinished(ctx, env, components)
	}
	all, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []Queued
	for _, cs := range all {
		if cs.Env != env || cs.Done() {
			continue
		}
		q := Queued{ID: cs.ID, CreatedAt: cs.CreatedAt, QueuedBehind: cs.QueuedBehind}
		if components != nil {
			if q.Components = cs.touched(components); len(q.Components) == 0 {
				continue
			}
		}
		out = append(out, q)
	}
	return out, nil
}

// ErrLookedTooEarly refuses to create a change set ordered by a look at the unfinished change
// sets of its environment that missed one sharing a component with it: created between the
// look and the create (LookedCreator). Nothing is written; look again, and create again.
var ErrLookedTooEarly = errors.New("changeset: a change set sharing a component was created since the look that ordered this one")

// LookedCreator is a Store whose look at the unfinished change sets (Unfinished) and create are
// not one transaction, and which can tell at the create what came in between (the DynamoDB
// store, whose creates of an environment's change sets serialize on a registry of its
// unfinished ones): two resolves of one environment both looking before either creates would
// otherwise each miss the other, and both start — deploying a shared component at once.
type LookedCreator interface {
	// CreateAfterLook is Create for cs ordered by a look that found looked (the ids of the
	// unfinished change sets it returned), unless a change set of cs's environment, not among
	// looked and not cs, unfinished and sharing a component with cs, was created (or started
	// again) since: then it creates nothing and returns an error matching ErrLookedTooEarly.
	CreateAfterLook(ctx context.Context, cs *ChangeSet, looked []string) (created bool, err error)
}

// CreateAfterLook creates cs, ordered by a look that found looked: through the store's
// LookedCreator when it has one, else Create (a store whose look and create are one
// transaction, or that cannot tell).
func CreateAfterLook(ctx context.Context, s Store, cs *ChangeSet, looked []string) (bool, error) {
	if l, ok := s.(LookedCreator); ok {
		return l.CreateAfterLook(ctx, cs, looked)
	}
	return s.Create(ctx, cs)
}

// PromotionLister is a Store that lists the change sets with promotion work (PromotionWaiting)
// without reading every change set (the DynamoDB store keeps a record of them). The scheduled
// check for due promotions (shared/promotion's Start, every minute) asks it, and lists every
// change set only while a held try waits (what it waits for is computed from them: HeldOn).
type PromotionLister interface {
	// Promoting returns the change sets for which PromotionWaiting holds, newest first.
	Promoting(ctx context.Context) ([]*ChangeSet, error)
}

// UnfinishedSetLister is a Store that lists every change set that is not done, of every
// environment, without reading the others (the DynamoDB store keeps a record of them). The
// expiry's sweep (Sweep, every minute in karma serve) asks it: only a change set not done can
// expire.
type UnfinishedSetLister interface {
	// UnfinishedSets returns the change sets that are not Done, newest first.
	UnfinishedSets(ctx context.Context) ([]*ChangeSet, error)
}

// FinishedLister is a Store that tells which of given change sets are done without reading
// their documents (the embedded store keeps whether each is done beside it).
type FinishedLister interface {
	// Finished returns those of ids that are Done or unknown to the store, in the order of ids.
	Finished(ctx context.Context, ids []string) ([]string, error)
}

// Finished returns those of ids that are Done or unknown to the store (ErrNotFound), in the
// order of ids: from the store when it can tell without reading the documents
// (FinishedLister), else by reading each.
func Finished(ctx context.Context, s Store, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if f, ok := s.(FinishedLister); ok {
		return f.Finished(ctx, ids)
	}
	var out []string
	for _, id := range ids {
		cs, err := s.Get(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			out = append(out, id)
		case err != nil:
			return nil, err
		case cs.Done():
			out = append(out, id)
		}
	}
	return out, nil
}

// CommitLister is a Store that reads the commits of an environment's change sets without
// reading their documents (the embedded store). Resolve reads them for every pushed commit
// (usually only the latest few dozen), so on a store without it each push reads every change
// set ever made.
type CommitLister interface {
	// Commits returns the commits of env's change sets ("" for one without), newest first as
	// List orders them, skipping the first offset, at most limit.
	Commits(ctx context.Context, env string, offset, limit int) ([]string, error)
}

// commitsPage is how many commits EachCommit reads at a time from a CommitLister.
const commitsPage = 64

// EachCommit calls fn with the commit of each of env's change sets ("" for one without), newest
// first, until fn returns false or an error (which EachCommit returns): from the store a page
// at a time when it can (CommitLister), else from List.
func EachCommit(ctx context.Context, s Store, env string, fn func(commit string) (bool, error)) error {
	if c, ok := s.(CommitLister); ok {
		for offset := 0; ; offset += commitsPage {
			page, err := c.Commits(ctx, env, offset, commitsPage)
			if err != nil {
				return err
			}
			for _, commit := range page {
				if more, err := fn(commit); err != nil || !more {
					return err
				}
			}
			if len(page) < commitsPage {
				return nil
			}
		}
	}
	all, err := s.List(ctx)
	if err != nil {
		return err
	}
	for _, cs := range all {
		if cs.Env != env {
			continue
		}
		if more, err := fn(cs.Commit); err != nil || !more {
			return err
		}
	}
	return nil
}

// touched returns those of components cs has a node for, sorted.
func (cs *ChangeSet) touched(components []string) []string {
	var out []string
	for _, c := range components {
		if _, ok := cs.Nodes[c]; ok {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Serializer is a Store that can tell when what is read and written through a context is one
// serializable transaction (the embedded file's, which a joined stage handles its messages in,
// holding the write lock): nothing another writer does comes in between.
type Serializer interface {
	Serialized(ctx context.Context) bool
}

// Serialized reports whether s says reads and writes through ctx are one serializable
// transaction; false when it cannot tell.
func Serialized(ctx context.Context, s Store) bool {
	z, ok := s.(Serializer)
	return ok && z.Serialized(ctx)
}
