package changeset

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/usekarma/karma/shared/message"
)

// Rejection. A person may decide that a change set waiting for approval is not deployed. The
// decision is recorded first (Reject, by the API, in one Update: from then on the change set
// cannot be approved), then carried out by resolve on change.rejected (SkipRejected): every
// node not settled — pending, being planned (an unapproved change set applies nothing), or
// planned and waiting for approval — is skipped with reason "rejected", naming who and why, and
// the change set is done, which releases the change sets queued behind it.

// ErrCannotReject refuses a rejection: the change set is approved (its plans may be applying),
// done, invalid, superseded, or already rejected by someone else.
var ErrCannotReject = errors.New("changeset: cannot reject")

// CanBeRejected reports why by may not reject cs, or nil. The same person rejecting again is
// allowed (a retry); nobody (an empty name) may not: a rejection names who rejects.
func (cs *ChangeSet) CanBeRejected(by string) error {
	switch {
	case strings.TrimSpace(by) == "":
		return fmt.Errorf("%w: change set %s: the name of who rejects it is empty: a rejection names who rejects", ErrCannotReject, cs.ID)
	case cs.RejectedBy != "" && cs.RejectedBy != by:
		return fmt.Errorf("%w: change set %s was already rejected by %s: %s", ErrCannotReject, cs.ID, cs.RejectedBy, cs.RejectReason)
	case cs.RejectedBy != "":
		return nil
	case cs.Held != nil && cs.Held.RetriedAs != "":
		return fmt.Errorf("%w: change set %s is a held promotion tried again since, as %s: reject that one", ErrCannotReject, cs.ID, cs.Held.RetriedAs)
	case cs.Held != nil:
		return nil // a held promotion, approved or not, has nothing deployed: rejecting it stops its tries
	case cs.Approved:
		return fmt.Errorf("%w: change set %s is approved (by %s): its plans may be applying; replace what is left of it with a later change (karma supersede)",
			ErrCannotReject, cs.ID, cs.ApprovedBy)
	case cs.Rejected != "":
		return fmt.Errorf("%w: change set %s is invalid, nothing of it is deployed: %s", ErrCannotReject, cs.ID, cs.Rejected)
	case cs.SupersededBy != "":
		return fmt.Errorf("%w: change set %s was superseded by %s", ErrCannotReject, cs.ID, cs.SupersededBy)
	case cs.Done():
		return fmt.Errorf("%w: change set %s is done: nothing of it is left to reject", ErrCannotReject, cs.ID)
	}
	return nil
}

// Reject records by's decision not to deploy cs, or says why it may not (ErrCannotReject).
func (cs *ChangeSet) Reject(by, reason string) error {
	if err := cs.CanBeRejected(by); err != nil {
		return err
	}
	if cs.RejectedBy == "" {
		cs.RejectedBy, cs.RejectReason = by, reason
	}
	return nil
}

// SkipRejected carries out a recorded rejection: every node not settled is skipped with reason
// "rejected" and a detail naming who and why. It refuses an approved change set.
func (cs *ChangeSet) SkipRejected() error {
	if cs.RejectedBy == "" {
		return fmt.Errorf("%w: change set %s has no recorded rejection", ErrCannotReject, cs.ID)
	}
	if cs.Approved && cs.Held == nil { // a held promotion has nothing to apply
		return fmt.Errorf("%w: change set %s is approved (by %s)", ErrCannotReject, cs.ID, cs.ApprovedBy)
	}
	detail := "rejected by " + cs.RejectedBy + ": " + cs.RejectReason
	cs.QueuedBehind = nil
	cs.Started = true
	for _, id := range cs.order() {
		n := cs.Nodes[id]
		if n.Settled() {
			continue
		}
		n.State, n.Reason, n.Detail, n.Plan, n.Announced = Skipped, ReasonRejected, detail, nil, false
	}
	return nil
}

// RejectChange records by's rejection of change set id in store and returns the change set and
// the change.rejected message to publish (part of the change's story: its correlation, caused by
// its root), after which resolve skips what is left. One implementation for the CLI and the API.
func RejectChange(ctx context.Context, store Updater, id string, by message.Actor, reason string) (*ChangeSet, message.Envelope, error) {
	cs, err := store.Update(ctx, id, func(cs *ChangeSet) error { return cs.Reject(by.Name, reason) })
	if err != nil {
		return nil, message.Envelope{}, err
	}
	m, err := message.New(message.TypeChangeRejected, cs.Env, by, message.TypeChangeRejected+":"+cs.ID,
		message.ChangeRejected{ChangeSetID: cs.ID, Reason: cs.RejectReason})
	if err != nil {
		return nil, message.Envelope{}, err
	}
	m.CorrelationID, m.CausationID = cs.CorrelationID, cs.CorrelationID
	return cs, m, nil
}
