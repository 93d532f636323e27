package drift

import (
	"slices"
	"strings"

	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/ssmevent"
)

// Inputs are what one environment's parameter comparisons read.
type Inputs struct {
	Env    string
	Prefix string
	// Commit is the deploy branch's head; Components the environment's components there.
	Commit     string
	Components []*model.Component
	// Params are every parameter under Prefix with descriptions (params.GetByPathDescribed).
	Params []params.Parameter
	State  State
	// Only limits the comparisons to one component id ("" = every component).
	Only string
}

// Busy is a component not compared because a change set is deploying it.
type Busy struct {
	Component   string `json:"component"`
	ChangeSetID string `json:"change_set_id"`
}

// RolledBack is a component whose /config holds the config a rollback deployed, not Git's:
// the rollback stands while the deploy branch's head still gives the config it rolled back
// from. It is not drift — the lineage records the rollback and who asked for it — and it is
// not corrected: a commit that changes the component's config ends it (that commit deploys,
// and then anything else in /config is drift again).
type RolledBack struct {
	Component    string `json:"component"`
	DeploymentID string `json:"deployment_id"` // the rollback's deployment
	ChangeSetID  string `json:"change_set_id"` // the rollback's change set
	RolledBackTo string `json:"rolled_back_to"`
}

// Compared is the outcome of the parameter comparisons of one environment.
type Compared struct {
	Findings []Finding
	Compared int    // components compared
	Busy     []Busy // components skipped, sorted
	// RolledBack are the components whose /config a standing rollback explains, sorted.
	RolledBack []RolledBack
}

// CompareParameters compares Git's intent with the parameters: each component's /config and
// /runtime (compareConfig, compareRuntime), and every /config under the prefix that no
// component owns (orphans). It reads nothing: in holds what was read.
func CompareParameters(in Inputs) Compared {
	byName := make(map[string]*params.Parameter, len(in.Params))
	for i := range in.Params {
		byName[in.Params[i].Name] = &in.Params[i]
	}
	var out Compared
	owned := make(map[string]bool, len(in.Components))
	for _, c := range in.Components {
		owned[c.Ref()] = true
		if in.Only != "" && c.ID() != in.Only {
			continue
		}
		if cs, busy := in.State.Busy[c.ID()]; busy {
			out.Busy = append(out.Busy, Busy{Component: c.ID(), ChangeSetID: cs})
			continue
		}
		out.Compared++
		last, hasLast := in.State.Last[c.ID()]
		cfg := byName[model.ConfigParam(in.Prefix, c.Type, c.Nickname)]
		var stands *RolledBack
		if rollbackStands(c, cfg, last) {
			stands = &RolledBack{Component: c.ID(), DeploymentID: last.ID, ChangeSetID: last.ChangeSetID, RolledBackTo: last.RolledBackTo}
			out.RolledBack = append(out.RolledBack, *stands)
		} else if f := compareConfig(in, c, cfg, last.ID); f != nil {
			out.Findings = append(out.Findings, *f)
		}
		rt := byName[model.RuntimeParam(in.Prefix, c.Type, c.Nickname)]
		if f := compareRuntime(in, c, rt, cfg, last, hasLast); f != nil {
			f.Rollback = stands
			out.Findings = append(out.Findings, *f)
		}
	}
	out.Findings = append(out.Findings, orphans(in, owned)...)
	slices.SortFunc(out.Busy, func(a, b Busy) int { return strings.Compare(a.Component, b.Component) })
	slices.SortFunc(out.RolledBack, func(a, b RolledBack) int { return strings.Compare(a.Component, b.Component) })
	return out
}

// rollbackStands reports whether c's /config (p) is explained by a rollback that still stands:
// c's last applied deployment is a rollback's root, the head gives c the config Git gave it when
// the rollback was resolved (nothing was committed to it since), and p holds, canonically, the
// config the rollback deployed. Anything else is compared with Git as usual.
func rollbackStands(c *model.Component, p *params.Parameter, last Deployment) bool {
	if last.GitConfigHash == "" || last.GitConfigHash != c.Hash || p == nil {
		return false
	}
	v, err := decodeJSON([]byte(p.Value))
	if err != nil {
		return false
	}
	_, hash := model.Canonical(v)
	return hash == last.ConfigHash
}

// orphans are the /config parameters of components Git no longer defines.
func orphans(in Inputs, owned map[string]bool) []Finding {
	var out []Finding
	for i := range in.Params {
		p := &in.Params[i]
		t := ssmevent.Classify(p.Name, in.Prefix)
		if t.Kind != ssmevent.Config || owned[t.Type+"/"+t.Nickname] {
			continue
		}
		id := in.Env + "/" + t.Type + "/" + t.Nickname
		if in.Only != "" && id != in.Only {
			continue
		}
		out = append(out, orphan(in, id, p))
	}
	return out
}
