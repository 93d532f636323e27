// Package apply is the stage that applies exactly the reviewed plan of a deployment, publishes
// the Terraform outputs to <prefix>/<type>/<nickname>/runtime (and the deployed config to
// .../config), and reports which runtime keys changed — which is what starts the next wave for
// the dependents that consume them, and no others.
//
// Input: deployment.planned (applied at once when the change set is approved, else held until
// approval), deployment.approved. Output: deployment.applied or deployment.failed.
//
// Idempotency: the outcome is recorded in the change set node before it is announced (on the
// embedded file in the transaction that publishes it); a redelivered message re-announces it
// without running Terraform again.
//
// Only a deployment still waiting to be applied, under an approval that covers it, is applied
// (notWaiting): one skipped meanwhile (a rejection or an expiry after the change set's approval
// was withdrawn), settled otherwise, or whose change set is no longer approved runs no
// Terraform and is announced neither applied nor failed; the message is acknowledged as a
// no-op, with the reason in the stage's log. Should the skip come while Terraform runs, the
// apply happened: its outcome is recorded on the node and announced like any other.
//
// A stale plan (the workspace's state changed after planning, e.g. a previous attempt died
// mid-apply) is planned again: an auto-approved change set applies the new plan when the
// policies allow it without people (police.go); otherwise, and in a reviewed change set, the new
// plan waits for a new review (stale.go). Terraform's failures fail the deployment
// with terraform's diagnostics; interrupted runs are retried (pipeline.Classify decides).
package apply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/policy"
	"github.com/usekarma/karma/shared/terraform"
	"github.com/usekarma/karma/workers/internal/references"
)

// Worker is the apply stage.
type Worker struct {
	ChangeSets changeset.Store
	Params     func(env string) (params.Store, error)
	Runner     terraform.Runner
	Workspaces terraform.Workspaces
	// Policies are asked about every plan before it is applied (police.go); nil: none (Karma's
	// own rule still holds: a destroying plan needs people's approval).
	Policies policy.Evaluator
	// Atomic runs fn so that the stores' writes made through its context commit together (the
	// embedded file's transaction: embedded.DB.Atomically); nil runs fn as it is, each write on
	// its own (AWS). Apply publishes a recorded outcome — runtime, config and the version in the
	// change set — in one.
	Atomic func(ctx context.Context, fn func(ctx context.Context) error) error
}

// atomic is Atomic, or fn run as it is.
func (w *Worker) atomic(ctx context.Context, fn func(ctx context.Context) error) error {
	if w.Atomic == nil {
		return fn(ctx)
	}
	return w.Atomic(ctx, fn)
}

// Handle applies, or holds for approval.
func (w *Worker) Handle(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
	var p message.DeploymentPlanned
	var cs *changeset.ChangeSet // as the update below left it; nil: read it
	switch in.Type {
	case message.TypeDeploymentPlanned:
		if err := message.Decode(in, &p); err != nil {
			return nil, err
		}
		if in.IdempotencyKey == ReplannedKey(p) {
			// A plan this stage made again from a stale one (stale.go), delivered to it by its
			// route: decided when it was made — held for review, or applied, its
			// deployment.applied announced with it. Nothing to do; applying or announcing
			// again would record twice what happened once.
			return nil, nil
		}
		held := false
		var err error
		cs, err = w.ChangeSets.Update(ctx, p.ChangeSetID, func(cs *changeset.ChangeSet) error {
			held = false // the store may run this again after a lost race
			n := cs.Nodes[p.Component]
			if n == nil {
				return pipeline.Permanent(fmt.Errorf("apply: %s is not in change set %s", p.Component, p.ChangeSetID))
			}
			switch {
			case n.Settled() && n.Outcome == nil:
				held = true // decided already (failed, skipped, ...): nothing to apply
			case n.State == changeset.Planned:
				held = true // waiting for review: a redelivered plan, or one planned again, stays held
			case cs.Approved:
			case n.State == changeset.Scheduled:
				n.State, n.Plan, n.PlanMessageID, held = changeset.Planned, &p, in.ID, true
			default:
				held = true // applied already, in a change set not approved (any more)
			}
			return nil
		})
		if err != nil || held {
			return nil, err
		}
	case message.TypeDeploymentApproved:
		var a message.DeploymentApproved
		if err := message.Decode(in, &a); err != nil {
			return nil, err
		}
		p = a.DeploymentPlanned
	default:
		return nil, pipeline.Permanent(fmt.Errorf("apply: unexpected message type %s", in.Type))
	}
	return w.apply(ctx, in, p, cs)
}

// apply applies plan p of change set cs (read here when nil).
func (w *Worker) apply(ctx context.Context, in message.Envelope, p message.DeploymentPlanned, cs *changeset.ChangeSet) ([]message.Envelope, error) {
	if cs == nil {
		var err error
		if cs, err = w.ChangeSets.Get(ctx, p.ChangeSetID); err != nil {
			return nil, pipeline.Transient(err)
		}
	}
	node := cs.Nodes[p.Component]
	if node == nil {
		return nil, pipeline.Permanent(fmt.Errorf("apply: %s is not in change set %s", p.Component, p.ChangeSetID))
	}
	store, err := w.Params(in.Env)
	if err != nil {
		return nil, pipeline.Transient(err)
	}
	fail := func(err error) ([]message.Envelope, error) {
		f := message.DeploymentFailed{ChangeSetID: p.ChangeSetID, DeploymentID: p.DeploymentID, Component: p.Component, Wave: p.Wave, Stage: "apply", Error: err.Error()}
		return []message.Envelope{in.MustDerive(message.TypeDeploymentFailed, "deployment.failed:"+p.DeploymentID, f)}, nil
	}
	if node.Outcome != nil && node.DeploymentID == p.DeploymentID {
		// Already applied: finish publishing if needed, announce again, run nothing. The outcome
		// of another deployment of the node (a retry of p's) is not p's: notWaiting says so.
		return w.finishAndAnnounce(ctx, store, in, p, *node.Outcome, fail)
	}
	if in.Type == message.TypeDeploymentApproved {
		if held, ok := replaced(in, node, p); ok {
			return []message.Envelope{held}, nil
		}
	}
	if why := notWaiting(in, cs, node, p); why != "" {
		return notApplied(p, why)
	}
	if out, stop, err := w.police(ctx, &attempt{in: in, p: p, node: node, store: store, fail: fail}, cs); stop {
		return out, err
	}
	cfg, err := references.Interpolate(ctx, store, w.Workspaces.Prefix, cs, node)
	if err != nil {
		if pipeline.Classify(err) == pipeline.DeadLetter {
			return fail(err) // the config references what is not there: an outcome
		}
		return nil, pipeline.Transient(err) // Parameter Store did not answer (throttled, timed out): retried
	}
	ws, err := w.Workspaces.For(ctx, p.Component, cs.ModuleCommit(p.Component), cfg.Config)
	if err != nil {
		if pipeline.IsTransient(err) {
			return nil, err // the repository could not be reached: retried, then dead-lettered
		}
		return fail(err)
	}
	ws.Sensitive = cfg.Sensitive // a re-plan (stale plan) passes them as sensitive variables again
	// The deployment its plan is for: the plan is removed once the deployment is over.
	ws.Owner = terraform.PlanOwner{ChangeSetID: p.ChangeSetID, DeploymentID: p.DeploymentID}
	a := &attempt{in: in, p: p, node: node, ws: ws, store: store, fail: fail, autoApprove: cs.AutoApprove}
	outputs, err := w.Runner.Apply(ctx, ws, terraform.PlanResult{Summary: p.Plan, PlanFile: p.PlanFile, PlanHash: p.PlanHash})
	if errors.Is(err, terraform.ErrPlanChanged) && ctx.Err() == nil {
		return w.stalePlan(ctx, a)
	}
	if err != nil {
		return terraformFailed(ctx, err, fail)
	}
	return w.record(ctx, a, outputs)
}

// notWaiting says why plan p of node, in change set cs as just read, is not to be applied now,
// or "" when it is: the node must still be waiting to be applied — scheduled, not settled
// (skipped by a rejection or an expiry, failed, blocked), the same deployment — and the change
// set must hold an approval that covers it: approved now (an approval withdrawn since, because
// another plan went stale, covers nothing), and for a deployment.approved — or whatever brings a
// plan of a node holding one, released by an approval — of the very plan the node holds. A node with an outcome of this deployment is not asked: it was applied (the caller
// announces it).
func notWaiting(in message.Envelope, cs *changeset.ChangeSet, n *changeset.Node, p message.DeploymentPlanned) string {
	switch {
	case n.DeploymentID != p.DeploymentID:
		return fmt.Sprintf("%s is deployment %s now, not %s", p.Component, n.DeploymentID, p.DeploymentID)
	case n.Settled():
		why := "it is " + n.State + " already"
		if n.Reason != "" {
			why += " (" + n.Reason + ")"
		}
		if n.Detail != "" {
			why += ": " + n.Detail
		}
		return why
	case n.State == changeset.Planned:
		return "its plan waits for review (the change set's approval was withdrawn)"
	case n.State != changeset.Scheduled:
		return "it is " + n.State + ", not scheduled"
	case !cs.Approved:
		return "change set " + cs.ID + " is not approved (any more): no approval covers the plan"
	case in.Type == message.TypeDeploymentApproved && (n.Plan == nil || n.Plan.PlanHash != p.PlanHash):
		held := "none"
		if n.Plan != nil {
			held = n.Plan.PlanHash
		}
		return fmt.Sprintf("the approval is of plan %s, the deployment holds plan %s", p.PlanHash, held)
	case n.Plan != nil && n.Plan.PlanHash != p.PlanHash:
		// The deployment holds the plan people approved (released by their approval); another
		// plan of it (planned again after a redelivery) is one nobody saw.
		return fmt.Sprintf("the message brings plan %s, the deployment holds plan %s, the one approved", p.PlanHash, n.Plan.PlanHash)
	}
	return ""
}

// notApplied answers a message whose plan is not applied (notWaiting says why): Terraform does
// not run and nothing is announced — no deployment.applied, no deployment.failed: the deployment
// was decided otherwise, and that decision is the one recorded. The error wraps
// pipeline.ErrDuplicate, so the runtime acknowledges the message as a no-op (deleted, nothing
// published) and the stage's log says why (pipeline.Logging). Its idempotency key is released,
// not marked done: approving the change set again re-announces a plan still scheduled under the
// same key (changeset.Approve), and that approval must be applied.
func notApplied(p message.DeploymentPlanned, why string) ([]message.Envelope, error) {
	return nil, fmt.Errorf("apply: %s (%s, change set %s) not applied: %s: %w", p.Component, p.DeploymentID, p.ChangeSetID, why, pipeline.ErrDuplicate)
}

// attempt is one run of terraform apply for a deployment, and what its outcome needs.
type attempt struct {
	in          message.Envelope
	p           message.DeploymentPlanned
	node        *changeset.Node
	ws          terraform.Workspace
	store       params.Store
	fail        func(error) ([]message.Envelope, error) // announces deployment.failed
	autoApprove bool
	// replanned is the plan applied when the stale plan p was made again (stale.go), with the
	// id of the deployment.planned announcing it; nil: p is applied.
	replanned *replan
}

// replan is a plan made again and applied, and the id of its deployment.planned.
type replan struct {
	plan message.DeploymentPlanned
	id   string
}

// terraformFailed sorts a terraform error with the one classifier: a failure of terraform itself
// (permanent) fails the deployment with terraform's diagnostics; an interrupted run is retried.
func terraformFailed(ctx context.Context, err error, fail func(error) ([]message.Envelope, error)) ([]message.Envelope, error) {
	if ctx.Err() == nil && pipeline.Classify(err) == pipeline.DeadLetter {
		return fail(err)
	}
	return nil, pipeline.Transient(err)
}

// record records and publishes a successful apply's outcome, and announces it.
//
// The outcome (changed keys against the runtime as it was) is recorded before it is announced,
// so that a redelivery publishes the same runtime and keeps the same changed keys instead of
// comparing against what it already wrote, and never runs Terraform again. When the stores write
// atomically (Atomic: the embedded file), one transaction records it and publishes it; should
// that transaction fail, nothing of it stays and the outcome is recorded on its own, as on AWS,
// where it is recorded first and then published.
func (w *Worker) record(ctx context.Context, a *attempt, outputs terraform.Outputs) ([]message.Envelope, error) {
	if keys := terraform.SensitiveOutputs(a.ws, outputs); len(keys) > 0 {
		// Neither published nor recorded (the outcome keeps the runtime): the deployment fails,
		// the same way on every redelivery, naming the outputs, never their values.
		return a.fail(fmt.Errorf("terraform applied %s, but its output(s) %s hold a value taken from a SecureString runtime: not published to %s, a String parameter (a module must not output a secret it is given)",
			a.p.Component, strings.Join(keys, ", "), model.RuntimeParam(w.Workspaces.Prefix, a.ws.Type, a.ws.Nickname)))
	}
	outcome, err := w.outcome(ctx, a.store, a.ws, a.node, outputs)
	if err != nil {
		return nil, pipeline.Transient(err)
	}
	if a.replanned != nil { // the plan applied is one made again: recorded with the outcome, announced with it
		outcome.Plan, outcome.PlanMessageID = &a.replanned.plan, a.replanned.id
	}
	if w.Atomic == nil {
		recorded, err := w.recordOutcome(ctx, a.p, outcome)
		if err != nil {
			return nil, err
		}
		return w.finishAndAnnounce(ctx, a.store, a.in, a.p, recorded, a.fail)
	}
	done, err := w.finish(ctx, a.store, a.in, a.p, outcome)
	if err == nil {
		return w.announce(a.in, a.p, done), nil
	}
	if _, rerr := w.recordOutcome(ctx, a.p, outcome); rerr != nil {
		return nil, rerr
	}
	return unpublished(a.p, err, a.fail)
}

// recordOutcome records o, not yet published, in the change set node of p, unless the node has
// an outcome already: one recorded is never replaced (had the failed transaction committed after
// all, its published outcome stays; another handling of the deployment — a copy of the message
// whose first handler's claim ran out — recorded first). It returns the outcome recorded, o or
// the one found, which is the one to publish and announce.
func (w *Worker) recordOutcome(ctx context.Context, p message.DeploymentPlanned, o changeset.Outcome) (changeset.Outcome, error) {
	recorded := o
	_, err := w.ChangeSets.Update(ctx, p.ChangeSetID, func(cs *changeset.ChangeSet) error {
		recorded = o // the store may run this again after a lost race
		if n := cs.Nodes[p.Component]; n.Outcome == nil {
			n.Outcome = &o
		} else if n.DeploymentID == p.DeploymentID {
			recorded = *n.Outcome
		}
		return nil
	})
	return recorded, err
}

// finishAndAnnounce publishes a recorded outcome and announces it.
func (w *Worker) finishAndAnnounce(ctx context.Context, store params.Store, in message.Envelope, p message.DeploymentPlanned,
	o changeset.Outcome, fail func(error) ([]message.Envelope, error)) ([]message.Envelope, error) {
	o, err := w.finish(ctx, store, in, p, o)
	if err != nil {
		return unpublished(p, err, fail)
	}
	return w.announce(in, p, o), nil
}

// unpublished answers a publication of a recorded outcome that failed with err. Parameter Store
// refusing the runtime or config for good (too large, an invalid name: a permanent error) fails
// the deployment with the reason, the same way on every redelivery; anything else is retried.
func unpublished(p message.DeploymentPlanned, err error, fail func(error) ([]message.Envelope, error)) ([]message.Envelope, error) {
	if pipeline.Classify(err) == pipeline.DeadLetter {
		return fail(fmt.Errorf("terraform applied %s, but Parameter Store refuses what it must publish: %w", p.Component, err))
	}
	return nil, pipeline.Transient(err)
}

// finish publishes a recorded outcome's runtime (and config) — a no-op when already published —
// and records the runtime version: together, when the stores can (Atomic); otherwise a crash
// in between is mended by the redelivery, whose puts change nothing and return the version.
//
// Without a transaction (AWS) a write refused after another succeeded would leave half an
// outcome published under a deployment recorded failed — a runtime that dependents consume,
// from a deployment that says it published nothing. So both writes are checked first against
// every rule Parameter Store applies to them (publishable): a refusal fails the deployment
// with nothing published.
func (w *Worker) finish(ctx context.Context, store params.Store, in message.Envelope, p message.DeploymentPlanned, o changeset.Outcome) (changeset.Outcome, error) {
	if o.RuntimeVersion > 0 {
		return o, nil
	}
	_, typ, nick := splitComponent(p.Component)
	what := "deployment=" + p.DeploymentID + " change=" + p.ChangeSetID
	user := "karma:" + in.Actor.Name
	done := o
	err := w.atomic(ctx, func(ctx context.Context) error {
		o := o // what this run of fn publishes (fn may run again)
		done = o
		if w.Atomic != nil {
			// In the transaction: an outcome another handling of the deployment recorded since
			// this one read the change set (a copy of the message whose first handler's claim
			// ran out, which waited for the workspace while this one applied) is the one
			// published and announced, not recorded over (recordOutcome does the same on AWS).
			cs, err := w.ChangeSets.Get(ctx, p.ChangeSetID)
			if err != nil {
				return err
			}
			if n := cs.Nodes[p.Component]; n != nil && n.Outcome != nil && n.DeploymentID == p.DeploymentID {
				o, done = *n.Outcome, *n.Outcome
				if o.RuntimeVersion > 0 {
					return nil // published already
				}
			}
		}
		puts := []params.PutInput{{Name: model.RuntimeParam(w.Workspaces.Prefix, typ, nick), Value: string(o.Runtime),
			Description: params.Provenance(what, string(o.Runtime)), User: user}}
		if len(o.Config) > 0 {
			puts = append(puts, params.PutInput{Name: model.ConfigParam(w.Workspaces.Prefix, typ, nick), Value: string(o.Config),
				Description: params.Provenance(what, string(o.Config)), User: user})
		}
		for _, in := range puts {
			if err := publishable(ctx, store, in, w.Atomic == nil); err != nil {
				return err
			}
		}
		r, err := store.Put(ctx, puts[0])
		if err != nil {
			return err
		}
		for _, in := range puts[1:] {
			if _, err := store.Put(ctx, in); err != nil {
				if w.Atomic == nil {
					// Refused after the runtime was published, by a rule publishable does not
					// know: the record says so rather than that nothing was published.
					return fmt.Errorf("%s was published (version %d), but not %s: %w", puts[0].Name, r.Version, in.Name, err)
				}
				return err
			}
		}
		done = o
		done.RuntimeVersion = r.Version
		_, err = w.ChangeSets.Update(ctx, p.ChangeSetID, func(cs *changeset.ChangeSet) error {
			cs.Nodes[p.Component].Outcome = &done
			return nil
		})
		return err
	})
	if err != nil {
		return o, err
	}
	return done, nil
}

// publishable reports a write Parameter Store would refuse — a name, value or description
// against its rules (params.CheckPut), or a parameter of another type stored under the name
// (SSM refuses to change a parameter's type, HierarchyTypeMismatchException, which it answers
// like any client error) — as a *params.InvalidError, permanent: the deployment fails.
// Without readType the stored type is not read: in one transaction (Atomic) the store's own Put
// refuses the type change and the transaction takes back whatever was written before it.
func publishable(ctx context.Context, store params.Store, in params.PutInput, readType bool) error {
	typ, err := params.CheckPut(in)
	if err != nil || !readType {
		return err
	}
	cur, err := store.Get(ctx, in.Name)
	switch {
	case errors.Is(err, params.ErrNotFound):
		return nil
	case err != nil:
		return err
	case cur.Type != typ:
		return &params.InvalidError{Name: in.Name, Reason: fmt.Sprintf("it is a %s parameter, and Karma publishes a %s there (Parameter Store does not change a parameter's type: delete it first)", cur.Type, typ)}
	}
	return nil
}

func splitComponent(id string) (string, string, string) {
	parts := strings.SplitN(id, "/", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	return parts[0], parts[1], parts[2]
}

// outcome computes the runtime document and which of its keys changed against the runtime
// published now.
func (w *Worker) outcome(ctx context.Context, store params.Store, ws terraform.Workspace, node *changeset.Node, outputs terraform.Outputs) (changeset.Outcome, error) {
	name := model.RuntimeParam(w.Workspaces.Prefix, ws.Type, ws.Nickname)
	prev := map[string]json.RawMessage{}
	var prevDoc []byte
	prevSecure := false
	if old, err := store.Get(ctx, name); err == nil {
		_ = json.Unmarshal([]byte(old.Value), &prev)
		prevDoc, prevSecure = []byte(old.Value), old.Type == params.TypeSecureString
	} else if !errors.Is(err, params.ErrNotFound) {
		return changeset.Outcome{}, err
	}
	runtime := map[string]json.RawMessage(outputs)
	changed := []string{}
	for k, v := range runtime {
		if old, ok := prev[k]; !ok || !model.SameJSON(old, v) {
			changed = append(changed, k)
		}
	}
	for k := range prev {
		if _, ok := runtime[k]; !ok {
			changed = append(changed, k)
		}
	}
	sort.Strings(changed)
	body, hash := model.Canonical(runtime)
	// how they changed, for the policies of the dependents redeployed for them
	diff := model.RuntimeDiff(prevDoc, body, changed, prevSecure, false)
	return changeset.Outcome{ChangedKeys: changed, RuntimeHash: hash, Runtime: body, Config: node.Config, RuntimeDiff: diff}, nil
}

// announce announces outcome o of deployment p: its deployment.applied, caused by in. When the
// plan applied is one made again from a stale one (o.Plan), that plan is announced first, in its
// deployment.planned (the same message every time: id o.PlanMessageID, key ReplannedKey), and
// causes the deployment.applied: the record names the plan applied, its hash and its resource
// changes, not the stale one.
func (w *Worker) announce(in message.Envelope, p message.DeploymentPlanned, o changeset.Outcome) []message.Envelope {
	var out []message.Envelope
	if o.Plan != nil {
		planned := in.MustDerive(message.TypeDeploymentPlanned, ReplannedKey(*o.Plan), *o.Plan)
		planned.ID = o.PlanMessageID
		out, in = append(out, planned), planned
	}
	a := message.DeploymentApplied{ChangeSetID: p.ChangeSetID, DeploymentID: p.DeploymentID, Component: p.Component, Wave: p.Wave,
		RuntimeVersion: o.RuntimeVersion, ChangedKeys: o.ChangedKeys, RuntimeHash: o.RuntimeHash}
	return append(out, in.MustDerive(message.TypeDeploymentApplied, "deployment.applied:"+p.DeploymentID, a))
}
