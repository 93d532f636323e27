package changeset

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/message"
)

// Approval. A change set that is not auto-approved stops at its plans: the apply stage holds
// each planned deployment (state Planned, with its plan) until the change set is approved.
// Approving marks it approved — later waves are then applied as soon as they are planned — and
// releases the plans already held, one deployment.approved each. The messages continue the
// change's story: its actor stays the change's author, correlation its root, cause the
// deployment.planned approved; who approved is in the payload. Approve is the one
// implementation, used by `karma apply` and by the API (POST /changes/{id}/approve).
//
// An environment may need several approvals (govern.go): each eligible approver's approval is
// recorded (Approvals) and the change set is approved — its plans released — with the last one
// needed. An approval by someone who already approved (as any of their names) counts once.

// ErrCannotApprove refuses an approval: the change set is rejected, invalid, superseded or done.
var ErrCannotApprove = errors.New("changeset: cannot approve")

// Approval is what Approve did.
type Approval struct {
	ChangeSet *ChangeSet
	// Messages are the deployment.approved to publish, one per plan held for review.
	Messages []message.Envelope
	// Already: the change set was approved before (ChangeSet.ApprovedBy says by whom); Messages
	// then re-announce the plans approved earlier whose apply is not recorded yet, which the
	// apply stage does once (their idempotency keys are the same), so that approving again after
	// a failed publish loses nothing.
	Already bool
	// Counted: this call recorded by's approval (false for someone who had approved already).
	Counted bool
	// Pending is how many more distinct approvals the change set needs (0 once approved).
	Pending int
}

// Detail is what the audit entry of an approval records (api.change_approved,
// cli.change_approved): what it released and where the change set stands — among that, every
// approval counted so far, by whom and when. "counted" says whether this call added the
// caller's; "approvers" holds it either way, so that an approval retried after its first audit
// entry failed (counted false the second time) still shows in the record that it counts.
func (a Approval) Detail() map[string]any {
	cs := a.ChangeSet
	approvers := make([]map[string]any, len(cs.Approvals))
	for i, ap := range cs.Approvals {
		approvers[i] = map[string]any{"by": ap.By, "person": ap.Person, "at": ap.At.UTC().Format(time.RFC3339Nano)}
	}
	return map[string]any{"change_set_id": cs.ID, "released": len(a.Messages), "approved_by": cs.ApprovedBy, "already_approved": a.Already,
		"approvals": len(cs.Approvals), "approvals_required": cs.Required(), "counted": a.Counted, "approvers": approvers}
}

// CanBeApproved reports why cs may not be approved, or nil.
func (cs *ChangeSet) CanBeApproved() error {
	switch {
	case cs.Rejected != "":
		return fmt.Errorf("%w: change set %s is invalid, nothing of it is deployed: %s", ErrCannotApprove, cs.ID, cs.Rejected)
	case cs.RejectedBy != "":
		return fmt.Errorf("%w: change set %s was rejected by %s: %s", ErrCannotApprove, cs.ID, cs.RejectedBy, cs.RejectReason)
	case cs.SupersededBy != "":
		return fmt.Errorf("%w: change set %s was superseded by %s", ErrCannotApprove, cs.ID, cs.SupersededBy)
	case !cs.ExpiredAt.IsZero():
		return fmt.Errorf("%w: change set %s expired at %s without its approvals: commit or request the change again", ErrCannotApprove, cs.ID, cs.ExpiresAt.Format(time.RFC3339))
	case cs.Done() && !cs.Approved:
		return fmt.Errorf("%w: change set %s is done: nothing of it waits for approval", ErrCannotApprove, cs.ID)
	}
	return nil
}

// Updater is the part of Store that Approve uses.
type Updater interface {
	Update(ctx context.Context, id string, fn func(*ChangeSet) error) (*ChangeSet, error)
}

// Approve records by's approval of change set id in store, now, and — when it is the last
// approval needed — approves it and returns the messages releasing its held plans. Errors:
// ErrNotFound, ErrCannotApprove (wrapped), *IneligibleError (ErrIneligible), or the store's.
func Approve(ctx context.Context, store Updater, id, by string) (Approval, error) {
	return ApproveAt(ctx, store, id, by, time.Now().UTC())
}

// ApproveAt is Approve at a given time.
func ApproveAt(ctx context.Context, store Updater, id, by string, now time.Time) (Approval, error) {
	return ApproveSeenAt(ctx, store, id, by, now, nil)
}

// ErrPlansChanged refuses an approval given for plans other than those held now
// (ApproveSeenAt): a plan made again (a stale plan, a retry) while the approver read the old one.
var ErrPlansChanged = errors.New("changeset: the plans held are not the ones the approval was given for")

// ApproveSeenAt is ApproveAt of an approver who says which plans they saw: seen maps each
// component whose plan is held for review to the plan's hash (message.DeploymentPlanned's
// plan_hash). The approval is refused (ErrPlansChanged, wrapped, naming each difference) unless
// every plan held now is one seen — so a plan made again while the approver read the one before
// is not applied on an approval given to the other — and, until the change set is approved, no
// deployment is still being planned (its plan, made after the approval, would be applied unread).
// A seen plan no longer held (applied, skipped) does not matter. nil seen: whatever is held
// (an API request without plans); the CLI passes the plans it printed (cmd/karma, showPlans).
func ApproveSeenAt(ctx context.Context, store Updater, id, by string, now time.Time, seen map[string]string) (Approval, error) {
	var a Approval
	var held []string // component ids
	cs, err := store.Update(ctx, id, func(cs *ChangeSet) error {
		held, a.Already, a.Counted = nil, cs.Approved, false // Update may run fn again after a lost race
		if err := cs.CanBeApprovedBy(by, now); err != nil {
			return err
		}
		if seen != nil {
			if err := cs.heldAsSeen(seen); err != nil {
				return err
			}
		}
		if !cs.Approved {
			a.Counted = cs.addApproval(by, now)
			if len(cs.Approvals) < cs.Required() {
				return nil // recorded; more approvals needed
			}
			cs.Approved, cs.ApprovedBy = true, cs.approvers()
		}
		for _, id := range cs.order() {
			n := cs.Nodes[id]
			switch {
			case n.State == Planned && n.Plan != nil:
				n.State = Scheduled // released: the apply stage applies it on deployment.approved
				held = append(held, id)
			case n.State == Scheduled && n.Plan != nil && n.Outcome == nil:
				held = append(held, id) // released earlier, not applied yet: announced again
			}
		}
		return nil
	})
	if err != nil {
		return Approval{}, err
	}
	a.ChangeSet = cs
	if !cs.Approved {
		a.Pending = cs.Required() - len(cs.Approvals)
	}
	for _, id := range held {
		n := cs.Nodes[id]
		m, err := message.New(message.TypeDeploymentApproved, cs.Env, cs.Actor, message.ApprovalKey(*n.Plan),
			message.DeploymentApproved{DeploymentPlanned: *n.Plan, ApprovedBy: cs.ApprovedBy})
		if err != nil {
			return Approval{}, err
		}
		m.CorrelationID, m.CausationID = cs.CorrelationID, n.PlanMessageID
		a.Messages = append(a.Messages, m)
	}
	return a, nil
}

// heldAsSeen refuses unless every plan held for review is the one seen names for its component,
// and — in a change set not approved yet — no deployment is still being planned: approved now,
// its plan would be applied as soon as it is made, read by nobody.
func (cs *ChangeSet) heldAsSeen(seen map[string]string) error {
	var diffs []string
	for _, id := range cs.order() {
		n := cs.Nodes[id]
		if !cs.Approved && n.State == Scheduled && n.Plan == nil && n.Outcome == nil {
			diffs = append(diffs, fmt.Sprintf("%s is still being planned, and its plan would be applied unread", id))
			continue
		}
		if n.State != Planned || n.Plan == nil {
			continue
		}
		switch h, ok := seen[id]; {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s holds plan %s, which the approval does not name", id, short(n.Plan.PlanHash)))
		case h != n.Plan.PlanHash:
			diffs = append(diffs, fmt.Sprintf("%s holds plan %s, not %s", id, short(n.Plan.PlanHash), short(h)))
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%w: change set %s: %s: read the plans again (GET /changes/%s), then approve", ErrPlansChanged, cs.ID, strings.Join(diffs, "; "), cs.ID)
	}
	return nil
}

// short is a plan hash's first 12 characters.
func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// addApproval records by's approval unless the same person approved already; it reports
// whether it did.
func (cs *ChangeSet) addApproval(by string, now time.Time) bool {
	person := cs.identities().Person(by)
	for _, a := range cs.Approvals {
		if a.Person == person {
			return false
		}
	}
	cs.Approvals = append(cs.Approvals, Approver{By: by, Person: person, At: now})
	return true
}
