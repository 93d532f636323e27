package resolve

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/pipeline"
)

// runtimeWriter is the component that writes runtime c of env — its own, or one it writes per
// sub-object (a lambda's function) — and the runtime's parameter name.
func runtimeWriter(res *model.Result, c message.ComponentRef, env string) (int32, string, error) {
	path := model.RuntimeParam(res.Repo.Settings.Prefix, c.Type, c.Nickname)
	up, ok := res.Graph.Index(c.ID(env))
	if !ok {
		up, ok = res.Graph.SubRuntimeWriter(env, path)
	}
	if !ok {
		return 0, "", pipeline.Permanent(fmt.Errorf("resolve: runtime %s of unknown component %s", path, c.ID(env)))
	}
	return up, path, nil
}

// roots are the components deployed because they changed: those whose layers a commit touched,
// those a request or a /config parameter names, or — for a runtime change — the dependents that
// consume a changed key; for a corrective change set (drift), the drifted components. destroys
// are components whose config.json a commit removed (drift: orphans the commit does not define).
// notes say, for a root deployed because a folder its type's module uses (or may use) changed,
// which and why (the node's detail).
func (w *Worker) roots(ctx context.Context, res *model.Result, p message.ChangeDetected, env string) ([]int32, []string, map[string]string, error) {
	g := res.Graph
	var roots []int32
	var notes map[string]string
	add := func(id string) error {
		i, ok := g.Index(id)
		if !ok {
			return pipeline.Permanent(fmt.Errorf("resolve: %s is not defined in the repository", id))
		}
		roots = append(roots, i)
		return nil
	}
	switch p.Source {
	case message.SourceGit:
		files := map[string]bool{}
		var moduleFiles []string // changed, relative to the modules folder
		wholeEnv := false
		modules := strings.TrimSuffix(res.Repo.Settings.ModulesDir, "/") + "/"
		for _, f := range p.Files {
			files[f] = true
			if rest, ok := strings.CutPrefix(f, modules); ok && rest != "" {
				moduleFiles = append(moduleFiles, rest)
			}
		}
		// A module changed: every instance of each type whose module is made of it — its own
		// folder, or one its module calls by a local source, at any depth (modules.go).
		moduleTypes, why := w.moduleTypes(res, moduleFiles)
		for _, a := range res.Repo.Accounts {
			if files[a.File] && a.Environment == env {
				wholeEnv = true // the account's settings changed: every component of the env
			}
		}
		// The layers of <type>/<nickname> (base layer or env file) a commit touched: a deleted
		// one is no longer among the layers of the components that merged it (a base layer's
		// defaults gone, an extended env component gone and its base-layer template extended
		// instead), yet their resolved configs changed.
		layers := map[string]bool{}
		for f := range files {
			if ref, lenv, ok := layerOf(f); ok && (lenv == model.BaseEnv || lenv == env) {
				layers[ref] = true
			}
		}
		for _, c := range res.Repo.Components {
			if wholeEnv || moduleTypes[c.Type] {
				add(c.ID())
				if !wholeEnv && why[c.Type] != "" {
					if notes == nil {
						notes = map[string]string{}
					}
					notes[c.ID()] = why[c.Type]
				}
				continue
			}
			for _, f := range c.Files {
				ref, _, _ := layerOf(f)
				if files[f] || layers[ref] {
					add(c.ID())
					break
				}
			}
		}
		var destroys []string
		for _, r := range p.Removed {
			id := r.ID(env)
			if !files["iac/"+id+"/config.json"] {
				continue // removed in another environment
			}
			if _, still := g.Index(id); !still {
				destroys = append(destroys, id)
			}
		}
		sort.Strings(destroys)
		return roots, destroys, notes, nil
	case message.SourceRuntime:
		for _, c := range p.Components {
			up, path, err := runtimeWriter(res, c, env)
			if err != nil {
				return nil, nil, nil, err
			}
			keys := p.ChangedKeys
			if keys == nil {
				keys = []string{graph.AllKeys}
			}
			for _, ei := range g.Dependents(up) {
				e := g.Edges[ei]
				if e.ConsumesAnyFrom(path, keys) {
					roots = append(roots, e.From)
				}
			}
		}
		return roots, nil, nil, nil
	case message.SourceDrift:
		roots, destroys := driftRoots(g, p, env)
		return roots, destroys, nil, nil
	default:
		named := map[string]bool{} // the environment files of the components named
		for _, c := range p.Components {
			if err := add(c.ID(env)); err != nil {
				return nil, nil, nil, err
			}
			named["iac/"+c.ID(env)+"/config.json"] = true
		}
		if p.Source == message.SourceRequest {
			// A request replaces the named components' environment files: the components that
			// extend one of them (at any depth) merge it too, and their resolved configs change
			// with it — as a push of the request's commit would deploy them (that push is the
			// same change, so it deploys nothing of its own).
			for _, c := range res.Repo.Components {
				if named["iac/"+c.ID()+"/config.json"] {
					continue
				}
				for _, f := range c.Files {
					if named[f] {
						if err := add(c.ID()); err != nil {
							return nil, nil, nil, err
						}
						break
					}
				}
			}
		}
		return roots, nil, nil, nil
	}
}

// layerOf splits a config file "iac/<env>/<type>/<nickname>/config.json" into
// "<type>/<nickname>" and its environment (model.BaseEnv for the base layer).
func layerOf(f string) (ref, env string, ok bool) {
	parts := strings.Split(f, "/")
	if len(parts) != 5 || parts[0] != "iac" || parts[4] != "config.json" {
		return "", "", false
	}
	return parts[2] + "/" + parts[3], parts[1], true
}

// driftRoots are what a corrective change set deploys: Git's intent at the commit it is built
// from. A drifted component, or an orphan listed in removed, that the commit defines is
// deployed; one it does not define is a destroy (held, as every destroy is). The commit may be
// later than the one the drift check compared with, so either may have changed since.
func driftRoots(g *graph.Graph, p message.ChangeDetected, env string) ([]int32, []string) {
	var roots []int32
	var destroys []string
	seen := map[string]bool{}
	for _, c := range slices.Concat(p.Components, p.Removed) {
		id := c.ID(env)
		if seen[id] {
			continue
		}
		seen[id] = true
		if i, ok := g.Index(id); ok {
			roots = append(roots, i)
		} else {
			destroys = append(destroys, id)
		}
	}
	sort.Strings(destroys)
	return roots, destroys
}

// settle applies a deployment outcome to its change set and announces what became ready; a
// change set that is done releases the change sets queued behind it.
func (w *Worker) settle(ctx context.Context, in message.Envelope, csID string, fn func(*changeset.ChangeSet) error) ([]message.Envelope, error) {
	cs, err := w.ChangeSets.Update(ctx, csID, func(cs *changeset.ChangeSet) error {
		if err := fn(cs); err != nil {
			return err
		}
		cs.SettlePromotion(w.now()) // succeeded: the next environment is due after the soak
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The change set as announcing left it: a policy's denial may have settled what was left.
	out, cs, err := w.announcePoliced(ctx, in, cs, false)
	if err != nil {
		return nil, err
	}
	if !cs.Done() {
		return out, nil
	}
	promoted, err := w.promote(ctx, in, cs)
	if err != nil {
		return nil, err
	}
	released, err := w.release(ctx, in, cs)
	return append(append(out, promoted...), released...), err
}

// announce turns the change set's unpublished decisions into messages and marks them published
// once the runtime has sent them.
func (w *Worker) announce(ctx context.Context, in message.Envelope, cs *changeset.ChangeSet, withResolved bool) ([]message.Envelope, error) {
	out, _, err := w.announcePoliced(ctx, in, cs, withResolved)
	return out, err
}

// announcePoliced is announce, also returning the change set as the policies left it (as stored
// after their decisions: police).
func (w *Worker) announcePoliced(ctx context.Context, in message.Envelope, cs *changeset.ChangeSet, withResolved bool) ([]message.Envelope, *changeset.ChangeSet, error) {
	cs, err := w.police(ctx, cs)
	if err != nil {
		return nil, nil, err
	}
	var out []message.Envelope
	if withResolved {
		var roots, affected []string
		for _, wave := range cs.Waves {
			for _, id := range wave {
				affected = append(affected, id)
				if cs.Nodes[id].Root {
					roots = append(roots, id)
				}
			}
		}
		r := message.ChangeResolved{ChangeSetID: cs.ID, Source: cs.Source, RootCauses: cs.RootCauses, Roots: nonNil(roots), Affected: nonNil(affected),
			Waves: cs.Waves, Commit: cs.Commit, QueuedBehind: cs.QueuedBehind, Rejected: cs.Rejected, Approval: approvalRules(cs)}
		if cs.Held != nil {
			r.Held = cs.Held.Reason
		}
		out = append(out, env(in.MustDerive(message.TypeChangeResolved, "resolved:"+cs.ID, r), cs.Env))
	}
	var announced []string
	for _, n := range cs.Unannounced() {
		announced = append(announced, n.Component)
		switch n.State {
		case changeset.Scheduled:
			p := message.DeploymentScheduled{ChangeSetID: cs.ID, DeploymentID: n.DeploymentID, Component: n.Component, Wave: n.Wave,
				CausedBy: n.Causes, ConfigHash: n.ConfigHash, Destroy: n.Destroy}
			out = append(out, env(in.MustDerive(message.TypeDeploymentScheduled, "deployment.scheduled:"+n.DeploymentID, p), cs.Env))
		default:
			p := message.DeploymentSkipped{ChangeSetID: cs.ID, Component: n.Component, Reason: n.Reason, Detail: n.Detail}
			out = append(out, env(in.MustDerive(message.TypeDeploymentSkipped, "deployment.skipped:"+cs.ID+"/"+n.Component, p), cs.Env))
		}
	}
	if len(announced) > 0 {
		pipeline.AfterPublish(ctx, func(ctx context.Context) error {
			_, err := w.ChangeSets.Update(ctx, cs.ID, func(cs *changeset.ChangeSet) error {
				for _, id := range announced {
					cs.Nodes[id].Announced = true
				}
				return nil
			})
			return err
		})
	}
	return out, cs, nil
}

// approvalRules are the change set's approval rules for change.resolved, when its environment
// has any.
func approvalRules(cs *changeset.ChangeSet) *message.ApprovalRules {
	if cs.Rules == nil || !cs.Rules.Configured {
		return nil
	}
	r := &message.ApprovalRules{Protected: cs.Rules.Protected, Author: cs.Author, AutoApproveRefused: cs.AutoApproveRefused}
	if !cs.Approved || cs.AutoApproveRefused != "" {
		r.Required = cs.Required()
	}
	if !cs.ExpiresAt.IsZero() {
		at := cs.ExpiresAt
		r.ExpiresAt = &at
	}
	return r
}

func env(e message.Envelope, name string) message.Envelope {
	e.Env = name
	return e
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
