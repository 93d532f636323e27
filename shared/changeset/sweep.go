package changeset

import (
	"context"
	"time"

	"github.com/usekarma/karma/shared/message"
)

// ExpiryActor is who expires change sets: Karma itself, by the rules of the environment.
var ExpiryActor = message.Actor{Kind: "karma", Name: "expiry"}

// Lister is the part of Store that Sweep uses.
type Lister interface {
	List(ctx context.Context) ([]*ChangeSet, error)
}

// Sweep finds the change sets past their approval expiry at now that are not expired yet and
// returns one change.expired each, for the caller to publish: resolve then skips what is left
// of them (reason "expired") and starts what waited behind them (or orders it again behind what
// is still ahead: Requeue). Publishing twice is harmless
// (the idempotency key is the change set's, and Expire does nothing the second time). Run by
// `karma plan`, `karma apply` and `karma expire`, and every minute by `karma serve`; an expired
// change set can never be approved, swept or not (CanBeApprovedBy).
//
// Only a change set not done can expire (Expirable): a store that lists those alone
// (UnfinishedSetLister) is asked for them, not for every change set.
func Sweep(ctx context.Context, store Lister, now func() time.Time) ([]message.Envelope, error) {
	var all []*ChangeSet
	var err error
	if u, ok := store.(UnfinishedSetLister); ok {
		all, err = u.UnfinishedSets(ctx)
	} else {
		all, err = store.List(ctx)
	}
	if err != nil {
		return nil, err
	}
	at := now().UTC()
	var out []message.Envelope
	for _, cs := range all {
		if !cs.Expirable(at) {
			continue
		}
		m, err := message.New(message.TypeChangeExpired, cs.Env, ExpiryActor, message.TypeChangeExpired+":"+cs.ID,
			message.ChangeExpired{ChangeSetID: cs.ID, ExpiresAt: cs.ExpiresAt})
		if err != nil {
			return nil, err
		}
		m.CorrelationID, m.CausationID = cs.CorrelationID, cs.CorrelationID // part of the change's story
		out = append(out, m)
	}
	return out, nil
}
