// Package apply is the stage that applies exactly the reviewed plan of a deployment, publishes
// the Terraform outputs to <prefix>/<type>/<nickname>/runtime (and the deployed config to
// .../config), and reports which runtime keys changed — which is what starts the next wave for
// the dependents that consume them, and no others.
//
// Input: deployment.planned (applied at once when the change set is approved, else held until
// approval), deployment.approved. Output: deployment.applied or deployment.failed.
//
// Idempotency: the outcome is recorded in the change set node before it is announced; a
// redelivered message re-announces it without running Terraform again. If a previous attempt
// died mid-apply, the saved plan is stale: an auto-approved change set re-plans and applies what
// is left; a manually approved one fails the deployment asking for a new review.
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
	"github.com/usekarma/karma/shared/terraform"
	"github.com/usekarma/karma/workers/plan"
)

// Worker is the apply stage.
type Worker struct {
	ChangeSets changeset.Store
	Params     func(env string) (params.Store, error)
	Runner     terraform.Runner
	Workspaces plan.Workspaces
}

// Handle applies, or holds for approval.
func (w *Worker) Handle(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
	var p message.DeploymentPlanned
	switch in.Type {
	case message.TypeDeploymentPlanned:
		if err := message.Decode(in, &p); err != nil {
			return nil, err
		}
		held := false
		_, err := w.ChangeSets.Update(ctx, p.ChangeSetID, func(cs *changeset.ChangeSet) error {
			n := cs.Nodes[p.Component]
			if n == nil {
				return pipeline.Permanent(fmt.Errorf("apply: %s is not in change set %s", p.Component, p.ChangeSetID))
			}
			if !cs.Approved && n.State == changeset.Scheduled {
				n.State, n.Plan, n.PlanMessageID, held = changeset.Planned, &p, in.ID, true
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
	return w.apply(ctx, in, p)
}

func (w *Worker) apply(ctx context.Context, in message.Envelope, p message.DeploymentPlanned) ([]message.Envelope, error) {
	cs, err := w.ChangeSets.Get(ctx, p.ChangeSetID)
	if err != nil {
		return nil, pipeline.Transient(err)
	}
	node := cs.Nodes[p.Component]
	if node == nil {
		return nil, pipeline.Permanent(fmt.Errorf("apply: %s is not in change set %s", p.Component, p.ChangeSetID))
	}
	if node.Outcome != nil { // already applied: announce again, run nothing
		return []message.Envelope{w.announce(in, p, *node.Outcome)}, nil
	}
	store, err := w.Params(in.Env)
	if err != nil {
		return nil, pipeline.Transient(err)
	}
	fail := func(err error) ([]message.Envelope, error) {
		f := message.DeploymentFailed{ChangeSetID: p.ChangeSetID, DeploymentID: p.DeploymentID, Component: p.Component, Wave: p.Wave, Stage: "apply", Error: err.Error()}
		return []message.Envelope{in.MustDerive(message.TypeDeploymentFailed, "deployment.failed:"+p.DeploymentID, f)}, nil
	}
	cfg, err := model.Interpolate(node.Config, func(ref string) (map[string]any, error) {
		return plan.ReadRuntime(ctx, store, w.Workspaces.Prefix, ref)
	})
	if err != nil {
		return fail(err)
	}
	ws, err := w.Workspaces.For(p.Component, cfg)
	if err != nil {
		return fail(err)
	}
	outputs, err := w.Runner.Apply(ctx, ws, terraform.PlanResult{Summary: p.Plan, PlanFile: p.PlanFile, PlanHash: p.PlanHash})
	if err != nil && ctx.Err() == nil && isPermanent(err) && cs.AutoApprove {
		// A stale plan after an interrupted attempt: plan again and apply what is left.
		var res terraform.PlanResult
		if res, err = w.Runner.Plan(ctx, ws); err == nil {
			outputs, err = w.Runner.Apply(ctx, ws, res)
		}
	}
	if err != nil {
		if ctx.Err() != nil || !isPermanent(err) {
			return nil, pipeline.Transient(err)
		}
		return fail(err)
	}
	outcome, err := w.publish(ctx, store, in, p, ws, node, outputs)
	if err != nil {
		return nil, pipeline.Transient(err)
	}
	if _, err := w.ChangeSets.Update(ctx, p.ChangeSetID, func(cs *changeset.ChangeSet) error {
		cs.Nodes[p.Component].Outcome = &outcome
		return nil
	}); err != nil {
		return nil, err
	}
	return []message.Envelope{w.announce(in, p, outcome)}, nil
}

// publish writes the runtime (and the deployed config) and computes which runtime keys changed.
func (w *Worker) publish(ctx context.Context, store params.Store, in message.Envelope, p message.DeploymentPlanned, ws terraform.Workspace, node *changeset.Node, outputs terraform.Outputs) (changeset.Outcome, error) {
	prefix := w.Workspaces.Prefix
	name := model.RuntimeParam(prefix, ws.Type, ws.Nickname)
	prev := map[string]json.RawMessage{}
	if old, err := store.Get(ctx, name); err == nil {
		_ = json.Unmarshal([]byte(old.Value), &prev)
	} else if !errors.Is(err, params.ErrNotFound) {
		return changeset.Outcome{}, err
	}
	runtime := map[string]json.RawMessage(outputs)
	var changed []string
	for k, v := range runtime {
		if old, ok := prev[k]; !ok || !jsonEqual(old, v) {
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
	desc := "karma: deployment=" + p.DeploymentID + " change=" + p.ChangeSetID
	r, err := store.Put(ctx, params.PutInput{Name: name, Value: string(body), Description: desc, User: "karma:" + in.Actor.Name})
	if err != nil {
		return changeset.Outcome{}, err
	}
	if len(node.Config) > 0 {
		cfgName := model.ConfigParam(prefix, ws.Type, ws.Nickname)
		if _, err := store.Put(ctx, params.PutInput{Name: cfgName, Value: string(node.Config), Description: desc, User: "karma:" + in.Actor.Name}); err != nil {
			return changeset.Outcome{}, err
		}
	}
	if changed == nil {
		changed = []string{}
	}
	return changeset.Outcome{RuntimeVersion: r.Version, ChangedKeys: changed, RuntimeHash: hash}, nil
}

func (w *Worker) announce(in message.Envelope, p message.DeploymentPlanned, o changeset.Outcome) message.Envelope {
	a := message.DeploymentApplied{ChangeSetID: p.ChangeSetID, DeploymentID: p.DeploymentID, Component: p.Component, Wave: p.Wave,
		RuntimeVersion: o.RuntimeVersion, ChangedKeys: o.ChangedKeys, RuntimeHash: o.RuntimeHash}
	return in.MustDerive(message.TypeDeploymentApplied, "deployment.applied:"+p.DeploymentID, a)
}

func jsonEqual(a, b json.RawMessage) bool {
	ca, _ := model.Canonical(decode(a))
	cb, _ := model.Canonical(decode(b))
	return string(ca) == string(cb)
}

func decode(b json.RawMessage) any {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return string(b)
	}
	return v
}

func isPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}
