package drift

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/terraform"
)

// Workspaces gives the Terraform workspace of a component with a config and the modules of a
// commit (terraform.Workspaces).
type Workspaces interface {
	For(ctx context.Context, component, commit string, config json.RawMessage) (terraform.Workspace, error)
}

// Refresh runs the infrastructure comparison of an environment: a refresh-only plan of each
// deployed component's workspace, with the config and modules of its last applied deployment
// (its references substituted from the parameter store, as plan substitutes them).
type Refresh struct {
	Refresher  terraform.Refresher
	Workspaces Workspaces
	Params     params.Store // the environment's store, for ${type/nick.runtime.key}
	Prefix     string
	// Parallelism is how many terraform runs at once (default 1).
	Parallelism int
}

// Refreshed is the outcome of the infrastructure comparison.
type Refreshed struct {
	Findings  []Finding
	Refreshed int      // workspaces refreshed
	Errors    []string // components whose refresh failed, with why
}

// Run refreshes the components of in that Karma deployed and no change set is deploying.
func (r Refresh) Run(ctx context.Context, in Inputs) Refreshed {
	var todo []*model.Component
	for _, c := range in.Components {
		if _, busy := in.State.Busy[c.ID()]; busy || (in.Only != "" && c.ID() != in.Only) {
			continue
		}
		if _, deployed := in.State.Last[c.ID()]; deployed {
			todo = append(todo, c)
		}
	}
	var mu sync.Mutex
	var out Refreshed
	sem := make(chan struct{}, max(r.Parallelism, 1))
	var wg sync.WaitGroup
	for _, c := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			last := in.State.Last[c.ID()]
			res, err := r.one(ctx, c.ID(), last)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				out.Errors = append(out.Errors, fmt.Sprintf("%s: %v", c.ID(), err))
			case !res.Deployed:
				// Karma applied it (last), so its workspace has a state — unless the work folder
				// was lost, moved, or is not the one its applies used: nothing to compare with.
				out.Errors = append(out.Errors, fmt.Sprintf("%s: Karma deployed it (%s), but its workspace has no Terraform state: infrastructure not compared "+
					"(is the work folder the one plan and apply use?)", c.ID(), last.ID))
			default:
				out.Refreshed++
				if res.Changed {
					out.Findings = append(out.Findings, InfraFinding(in.Env, c.ID(), in.Commit, last.ID, res))
				}
			}
		}()
	}
	wg.Wait()
	sortFindings(out.Findings)
	return out
}

// one refreshes one component's workspace as its last deployment left it.
func (r Refresh) one(ctx context.Context, id string, last Deployment) (terraform.RefreshResult, error) {
	cfg, err := model.InterpolateFromStore(ctx, r.Params, r.Prefix, last.Config)
	if err != nil {
		return terraform.RefreshResult{}, fmt.Errorf("the config of %s: %w", last.ID, err)
	}
	ws, err := r.Workspaces.For(ctx, id, last.Commit, cfg.Config)
	if err != nil {
		return terraform.RefreshResult{}, err
	}
	ws.Sensitive = cfg.Sensitive
	return r.Refresher.Refresh(ctx, ws)
}

// InfraFinding is the drift a refresh-only plan found in a component's workspace. Its id covers
// the state (lineage and serial) and what changed, so the same refresh seen again is one drift.
func InfraFinding(env, component, commit, lastDeployment string, res terraform.RefreshResult) Finding {
	f := Finding{Env: env, DriftDetected: message.DriftDetected{Component: component, Kind: message.DriftInfrastructure,
		Reason: message.DriftRefreshed, Commit: commit, Outputs: res.Outputs,
		State: &message.StateVersion{Serial: res.Serial, Lineage: res.Lineage}}}
	var changed []string
	for _, rd := range res.Resources {
		f.Resources = append(f.Resources, message.DriftResource{Address: rd.Address, Actions: rd.Actions})
		changed = append(changed, rd.Address+": "+strings.Join(rd.Actions, ", "))
	}
	var what []string
	if len(changed) > 0 {
		what = append(what, fmt.Sprintf("%d resource(s) changed outside Terraform (%s)", len(changed), strings.Join(changed, "; ")))
	}
	if len(res.Outputs) > 0 {
		what = append(what, "outputs "+strings.Join(res.Outputs, ", ")+" changed")
	}
	if len(what) == 0 {
		what = append(what, "changes (terraform's verdict)")
	}
	f.Detail = fmt.Sprintf("a refresh-only plan of %s (state serial %d) found %s", component, res.Serial, strings.Join(what, "; "))
	f.identify(lastDeployment, res.Lineage, strconv.FormatInt(res.Serial, 10), strings.Join(changed, "\x01"), strings.Join(res.Outputs, "\x01"))
	return f
}
