package apply

import (
	"context"
	"errors"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/terraform"
)

// A stale plan: terraform can no longer apply the reviewed plan as reviewed
// (terraform.ErrPlanChanged) — the workspace's state changed after it was made (an apply
// interrupted half-way, a run outside Karma) or the plan file is gone. The deployment is planned
// again. An auto-approved change set applies the new plan at once, once the policies allow it as
// police allows any plan: denied, the deployment fails; needing people's approval (a policy's,
// or a destroy), it is held as in a reviewed one, the auto-approval refused. Denied, applied or
// failed applying, the new plan is announced (a deployment.planned keyed by its hash) before the
// outcome it causes: the record names the plan applied, not the stale one. In a reviewed one
// nobody has seen the new plan: the node goes back to Planned holding it, the change set's approval is
// withdrawn (`karma plan` and `karma apply` show it waiting; `karma apply` approves it again),
// and the new plan is announced in a deployment.planned keyed by its hash — a new fact, which
// the approval of the old plan does not cover.

func (w *Worker) stalePlan(ctx context.Context, a *attempt) ([]message.Envelope, error) {
	// A concurrent delivery of the deployment may have applied the plan (which removes its file).
	cs, err := w.ChangeSets.Get(ctx, a.p.ChangeSetID)
	if err != nil {
		return nil, pipeline.Transient(err)
	}
	n := cs.Nodes[a.p.Component]
	if o := n.Outcome; o != nil {
		return w.finishAndAnnounce(ctx, a.store, a.in, a.p, *o, a.fail)
	}
	// Terraform refused the stale plan before changing anything: a deployment skipped (rejected,
	// expired) or otherwise settled meanwhile is left as it was decided, neither planned nor
	// applied again. One still scheduled but no longer covered by an approval (withdrawn since)
	// is held for review with its new plan, even in a change set that was auto-approved.
	why := notWaiting(a.in, cs, n, a.p)
	if n.Settled() || n.DeploymentID != a.p.DeploymentID {
		return notApplied(a.p, why)
	}
	res, err := w.Runner.Plan(ctx, a.ws)
	if err != nil {
		return terraformFailed(ctx, err, a.fail)
	}
	if a.autoApprove && why == "" {
		// The new plan is put to the policies as the stale one was (police): one they deny
		// fails the deployment; one needing people's approval (theirs, or a destroy) is held
		// for review, the auto-approval refused.
		np := replannedPlan(a.p, res)
		d, err := w.decide(ctx, cs, n, np)
		if err != nil {
			return nil, err
		}
		if d.Denied() {
			return failedOver(a, np)(errors.New(d.DenyReason()))
		}
		if reason := approvalReason(d, np); reason != "" {
			return w.holdForReview(ctx, a, res, reason)
		}
		// From here on the new plan is the one applied: its outcome, whichever, is announced
		// after it (a deployment.planned keyed by its hash, as one held for review), caused by
		// it — never as the outcome of the stale plan, which was not applied.
		a.fail = failedOver(a, np)
		outputs, err := w.Runner.Apply(ctx, a.ws, res)
		if err != nil {
			return terraformFailed(ctx, err, a.fail)
		}
		a.replanned = &replan{plan: np, id: a.in.MustDerive(message.TypeDeploymentPlanned, ReplannedKey(np), np).ID}
		return w.record(ctx, a, outputs)
	}
	return w.holdForReview(ctx, a, res, "")
}

// failedOver fails the deployment of attempt a over np, its stale plan made again: np — the plan
// the policies denied, or the one terraform was applying when it failed, perhaps having changed
// some of its resources — is announced first, and causes the deployment.failed.
func failedOver(a *attempt, np message.DeploymentPlanned) func(error) ([]message.Envelope, error) {
	return func(err error) ([]message.Envelope, error) {
		planned := a.in.MustDerive(message.TypeDeploymentPlanned, ReplannedKey(np), np)
		if a.replanned != nil { // recorded with an outcome that could not be published: the same message
			planned.ID = a.replanned.id
		}
		f := message.DeploymentFailed{ChangeSetID: np.ChangeSetID, DeploymentID: np.DeploymentID, Component: np.Component, Wave: np.Wave, Stage: "apply", Error: err.Error()}
		return []message.Envelope{planned, planned.MustDerive(message.TypeDeploymentFailed, "deployment.failed:"+np.DeploymentID, f)}, nil
	}
}

// replannedPlan is plan p made again: res.
func replannedPlan(p message.DeploymentPlanned, res terraform.PlanResult) message.DeploymentPlanned {
	p.Plan, p.PlanFile, p.PlanHash = res.Summary, res.PlanFile, res.PlanHash
	p.Resources, p.ResourcesTruncated = res.Resources, res.ResourcesTruncated
	return p
}

// holdForReview puts the deployment back to Planned with the new plan and announces it — unless
// it was applied (its outcome is announced) or settled otherwise meanwhile (skipped, failed,
// blocked: it stays as decided, the approval is not withdrawn and nothing is announced). refused,
// when set, is why an auto-approval may not apply the new plan (changeset.RequireApproval).
func (w *Worker) holdForReview(ctx context.Context, a *attempt, res terraform.PlanResult, refused string) ([]message.Envelope, error) {
	np := replannedPlan(a.p, res)
	out := a.in.MustDerive(message.TypeDeploymentPlanned, ReplannedKey(np), np)
	var applied *changeset.Outcome
	settled := "" // why the node is not held again: it was decided meanwhile
	_, err := w.ChangeSets.Update(ctx, a.p.ChangeSetID, func(cs *changeset.ChangeSet) error {
		n := cs.Nodes[a.p.Component]
		settled = ""
		if applied = n.Outcome; applied != nil {
			return nil
		}
		if n.Settled() || n.DeploymentID != a.p.DeploymentID {
			settled = notWaiting(a.in, cs, n, a.p) // skipped, failed, ...: never revived
			return nil
		}
		if refused != "" {
			cs.RequireApproval(refused)
		}
		cs.WithdrawApproval() // nobody has seen the new plan: every approval is needed again
		n.State, n.Plan, n.PlanMessageID = changeset.Planned, &np, out.ID
		return nil
	})
	switch {
	case err != nil:
		return nil, err
	case applied != nil:
		return w.finishAndAnnounce(ctx, a.store, a.in, a.p, *applied, a.fail)
	case settled != "":
		return notApplied(a.p, settled)
	}
	return []message.Envelope{out}, nil
}

// replaced handles an approval of a plan that was replaced since by a new one waiting for
// review (the approval was delivered again after the plan went stale): it approves nothing, and
// the held plan is announced again — the same message, by id and key.
func replaced(in message.Envelope, node *changeset.Node, approved message.DeploymentPlanned) (message.Envelope, bool) {
	if node.Outcome != nil || node.State != changeset.Planned || node.Plan == nil || node.Plan.PlanHash == approved.PlanHash {
		return message.Envelope{}, false
	}
	out := in.MustDerive(message.TypeDeploymentPlanned, ReplannedKey(*node.Plan), *node.Plan)
	out.ID = node.PlanMessageID
	return out, true
}
