package resolve

import (
	"context"
	"errors"
	"fmt"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

// expired carries out the expiry of a change set that was not approved in time
// (change.expired, published by the expiry sweep: shared/changeset's Sweep): what is left of it
// is skipped with reason "expired", and the change sets queued behind it start. A change set
// approved meanwhile is left alone — the approval won the race, which is no failure: the
// message is acknowledged with nothing to announce.
func (w *Worker) expired(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
	var p message.ChangeExpired
	if err := message.Decode(in, &p); err != nil {
		return nil, err
	}
	cs, err := w.ChangeSets.Update(ctx, p.ChangeSetID, func(cs *changeset.ChangeSet) error { return cs.Expire(p.ExpiresAt) })
	switch {
	case errors.Is(err, changeset.ErrCannotExpire):
		return nil, nil
	case errors.Is(err, changeset.ErrNotFound):
		return nil, pipeline.Permanent(fmt.Errorf("resolve: expiring %s: %w", p.ChangeSetID, err))
	case err != nil:
		return nil, err
	}
	out, err := w.announce(ctx, in, cs, false)
	if err != nil {
		return nil, err
	}
	released, err := w.release(ctx, in, cs)
	return append(out, released...), err
}
