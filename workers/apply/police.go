package apply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/policy"
	"github.com/usekarma/karma/shared/terraform"
)

// Policies before applying. Every plan about to be applied is put to the policies of the change
// set's commit (shared/policy, stage "apply", with the plan's summary and resources):
//
//   - a denial fails the deployment (deployment.failed, stage apply, the error giving the
//     policies' reasons — in the lineage and the audit log); invalid policies deny (fail closed);
//   - a requirement of approval — a policy's, or Karma's own: a plan that destroys resources
//     always needs one — holds the plan for review when the change set is approved by
//     auto-approve alone: the approval is withdrawn (AutoApproveRefused says why) and the plan
//     waits, as a reviewed change set's plans do, for its environment's number of people.

// police decides whether the plan p of node may be applied now; stop means it may not, and out
// (with err) is what to answer instead.
func (w *Worker) police(ctx context.Context, a *attempt, cs *changeset.ChangeSet) (out []message.Envelope, stop bool, err error) {
	d, err := w.decide(ctx, cs, a.node, a.p)
	if err != nil {
		return nil, true, err
	}
	if d.Denied() {
		out, err = a.fail(errors.New(d.DenyReason()))
		return out, true, err
	}
	reason := approvalReason(d, a.p)
	if reason == "" || !cs.AutoApprovedOnly() {
		return nil, false, nil
	}
	p, planID := a.p, a.in.ID
	_, err = w.ChangeSets.Update(ctx, p.ChangeSetID, func(cs *changeset.ChangeSet) error {
		n := cs.Nodes[p.Component]
		if n.Outcome != nil || n.Settled() {
			return nil
		}
		cs.RequireApproval(reason)
		n.State, n.Plan, n.PlanMessageID = changeset.Planned, &p, planID
		return nil
	})
	return nil, true, err
}

// approvalReason says why plan p needs people's approval under decision d: the policies ask for
// it, or it destroys resources; "" when it does not.
func approvalReason(d policy.Decision, p message.DeploymentPlanned) string {
	reason := ""
	if d.NeedsApproval() {
		reason = d.ApprovalReason()
	}
	if p.Plan.Destroy > 0 {
		reason = joinReasons(reason, fmt.Sprintf("the plan of %s destroys %d resource(s): destroys always need an approval", p.Component, p.Plan.Destroy))
	}
	return reason
}

// decide asks the policies about plan p; no policies allow everything.
func (w *Worker) decide(ctx context.Context, cs *changeset.ChangeSet, n *changeset.Node, p message.DeploymentPlanned) (policy.Decision, error) {
	if w.Policies == nil || cs.Commit == "" {
		return policy.Decision{}, nil
	}
	p, err := w.everyResource(ctx, cs, p)
	if err != nil {
		if pipeline.IsTransient(err) {
			return policy.Decision{}, err
		}
		// Fail closed: a rule about a resource left out of the list would not be asked.
		return policy.Decision{Deny: []string{fmt.Sprintf("the policies cannot be shown every resource the plan of %s changes (it lists %d of them): %v",
			p.Component, len(p.Resources), err)}}, nil
	}
	// The diff is against the config deployed (its deployment applied last), not the /config
	// parameter: a change made in Parameter Store has overwritten that already.
	last, err := changeset.LastApplied(ctx, w.ChangeSets, cs.Env, []string{n.Component})
	if err != nil {
		return policy.Decision{}, pipeline.Transient(fmt.Errorf("apply: the deployed config of %s: %w", n.Component, err))
	}
	in := policy.InputOf(cs, n)
	in.Stage, in.Plan = policy.StageApply, policy.PlanOf(p)
	in.Diff = policy.DiffFrom(last[n.Component].DeployedConfig(), in.Config)
	d, err := w.Policies.Evaluate(ctx, cs.Commit, in)
	switch {
	case errors.Is(err, policy.ErrInvalid):
		return policy.Decision{Deny: []string{err.Error()}}, nil
	case err != nil:
		return policy.Decision{}, pipeline.Transient(err)
	}
	return d, nil
}

// everyResource is plan p with every resource it changes, when its deployment.planned lists
// only the first message.MaxPlanResources (ResourcesTruncated): read from the plan file itself
// (terraform.PlanLister), which Apply then applies only if it still hashes to p's hash. A plan
// file changed or gone since (terraform.ErrPlanChanged) is not applied either — Apply finds it
// so and the deployment is planned again, and that plan asked about —: p is returned as it is.
// A runner that cannot list its plans is an error (decide denies the plan: fail closed): the
// policies would be asked about a list cut before the resource a rule is about.
func (w *Worker) everyResource(ctx context.Context, cs *changeset.ChangeSet, p message.DeploymentPlanned) (message.DeploymentPlanned, error) {
	if !p.ResourcesTruncated {
		return p, nil
	}
	lister, ok := w.Runner.(terraform.PlanLister)
	if !ok {
		return p, fmt.Errorf("the terraform runner (%T) cannot list a saved plan's resources (terraform.PlanLister)", w.Runner)
	}
	ws, err := w.Workspaces.For(ctx, p.Component, cs.ModuleCommit(p.Component), json.RawMessage(`{}`))
	if err != nil {
		if pipeline.IsTransient(err) {
			return p, err
		}
		return p, pipeline.Permanent(err)
	}
	all, err := lister.PlanResources(ctx, ws, terraform.PlanResult{Summary: p.Plan, PlanFile: p.PlanFile, PlanHash: p.PlanHash})
	switch {
	case errors.Is(err, terraform.ErrPlanChanged) && ctx.Err() == nil:
		return p, nil
	case err != nil:
		if ctx.Err() != nil || pipeline.Classify(err) != pipeline.DeadLetter {
			return p, pipeline.Transient(err)
		}
		return p, err
	}
	p.Resources, p.ResourcesTruncated = all, false
	return p, nil
}

func joinReasons(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
