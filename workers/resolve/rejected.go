package resolve

import (
	"context"
	"errors"
	"fmt"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

// rejected carries out a person's rejection of a change set (change.rejected): what is left of
// it is skipped with reason "rejected", naming who and why, and the change sets queued behind
// it start. The API records the decision in the change set before publishing the message; a
// message whose decision is not recorded (another producer) records it here, from the actor.
func (w *Worker) rejected(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
	var p message.ChangeRejected
	if err := message.Decode(in, &p); err != nil {
		return nil, err
	}
	cs, err := w.ChangeSets.Update(ctx, p.ChangeSetID, func(cs *changeset.ChangeSet) error {
		if cs.RejectedBy == "" {
			if err := cs.Reject(in.Actor.Name, p.Reason); err != nil {
				return err
			}
		}
		return cs.SkipRejected() // a redelivery finds everything settled: nothing changes
	})
	if err != nil {
		if errors.Is(err, changeset.ErrNotFound) || errors.Is(err, changeset.ErrCannotReject) {
			return nil, pipeline.Permanent(fmt.Errorf("resolve: rejecting %s: %w", p.ChangeSetID, err))
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
