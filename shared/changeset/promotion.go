package changeset

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/message"
)

// Promotions. A commit that concerns several environments of the promotion order (karma.json's
// "promotion") runs in one of them at a time: in the first at once, in each next one only once
// the previous change set succeeded (every component applied, or skipped because nothing it
// consumes changed) and its soak has elapsed. The change set records where the change goes next
// (Promotion) and, once it succeeded, from when (DueAt). Whoever finds a promotion due publishes
// the next environment's change.detected — resolve at once when there is no soak; else karma
// plan/apply/promote, karma serve's timer or the scheduled function (shared/promotion) — and
// records it promoted. A failure, a rejection or a supersession stops the promotion where it
// is; `karma retry` of a failure lets it go on once the change set succeeds after all.

// Promotion is where a change goes after this change set.
type Promotion struct {
	Next string   `json:"next"`           // the next environment of the order
	Then []string `json:"then,omitempty"` // the environments after Next, in order
	// Soak is how long the change runs here, after applying, before Next starts.
	Soak time.Duration `json:"soak,omitempty"`
	// Files, Removed, Commit and AutoApprove are the change as the next environment receives it.
	Files       []string               `json:"files,omitempty"`
	Removed     []message.ComponentRef `json:"removed,omitempty"`
	Commit      *message.Commit        `json:"commit,omitempty"`
	AutoApprove bool                   `json:"auto_approve,omitempty"`
	// DueAt is set once the change set succeeded: Next may start from then.
	DueAt time.Time `json:"due_at,omitzero"`
	// Soaked: something was applied here, so the change soaked (Soak) before DueAt.
	Soaked bool `json:"soaked,omitempty"`
	// SoakSkipped records who ended the soak early, and why.
	SoakSkipped *message.GateSkip `json:"soak_skipped,omitempty"`
	// PromotedAt is when the next environment's change was published.
	PromotedAt time.Time `json:"promoted_at,omitzero"`
}

// Hold is a change into the change set's environment that resolve did not build, as it is:
// a promotion, when the environment was deployed since at a later tree that changes, in what
// the promotion deploys, what has not been through the environments before it yet
// (workers/resolve's heldPromotion); or a commit's change entering the environment without a
// promotion (a hotfix of it), when its own tree carries, in what it deploys, an earlier change
// still on its way through the environments before (heldChange). Nothing of it is deployed;
// the change set has no nodes. It is tried again, as a change set of its own
// ("<change>/<env>@<attempt>"), by whoever checks for due promotions (shared/promotion's Start)
// once the environments it waits for moved (HeldOn differs from On); RetriedAs names that try.
type Hold struct {
	Reason  string `json:"reason"`
	Attempt int    `json:"attempt"` // 1 for the first try
	// Waiting are the environments before this one whose change sets it waits for.
	Waiting []string `json:"waiting,omitempty"`
	// On is HeldOn when it was held.
	On        string `json:"on,omitempty"`
	RetriedAs string `json:"retried_as,omitempty"`
	// Change is, for a held change that is not a promotion, the change as its next try
	// receives it (a promotion's is the Promotion of the change set it comes from).
	Change *HeldChange `json:"change,omitempty"`
}

// HeldChange is a commit's change held in an environment it enters without a promotion.
type HeldChange struct {
	Files       []string               `json:"files,omitempty"`
	Removed     []message.ComponentRef `json:"removed,omitempty"`
	Commit      *message.Commit        `json:"commit"`
	AutoApprove bool                   `json:"auto_approve,omitempty"`
}

// HeldOn is what a promotion held in env, as change set except, waits for: env's change sets
// that are not held promotions (a later one changes the tree the promotion would be built at)
// and the change sets of the waiting environments that passed there (their soak over), by id.
// When it differs from the hold's On, trying the promotion again may build it.
func HeldOn(sets []*ChangeSet, env string, waiting []string, except string, now time.Time) string {
	var ids []string
	for _, cs := range sets {
		switch {
		case cs.ID == except:
		case cs.Env == env && cs.Held == nil:
			ids = append(ids, cs.ID)
		case slices.Contains(waiting, cs.Env) && cs.Passed(now):
			ids = append(ids, cs.ID)
		}
	}
	sort.Strings(ids)
	sum := sha256.Sum256([]byte(strings.Join(ids, "\n")))
	return hex.EncodeToString(sum[:])
}

// Passed reports whether the change went through the change set's environment: it succeeded
// here and its soak is over (ended early, or promoted onwards).
func (cs *ChangeSet) Passed(now time.Time) bool {
	p := cs.Promotion
	return p != nil && cs.Succeeded() && !p.DueAt.IsZero() && (!p.PromotedAt.IsZero() || cs.PromotionDue(now))
}

// AttemptID is the change set of the attempt-th try of promoting change into env: the first
// is "<change>/<env>", a try after a hold "<change>/<env>@<attempt>".
func AttemptID(change, env string, attempt int) string {
	if attempt <= 1 {
		return change + "/" + env
	}
	return fmt.Sprintf("%s/%s@%d", change, env, attempt)
}

// Succeeded reports whether the change set is done and deployed everything it had to: no
// component failed or was blocked, none was skipped for another reason than "nothing it consumes
// changed" (or a held destroy), it was neither rejected nor superseded, nor is it a held
// promotion.
func (cs *ChangeSet) Succeeded() bool { return cs.Done() && cs.Held == nil && cs.Stopped() == "" }

// Stopped says why a change set that is done did not succeed, naming the components and their
// deployments; "" when it succeeded or is not done.
func (cs *ChangeSet) Stopped() string {
	switch {
	case cs.Rejected != "":
		return "rejected: " + firstLine(cs.Rejected)
	case cs.RejectedBy != "":
		return "rejected by " + cs.RejectedBy + ": " + firstLine(cs.RejectReason)
	case cs.SupersededBy != "":
		return "superseded by " + cs.SupersededBy
	case !cs.Done():
		return ""
	}
	var why []string
	for _, id := range cs.order() {
		n := cs.Nodes[id]
		switch {
		case n.State == Failed:
			why = append(why, fmt.Sprintf("%s failed (%s): %s", id, n.DeploymentID, firstLine(n.Detail)))
		case n.State == Skipped && n.Reason != ReasonNoConsumedKey && n.Reason != ReasonDestroyHeld:
			why = append(why, fmt.Sprintf("%s not deployed (%s): %s", id, n.Reason, firstLine(n.Detail)))
		}
	}
	return strings.Join(why, "; ")
}

// SettlePromotion makes the promotion due once the change set succeeded: after the soak, or at
// once when nothing was applied here (there is nothing to soak). It runs whenever the change set
// changes and decides once.
func (cs *ChangeSet) SettlePromotion(now time.Time) {
	p := cs.Promotion
	if p == nil || !p.DueAt.IsZero() || !cs.Succeeded() {
		return
	}
	p.Soaked = cs.appliedAny() && p.Soak > 0
	p.DueAt = now.UTC().Truncate(time.Millisecond)
	if p.Soaked {
		p.DueAt = p.DueAt.Add(p.Soak)
	}
}

// PromotionDue reports whether the next environment's change is to be published now: the
// change set succeeded, its soak elapsed (or was skipped), and it was not published yet.
func (cs *ChangeSet) PromotionDue(now time.Time) bool {
	p := cs.Promotion
	if p == nil || p.DueAt.IsZero() || !p.PromotedAt.IsZero() {
		return false
	}
	return p.SoakSkipped != nil || !now.Before(p.DueAt)
}

// PromotionWaiting reports whether the change set has work for whoever checks for due promotions
// (shared/promotion's Start), now or later: its promotion's soak started (DueAt) and it was not
// published yet, or it is a held try neither tried again (RetriedAs) nor rejected. Unlike
// PromotionDue it does not depend on the time, so a store can keep a record of it with each
// write (PromotionLister).
func (cs *ChangeSet) PromotionWaiting() bool {
	if p := cs.Promotion; p != nil && !p.DueAt.IsZero() && p.PromotedAt.IsZero() {
		return true
	}
	return cs.Held != nil && cs.Held.RetriedAs == "" && cs.RejectedBy == ""
}

// NextChangeSetID is the change set the promotion creates in the next environment.
func (cs *ChangeSet) NextChangeSetID() string {
	if cs.Promotion == nil {
		return ""
	}
	return cs.CorrelationID + "/" + cs.Promotion.Next
}

// ErrNoSoak refuses to skip a soak the change is not in.
var ErrNoSoak = errors.New("changeset: not soaking")

// SkipSoak ends a running soak early, recording who and why; the promotion is then due. Nobody
// (an empty name) may not end it, nor anyone without a reason (a blank one): both are on the
// record.
func (cs *ChangeSet) SkipSoak(by, reason string, now time.Time) error {
	p := cs.Promotion
	switch {
	case strings.TrimSpace(by) == "":
		return fmt.Errorf("changeset: change set %s: the name of who ends the soak is empty: ending a soak early names who ends it", cs.ID)
	case strings.TrimSpace(reason) == "":
		return fmt.Errorf("changeset: change set %s: the reason is empty: ending a soak early says why, for the record", cs.ID)
	case p == nil:
		return fmt.Errorf("%w: change set %s promotes nowhere", ErrNoSoak, cs.ID)
	case p.DueAt.IsZero():
		return fmt.Errorf("%w: change set %s has not succeeded (yet)", ErrNoSoak, cs.ID)
	case !p.PromotedAt.IsZero() || p.SoakSkipped != nil || !now.Before(p.DueAt):
		return fmt.Errorf("%w: change set %s's soak is over", ErrNoSoak, cs.ID)
	}
	p.SoakSkipped = &message.GateSkip{By: by, Reason: reason}
	return nil
}

// MarkPromoted records the next environment's change as published.
func (cs *ChangeSet) MarkPromoted(now time.Time) {
	if cs.Promotion != nil && cs.Promotion.PromotedAt.IsZero() {
		cs.Promotion.PromotedAt = now.UTC().Truncate(time.Millisecond)
	}
}

func (cs *ChangeSet) appliedAny() bool {
	for _, n := range cs.Nodes {
		if n.State == Applied {
			return true
		}
	}
	return false
}

// PlannedAwaitingApproval lists the components whose plans wait for the change set's approval.
func (cs *ChangeSet) PlannedAwaitingApproval() []string {
	var out []string
	for id, n := range cs.Nodes {
		if n.State == Planned && !cs.Approved {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
