package changeset

import (
	"fmt"
	"strings"
	"time"
)

// Policy decisions (shared/policy) applied to a change set. Resolve asks the policies about each
// component it is about to schedule, and the apply stage about each plan it is about to apply:
//
//   - a denial at resolve skips the component (reason "policy-denied", the detail giving the
//     policies' reasons) and decides its dependents as for any skip; at apply it fails the
//     deployment (the apply stage announces deployment.failed with the reasons);
//   - a requirement of approval withdraws an approval that came from auto-approve alone: the
//     change set then waits for people (its environment's number of them), and says why in
//     AutoApproveRefused, and waits no longer than its environment's approval expiry (counted
//     from the withdrawal). An approval by people already satisfies it.

// DenyByPolicy skips a scheduled component that no announcement has made public yet, with the
// policies' reasons, and decides its dependents.
func (cs *ChangeSet) DenyByPolicy(component, reasons string) error {
	n, ok := cs.Nodes[component]
	if !ok {
		return fmt.Errorf("changeset: %s is not in change set %s", component, cs.ID)
	}
	if n.State != Scheduled || n.Announced {
		return fmt.Errorf("changeset: %s of change set %s is %s: only an unannounced scheduled deployment is denied by resolve", component, cs.ID, n.State)
	}
	n.State, n.Reason, n.Detail, n.Plan = Skipped, ReasonPolicyDenied, reasons, nil
	for _, d := range n.Dependents {
		cs.evaluate(d)
	}
	return nil
}

// RequireApproval withdraws an approval that auto-approve alone gave, for reason; it reports
// whether it did (false: people approved already, or nobody had). It is RequireApprovalAt now.
func (cs *ChangeSet) RequireApproval(reason string) bool {
	return cs.RequireApprovalAt(reason, time.Now())
}

// RequireApprovalAt is RequireApproval at now. The change set then waits for people no longer
// than its environment's approval expiry, counted from now — when it began to wait for them
// (Govern set no expiry on a change set approved at creation) — so that it neither waits
// forever nor expires at once, skipping the deployments its auto-approval released and that may
// be applying.
func (cs *ChangeSet) RequireApprovalAt(reason string, now time.Time) bool {
	if !cs.Approved || len(cs.Approvals) > 0 {
		return false
	}
	cs.Approved, cs.ApprovedBy, cs.AutoApprove = false, "", false
	if cs.Rules != nil && cs.Rules.ApprovalExpiry > 0 && cs.ExpiresAt.IsZero() {
		from := cs.CreatedAt
		if now.After(from) {
			from = now.UTC()
		}
		cs.ExpiresAt = from.Add(time.Duration(cs.Rules.ApprovalExpiry))
	}
	if !strings.Contains(cs.AutoApproveRefused, reason) {
		cs.AutoApproveRefused = strings.TrimPrefix(cs.AutoApproveRefused+"; "+reason, "; ")
	}
	return true
}

// AutoApprovedOnly reports whether cs is approved by auto-approve alone (no person approved it).
func (cs *ChangeSet) AutoApprovedOnly() bool { return cs.Approved && len(cs.Approvals) == 0 }
