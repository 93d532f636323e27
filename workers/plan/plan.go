// Package plan is the stage that runs `terraform plan` for a recorded deployment: it takes the
// resolved config from the change set, substitutes the upstream runtime values it interpolates,
// prepares the component's workspace (state kept per env/type/nickname) and saves a plan whose
// summary, per-resource changes and hash travel in deployment.planned. A Terraform failure is an
// outcome (deployment.failed), not an error, and so is a reference to a runtime or key that is not
// there; only transient failures (Terraform interrupted, Parameter Store throttling or timing out
// while the references are read) are retried.
//
// Input: deployment.recorded. Output: deployment.planned or deployment.failed.
// Parallelism: the runtime runs several plan workers at once (the stage's Workers limit).
package plan

import (
	"context"
	"fmt"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/terraform"
	"github.com/usekarma/karma/workers/internal/references"
)

// Worker is the plan stage.
type Worker struct {
	ChangeSets changeset.Store
	Params     func(env string) (params.Store, error)
	Runner     terraform.Runner
	Workspaces terraform.Workspaces
}

// Handle plans one deployment.
func (w *Worker) Handle(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
	if in.Type != message.TypeDeploymentRecorded {
		return nil, pipeline.Permanent(fmt.Errorf("plan: unexpected message type %s", in.Type))
	}
	var p message.DeploymentRecorded
	if err := message.Decode(in, &p); err != nil {
		return nil, err
	}
	fail := func(err error) ([]message.Envelope, error) {
		f := message.DeploymentFailed{ChangeSetID: p.ChangeSetID, DeploymentID: p.DeploymentID, Component: p.Component, Wave: p.Wave, Stage: "plan", Error: err.Error()}
		return []message.Envelope{in.MustDerive(message.TypeDeploymentFailed, "deployment.failed:"+p.DeploymentID, f)}, nil
	}
	cs, err := w.ChangeSets.Get(ctx, p.ChangeSetID)
	if err != nil {
		return nil, pipeline.Transient(err)
	}
	node, ok := cs.Nodes[p.Component]
	if !ok {
		return nil, pipeline.Permanent(fmt.Errorf("plan: %s is not in change set %s", p.Component, p.ChangeSetID))
	}
	store, err := w.Params(in.Env)
	if err != nil {
		return nil, pipeline.Transient(err)
	}
	cfg, err := references.Interpolate(ctx, store, w.Workspaces.Prefix, cs, node)
	if err != nil {
		if pipeline.Classify(err) == pipeline.DeadLetter {
			return fail(fmt.Errorf("resolving references: %w", err)) // the config references what is not there
		}
		return nil, pipeline.Transient(fmt.Errorf("resolving references: %w", err)) // Parameter Store did not answer: retried
	}
	ws, err := w.Workspaces.For(ctx, p.Component, cs.ModuleCommit(p.Component), cfg.Config)
	if err != nil {
		if pipeline.IsTransient(err) {
			return nil, err // the repository could not be reached: retried, then dead-lettered
		}
		return fail(err)
	}
	ws.Sensitive = cfg.Sensitive // SecureString values: sensitive variables, in no file
	// The deployment its plan is for: the plan is removed once the deployment is over.
	ws.Owner = terraform.PlanOwner{ChangeSetID: p.ChangeSetID, DeploymentID: p.DeploymentID}
	res, err := w.Runner.Plan(ctx, ws)
	if err != nil {
		if pipeline.Classify(err) == pipeline.DeadLetter {
			return fail(err)
		}
		return nil, pipeline.Transient(err)
	}
	out := message.DeploymentPlanned{DeploymentScheduled: p.DeploymentScheduled, Plan: res.Summary, PlanFile: res.PlanFile, PlanHash: res.PlanHash,
		Resources: res.Resources, ResourcesTruncated: res.ResourcesTruncated}
	return []message.Envelope{in.MustDerive(message.TypeDeploymentPlanned, "deployment.planned:"+p.DeploymentID, out)}, nil
}
