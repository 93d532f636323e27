package policy

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
)

// InputOf is the part of a policy's input that the change set knows — the change, the component
// and its config — shared by resolve and the apply stage, which add the stage, the diff and the
// plan. For many nodes of one change set, InputsOf's Of (InputOf reads every node of cs once).
func InputOf(cs *changeset.ChangeSet, n *changeset.Node) Input { return InputsOf(cs).Of(n) }

// Inputs gives the inputs of the nodes of one change set: it indexes once, by deployment, the
// nodes whose apply recorded how runtime keys changed, which a dependent's input looks up by the
// deployment its cause names — a walk of every node for each dependent made a fan-out of 20,000
// dependents quadratic (400 million comparisons, most of its 7-11 s).
type Inputs struct {
	cs        *changeset.ChangeSet
	upstreams map[string]*changeset.Node // by deployment id
}

// InputsOf indexes cs for Of; cs must not change while it is used.
func InputsOf(cs *changeset.ChangeSet) *Inputs {
	ins := &Inputs{cs: cs, upstreams: map[string]*changeset.Node{}}
	for _, n := range cs.Nodes {
		if n.Outcome != nil && len(n.Outcome.RuntimeDiff) > 0 && n.DeploymentID != "" {
			ins.upstreams[n.DeploymentID] = n
		}
	}
	return ins
}

// Of is InputOf of node n of the change set.
func (ins *Inputs) Of(n *changeset.Node) Input {
	cs := ins.cs
	parts := strings.SplitN(n.Component, "/", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	in := Input{
		Change: Change{ID: cs.ID, Env: cs.Env, Source: cs.Source, Commit: cs.Commit, Actor: Actor{Kind: cs.Actor.Kind, Name: cs.Actor.Name},
			Author: cs.Author, Pusher: cs.Pusher, PushAuthors: append([]string{}, cs.PushAuthors...),
			CoveredWriters: append([]string{}, cs.CoveredWriters...), AutoApprove: cs.AutoApprove, Protected: cs.Rules != nil && cs.Rules.Protected, Approved: cs.Approved, ApprovedBy: cs.ApprovedBy},
		Component:   Component{ID: n.Component, Env: parts[0], Type: parts[1], Nickname: parts[2], Root: n.Root, Destroy: n.Destroy},
		Config:      map[string]any{},
		Diff:        []KeyChange{},
		RuntimeDiff: []RuntimeKeyChange{},
	}
	_ = json.Unmarshal(n.Config, &in.Config)
	add := func(upstream string, kc message.KeyChange) {
		in.RuntimeDiff = append(in.RuntimeDiff, RuntimeKeyChange{Upstream: upstream,
			KeyChange: KeyChange{Key: kc.Key, Op: kc.Op, Before: jsonValue(kc.Before), After: jsonValue(kc.After)}})
	}
	if rc := cs.RuntimeChange; rc != nil && n.Root && cs.Source == message.SourceRuntime {
		for _, kc := range rc.Diff {
			add(rc.Upstream, kc)
		}
	}
	// Scheduled because an upstream's apply in this change set changed keys it consumes (the
	// cause names that deployment and those keys): how they changed, as the apply recorded it.
	for _, c := range n.Causes {
		if c.Kind != message.CauseDeployment || len(c.Keys) == 0 {
			continue
		}
		up := ins.upstreams[c.ID]
		if up == nil {
			continue
		}
		for _, kc := range up.Outcome.RuntimeDiff {
			if slices.Contains(c.Keys, kc.Key) {
				add(up.Component, kc)
			}
		}
	}
	sort.SliceStable(in.RuntimeDiff, func(i, j int) bool {
		a, b := in.RuntimeDiff[i], in.RuntimeDiff[j]
		return a.Upstream < b.Upstream || (a.Upstream == b.Upstream && a.Key < b.Key)
	})
	return in
}

// jsonValue is JSON text decoded (nil for "": no value, or none shown).
func jsonValue(text string) any {
	if text == "" {
		return nil
	}
	var v any
	if json.Unmarshal([]byte(text), &v) != nil {
		return nil
	}
	return v
}

// PlanOf is a planned deployment's plan as a policy sees it.
func PlanOf(p message.DeploymentPlanned) *Plan {
	out := &Plan{Add: p.Plan.Add, Change: p.Plan.Change, Destroy: p.Plan.Destroy, Resources: []Resource{}}
	for _, r := range p.Resources {
		out.Resources = append(out.Resources, Resource{Address: r.Address, Actions: r.Actions})
	}
	return out
}
