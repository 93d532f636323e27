package changeset

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/governance"
)

// Governance of a change set (shared/governance has the rules). Resolve copies the rules of the
// change set's environment, as its commit's karma.json has them, into the change set when it
// creates it (Govern), so that a change is judged by the rules of its own commit whatever
// happens to karma.json later:
//
//   - auto-approve is downgraded to review where the environment never auto-approves (a
//     protected one): AutoApproveRefused says why, and change.resolved carries it; it is granted
//     to every change set where the environment always auto-approves;
//   - approvals accumulate (Approvals: who, as which person, when): the change set is approved
//     when the environment's number of distinct people approved it. In a protected environment
//     an approver who is the change's requester (its actor) or its commit's author is refused
//     (*IneligibleError), with the reason;
//   - a change set not approved by ExpiresAt (created + approval_expiry; withdrawal +
//     approval_expiry once an approval was withdrawn) can no longer be approved; Expire skips
//     what is left of it (reason "expired"), as a rejection does.

// Approver is one approval of a change set.
type Approver struct {
	By     string    `json:"by"`     // the name the approver came by (CLI user, token name, ARN)
	Person string    `json:"person"` // who that is (governance.Identities.Person)
	At     time.Time `json:"at"`
}

// Govern records the environment's rules and the commit's author in a new change set, and
// applies its auto-approve policy and expiry.
func (cs *ChangeSet) Govern(r governance.Rules, author string) {
	cs.Rules, cs.Author = &r, author
	switch r.AutoApprovePolicy() {
	case governance.AutoApproveNever:
		if cs.AutoApprove {
			why := "environment " + cs.Env + " is protected"
			if !r.Protected {
				why = "environment " + cs.Env + " never auto-approves (karma.json auto_approve: never)"
			}
			cs.AutoApprove, cs.Approved, cs.ApprovedBy = false, false, ""
			cs.AutoApproveRefused = "auto-approve was asked for and refused: " + why + "; the change waits for " + plural(r.Required(), "approval")
		}
	case governance.AutoApproveAlways:
		cs.AutoApprove, cs.Approved = true, true
		cs.ApprovedBy = "auto-approve (environment " + cs.Env + " approves every change: karma.json auto_approve: always)"
	}
	if d := time.Duration(r.ApprovalExpiry); d > 0 && !cs.Approved {
		cs.ExpiresAt = cs.CreatedAt.Add(d)
	}
}

// WithdrawApproval forgets the approval and the approvals given so far: what they approved is no
// longer what would be applied (a plan made again after it went stale, a failure run again). It
// is WithdrawApprovalAt now.
func (cs *ChangeSet) WithdrawApproval() { cs.WithdrawApprovalAt(time.Now()) }

// WithdrawApprovalAt is WithdrawApproval at now. The new plans wait for people a whole approval
// expiry, counted from now (or until the expiry already set, when later): a change set approved
// in time is not expired for the time its approvers took then, and its new plans can be
// approved.
func (cs *ChangeSet) WithdrawApprovalAt(now time.Time) {
	cs.Approved, cs.ApprovedBy, cs.Approvals = false, "", nil
	if cs.Rules == nil || cs.Rules.ApprovalExpiry <= 0 || !cs.ExpiredAt.IsZero() {
		return
	}
	if at := now.UTC().Add(time.Duration(cs.Rules.ApprovalExpiry)); at.After(cs.ExpiresAt) {
		cs.ExpiresAt = at
	}
}

// Required is how many distinct people must approve cs.
func (cs *ChangeSet) Required() int {
	if cs.Rules == nil {
		return 1
	}
	return cs.Rules.Required()
}

func (cs *ChangeSet) identities() governance.Identities {
	if cs.Rules == nil {
		return nil
	}
	return cs.Rules.Identities
}

// ErrIneligible refuses an approver: separation of duties.
var ErrIneligible = errors.New("changeset: approver not eligible")

// IneligibleError says why an approver may not approve a change set.
type IneligibleError struct {
	ChangeSet string
	Approver  string
	Role      string // "requester", "author", "pusher", "push-author" or "parameter-writer"
	Name      string // the requester's or author's name
}

func (e *IneligibleError) Error() string {
	what := "requested it"
	switch e.Role {
	case RoleAuthor:
		what = "wrote its commit"
	case RolePushAuthor:
		what = "wrote a commit of its push"
	case RolePusher:
		what = "pushed it"
	case RoleCoveredWriter:
		what = "wrote a version of the parameter it deploys"
	}
	return fmt.Sprintf("%s may not approve change set %s: %s %s, and an approval must come from someone else (separation of duties)",
		e.Approver, e.ChangeSet, e.Name, what)
}

// Unwrap makes errors.Is(err, ErrIneligible) hold.
func (e *IneligibleError) Unwrap() error { return ErrIneligible }

// Roles an ineligible approver holds.
const (
	RoleRequester  = "requester"
	RoleAuthor     = "author"
	RolePusher     = "pusher"
	RolePushAuthor = "push-author"
	// RoleCoveredWriter: the writer of an earlier parameter version the change carries
	// (CoveredWriters).
	RoleCoveredWriter = "parameter-writer"
)

// CanBeApprovedBy reports why by may not approve cs at now, or nil: by is empty (an approval
// names who approves: an empty name is nobody, whom no rule could refuse), the change set cannot
// be approved (CanBeApproved), it expired, or — in a protected environment — by is its requester,
// its commit's author, its pusher or a push author, or the writer of a parameter version it
// carries.
func (cs *ChangeSet) CanBeApprovedBy(by string, now time.Time) error {
	if strings.TrimSpace(by) == "" {
		return fmt.Errorf("%w: change set %s: the approver's name is empty: an approval names who approves", ErrCannotApprove, cs.ID)
	}
	if err := cs.CanBeApproved(); err != nil {
		return err
	}
	if cs.PastExpiry(now) {
		return fmt.Errorf("%w: change set %s expired at %s: it was not approved within %s; commit or request the change again",
			ErrCannotApprove, cs.ID, cs.ExpiresAt.Format(time.RFC3339), time.Duration(cs.Rules.ApprovalExpiry))
	}
	if cs.Rules == nil || !cs.Rules.Protected {
		return nil
	}
	ids := cs.Rules.Identities
	switch {
	case ids.Same(by, cs.Actor.Name):
		return &IneligibleError{ChangeSet: cs.ID, Approver: by, Role: RoleRequester, Name: cs.Actor.Name}
	case ids.Same(by, cs.Author):
		return &IneligibleError{ChangeSet: cs.ID, Approver: by, Role: RoleAuthor, Name: cs.Author}
	case cs.Pusher != "" && ids.Same(by, cs.Pusher):
		return &IneligibleError{ChangeSet: cs.ID, Approver: by, Role: RolePusher, Name: cs.Pusher}
	}
	for _, a := range cs.PushAuthors {
		if ids.Same(by, a) {
			return &IneligibleError{ChangeSet: cs.ID, Approver: by, Role: RolePushAuthor, Name: a}
		}
	}
	for _, a := range cs.CoveredWriters {
		if ids.Same(by, a) {
			return &IneligibleError{ChangeSet: cs.ID, Approver: by, Role: RoleCoveredWriter, Name: a}
		}
	}
	return nil
}

// PastExpiry reports whether cs waited for approval past its expiry (whether or not Expire ran).
func (cs *ChangeSet) PastExpiry(now time.Time) bool {
	return !cs.ExpiresAt.IsZero() && !cs.Approved && !now.Before(cs.ExpiresAt)
}

// Expirable reports whether the expiry sweep should expire cs: past its expiry, not expired yet,
// and with something left to skip.
func (cs *ChangeSet) Expirable(now time.Time) bool {
	return cs.PastExpiry(now) && cs.ExpiredAt.IsZero() && cs.RejectedBy == "" && cs.Rejected == "" && cs.SupersededBy == "" && !cs.Done()
}

// ErrCannotExpire: the change set was approved (in time), or is settled otherwise.
var ErrCannotExpire = errors.New("changeset: cannot expire")

// Expire skips every node of cs not settled — pending, being planned, or planned and waiting for
// approval — with reason "expired", and records when. A redelivery finds it expired: nothing
// changes. It refuses a change set approved in time, and one that ended otherwise — rejected
// (the rejection skips what is left, naming who and why), superseded, invalid, or done — since
// the sweep published the change.expired: it did not expire.
func (cs *ChangeSet) Expire(at time.Time) error {
	switch {
	case !cs.ExpiredAt.IsZero():
		return nil
	case cs.Approved:
		return fmt.Errorf("%w: change set %s was approved (by %s) before it expired", ErrCannotExpire, cs.ID, cs.ApprovedBy)
	case cs.RejectedBy != "":
		return fmt.Errorf("%w: change set %s was rejected by %s before it expired", ErrCannotExpire, cs.ID, cs.RejectedBy)
	case cs.Rejected != "":
		return fmt.Errorf("%w: change set %s is invalid: nothing of it is deployed", ErrCannotExpire, cs.ID)
	case cs.SupersededBy != "":
		return fmt.Errorf("%w: change set %s was superseded by %s before it expired", ErrCannotExpire, cs.ID, cs.SupersededBy)
	case cs.Done():
		return fmt.Errorf("%w: change set %s ended before it expired: nothing of it waits for approval", ErrCannotExpire, cs.ID)
	case cs.ExpiresAt.IsZero() || at.Before(cs.ExpiresAt):
		return fmt.Errorf("%w: change set %s does not expire before %s", ErrCannotExpire, cs.ID, cs.ExpiresAt.Format(time.RFC3339))
	}
	cs.ExpiredAt = at
	detail := fmt.Sprintf("not approved within %s (%s of %s): expired at %s", time.Duration(cs.Rules.ApprovalExpiry),
		plural(len(cs.Approvals), "approval"), plural(cs.Required(), "needed"), cs.ExpiresAt.Format(time.RFC3339))
	cs.QueuedBehind = nil
	cs.Started = true
	for _, id := range cs.order() {
		n := cs.Nodes[id]
		if n.Settled() {
			continue
		}
		n.State, n.Reason, n.Detail, n.Plan, n.Announced = Skipped, ReasonExpired, detail, nil, false
	}
	return nil
}

// approvers lists who approved, for people.
func (cs *ChangeSet) approvers() string {
	names := make([]string, len(cs.Approvals))
	for i, a := range cs.Approvals {
		names[i] = a.By
	}
	return strings.Join(names, ", ")
}

func plural(n int, what string) string {
	if n == 1 || strings.HasSuffix(what, "ed") {
		return fmt.Sprintf("%d %s", n, what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}
