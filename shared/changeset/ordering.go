package changeset

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"
)

// Ordering between change sets. Two change sets of one environment that may deploy the same
// component deploy it in the order they were created (commit order, for pushes): the later one
// is queued behind the earlier until that one is done — every node settled — and only then
// decides anything. A later change set may take over what is left of an earlier one only
// explicitly (Supersede): the earlier one's undecided and unapproved nodes are skipped with
// reason "superseded" and the name of the change set that replaced them, so the lineage says
// so; nothing is ever replaced silently.
//
// A change set is queued directly behind, for each component it shares with unfinished
// change sets, only the latest of them (Ahead): each of those is queued behind the latest
// before it, so the change sets of one component form a chain, and the one that finishes
// releases only the change sets directly behind it — one, as a rule, however long the queue —
// instead of every later one. A change set that ends without having run — superseded,
// rejected or expired while queued (EndedUnrun) — did not wait for what it was queued behind,
// so what was directly behind it is ordered again (Requeue) instead of released.

// Overlaps reports whether two change sets share a component.
func (cs *ChangeSet) Overlaps(other *ChangeSet) bool {
	small, big := cs, other
	if len(small.Nodes) > len(big.Nodes) {
		small, big = big, small
	}
	for id := range small.Nodes {
		if _, ok := big.Nodes[id]; ok {
			return true
		}
	}
	return false
}

// QueueBehind sets QueuedBehind to ahead, sorted, without duplicates or cs itself: ahead are
// change sets of cs's environment that are not done and share a component with cs (Ahead).
func (cs *ChangeSet) QueueBehind(ahead []string) {
	cs.QueuedBehind = nil
	for _, id := range ahead {
		if id != cs.ID {
			cs.QueuedBehind = append(cs.QueuedBehind, id)
		}
	}
	sort.Strings(cs.QueuedBehind)
	cs.QueuedBehind = slices.Compact(cs.QueuedBehind)
}

// Ahead returns what change set self is to be queued behind, given unfinished: the unfinished
// change sets of its environment that share a component with it (Unfinished, asked with its
// components). For each component, the latest of them that has it — by creation time, then id —
// is ahead; the earlier ones are ahead of that one already (it is queued behind the latest
// before it), so they are not listed again. Only the change sets created before self (at
// created) count: the later ones are queued behind it. Creation times follow the order of
// creation (OrderAfter), which is the order of the chains. A zero created (a change set stored
// without one) counts every other as before it: it waits rather than overtakes. A listed change
// set without Components (a store that did not say) counts as ahead.
func Ahead(unfinished []Queued, self string, created time.Time) []string {
	earlier := func(a Queued, at time.Time, id string) bool {
		return a.CreatedAt.Before(at) || (a.CreatedAt.Equal(at) && a.ID < id)
	}
	latest := map[string]Queued{}
	var ahead []string
	for _, q := range unfinished {
		if q.ID == self || (!created.IsZero() && !earlier(q, created, self)) {
			continue
		}
		if len(q.Components) == 0 {
			ahead = append(ahead, q.ID)
		}
		for _, c := range q.Components {
			if l, ok := latest[c]; !ok || earlier(l, q.CreatedAt, q.ID) {
				latest[c] = q
			}
		}
	}
	for _, q := range latest {
		ahead = append(ahead, q.ID)
	}
	sort.Strings(ahead)
	return slices.Compact(ahead)
}

// EndedUnrun reports whether cs ended without necessarily having run: superseded, rejected or
// expired, possibly while it was queued, so without waiting for what it was queued behind. The
// change sets queued behind it are then ordered again (Requeue), not released.
func (cs *ChangeSet) EndedUnrun() bool {
	return cs.SupersededBy != "" || cs.RejectedBy != "" || !cs.ExpiredAt.IsZero()
}

// Requeue orders a queued change set again once gone, change sets it was queued behind, are
// done: they leave QueuedBehind, ahead — what is ahead of it now (Ahead) — joins it, and the
// change set starts when nothing is left ahead of it, recording starter (the change set whose
// end is being handled, or "") as StartedBy. It reports whether the change set started. A
// change set no longer queued behind any of gone (a redelivery) is left as it is.
func (cs *ChangeSet) Requeue(gone, ahead []string, starter string) bool {
	if cs.Started || !slices.ContainsFunc(cs.QueuedBehind, func(id string) bool { return slices.Contains(gone, id) }) {
		return false
	}
	rest := slices.DeleteFunc(slices.Clone(cs.QueuedBehind), func(id string) bool { return slices.Contains(gone, id) })
	cs.QueueBehind(append(rest, ahead...))
	if len(cs.QueuedBehind) > 0 {
		return false
	}
	cs.Start()
	cs.StartedBy = starter
	return true
}

// OrderAfter moves cs's CreatedAt just past the creation time of every change set in earlier
// that is not before it already: cs is created after them — they are in the store and it is
// not — so by creation time too it comes after them, whatever the clocks of the processes that
// stamped them said. Ahead and every later ordering then agree with the order of creation.
func (cs *ChangeSet) OrderAfter(earlier []Queued) {
	for _, e := range earlier {
		if !cs.CreatedAt.After(e.CreatedAt) {
			cs.CreatedAt = e.CreatedAt.Add(time.Nanosecond)
		}
	}
}

// Release removes done from QueuedBehind and starts the change set when nothing is left ahead
// of it. It reports whether the change set started.
func (cs *ChangeSet) Release(done ...string) bool {
	cs.QueuedBehind = slices.DeleteFunc(cs.QueuedBehind, func(id string) bool { return slices.Contains(done, id) })
	if len(cs.QueuedBehind) > 0 || cs.Started {
		return false
	}
	cs.Start()
	if len(done) == 1 {
		cs.StartedBy = done[0]
	}
	return true
}

// ErrInFlight refuses to supersede a change set while one of its deployments is being planned
// or applied: what it does cannot be taken back, so it must finish first.
var ErrInFlight = errors.New("changeset: a deployment is in flight")

// ErrCannotSupersede refuses a supersession: only a later change set of the same environment that
// deploys some of the same components may supersede one that is not done.
var ErrCannotSupersede = errors.New("changeset: cannot supersede")

// CanBeSupersededBy reports why by may not supersede cs, or nil. A deployment in flight is
// refused by Supersede itself (ErrInFlight).
func (cs *ChangeSet) CanBeSupersededBy(by *ChangeSet) error {
	switch {
	case cs.ID == by.ID:
		return fmt.Errorf("%w: change set %s cannot supersede itself", ErrCannotSupersede, cs.ID)
	case cs.Env != by.Env:
		return fmt.Errorf("%w: change set %s is in %s, %s in %s", ErrCannotSupersede, cs.ID, cs.Env, by.ID, by.Env)
	case !by.CreatedAt.After(cs.CreatedAt):
		return fmt.Errorf("%w: change set %s is not later than %s", ErrCannotSupersede, by.ID, cs.ID)
	case !cs.Overlaps(by):
		return fmt.Errorf("%w: change set %s deploys none of the components of %s", ErrCannotSupersede, by.ID, cs.ID)
	case cs.Done():
		return fmt.Errorf("%w: change set %s is already done: nothing left to supersede", ErrCannotSupersede, cs.ID)
	}
	return nil
}

// Supersede skips every node of cs that is not settled — pending, or planned and waiting for
// approval — with reason "superseded" and a detail naming by, and marks cs superseded. It
// refuses while a node is scheduled (being planned or applied).
func (cs *ChangeSet) Supersede(by, detail string) error {
	var inFlight []string
	for id, n := range cs.Nodes {
		if n.State == Scheduled {
			inFlight = append(inFlight, id)
		}
	}
	if len(inFlight) > 0 {
		sort.Strings(inFlight)
		return fmt.Errorf("change set %s: %w (%v being planned or applied): wait for it to finish, then supersede", cs.ID, ErrInFlight, inFlight)
	}
	cs.SupersededBy = by
	cs.QueuedBehind = nil
	cs.Started = true
	for _, id := range cs.order() {
		n := cs.Nodes[id]
		if n.Settled() {
			continue
		}
		n.State, n.Reason, n.Detail, n.Plan, n.Announced = Skipped, ReasonSuperseded, detail, nil, false
	}
	return nil
}
