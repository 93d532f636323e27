// Package plan is the stage that runs `terraform plan` for a recorded deployment: it takes the
// resolved config from the change set, substitutes the upstream runtime values it interpolates,
// prepares the component's workspace (state kept per env/type/nickname) and saves a plan whose
// summary and hash travel in deployment.planned. A Terraform failure is an outcome
// (deployment.failed), not an error; only transient failures are retried.
//
// Input: deployment.recorded. Output: deployment.planned or deployment.failed.
// Parallelism: the runtime runs several plan workers at once (the stage's Workers limit).
package plan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/terraform"
)

// Workspaces says where component workspaces and modules are.
type Workspaces struct {
	WorkDir    string // e.g. .karma/work; a component's workspace is WorkDir/<env>/<type>/<nickname>
	ModulesDir string // holds one module folder per component type
	Prefix     string // Parameter Store prefix
}

// For builds the workspace of a component id with its config.
func (ws Workspaces) For(component string, config json.RawMessage) (terraform.Workspace, error) {
	parts := strings.SplitN(component, "/", 3)
	if len(parts) != 3 {
		return terraform.Workspace{}, fmt.Errorf("bad component id %q", component)
	}
	root, err := filepath.Abs(filepath.Join(ws.WorkDir, parts[0], parts[1], parts[2]))
	if err != nil {
		return terraform.Workspace{}, err
	}
	mod, err := filepath.Abs(filepath.Join(ws.ModulesDir, parts[1]))
	if err != nil {
		return terraform.Workspace{}, err
	}
	return terraform.Workspace{Root: root, ModuleDir: mod, Env: parts[0], Type: parts[1], Nickname: parts[2], Prefix: ws.Prefix, Config: config}, nil
}

// Worker is the plan stage.
type Worker struct {
	ChangeSets changeset.Store
	Params     func(env string) (params.Store, error)
	Runner     terraform.Runner
	Workspaces Workspaces
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
	cfg, err := model.Interpolate(node.Config, func(ref string) (map[string]any, error) {
		return ReadRuntime(ctx, store, w.Workspaces.Prefix, ref)
	})
	if err != nil {
		return fail(fmt.Errorf("resolving references: %w", err))
	}
	ws, err := w.Workspaces.For(p.Component, cfg)
	if err != nil {
		return fail(err)
	}
	res, err := w.Runner.Plan(ctx, ws)
	if err != nil {
		if isPermanent(err) {
			return fail(err)
		}
		return nil, pipeline.Transient(err)
	}
	out := message.DeploymentPlanned{DeploymentScheduled: p.DeploymentScheduled, Plan: res.Summary, PlanFile: res.PlanFile, PlanHash: res.PlanHash}
	return []message.Envelope{in.MustDerive(message.TypeDeploymentPlanned, "deployment.planned:"+p.DeploymentID, out)}, nil
}

// ReadRuntime reads "<type>/<nickname>"'s runtime document from the parameter store.
func ReadRuntime(ctx context.Context, store params.Store, prefix, ref string) (map[string]any, error) {
	t, n, _ := strings.Cut(ref, "/")
	p, err := store.Get(ctx, model.RuntimeParam(prefix, t, n))
	if errors.Is(err, params.ErrNotFound) {
		return nil, fmt.Errorf("%s has no runtime yet (%s): deploy it first", ref, model.RuntimeParam(prefix, t, n))
	}
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(p.Value))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: runtime is not a JSON object: %w", ref, err)
	}
	return m, nil
}

func isPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}
