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

// Compared is the outcome of the parameter comparisons of one environment.
type Compared struct {
	Findings []Finding
	Compared int    // components compared
	Busy     []Busy // components skipped, sorted
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
		if f := compareConfig(in, c, cfg, last.ID); f != nil {
			out.Findings = append(out.Findings, *f)
		}
		rt := byName[model.RuntimeParam(in.Prefix, c.Type, c.Nickname)]
		if f := compareRuntime(in, c, rt, cfg, last, hasLast); f != nil {
			out.Findings = append(out.Findings, *f)
		}
	}
	out.Findings = append(out.Findings, orphans(in, owned)...)
	slices.SortFunc(out.Busy, func(a, b Busy) int { return strings.Compare(a.Component, b.Component) })
	return out
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
