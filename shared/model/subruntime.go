package model

import (
	"sort"

	"github.com/usekarma/karma/shared/graph"
)

// runtimeSeverity orders runtime statuses from best to worst, to combine several runtimes.
var runtimeSeverity = map[string]int{graph.RuntimePresent: 0, graph.RuntimePlaceholder: 1, graph.RuntimeMalformed: 2, graph.RuntimeMissing: 3}

// runtimeOf is what the store says about c's outputs. For a component that writes runtimes per
// sub-object (SubRuntimes: a lambda writing /iac/lambda/<function>/runtime) they are combined
// with its own document when there is one: the status is the worst of theirs (a missing
// function runtime makes the component's runtime missing), the keys their union, the hash one
// over every parameter's hash.
func (st *ParamState) runtimeOf(c *Component) RuntimeInfo {
	own, hasOwn := st.Runtimes[c.Ref()]
	if len(c.SubRuntimes) == 0 {
		if !hasOwn {
			return RuntimeInfo{Status: graph.RuntimeMissing}
		}
		return own
	}
	hashes := map[string]string{}
	keys := map[string]bool{}
	status := graph.RuntimePresent
	add := func(ref string, rt RuntimeInfo) {
		hashes[ref] = rt.Hash
		for _, k := range rt.Keys {
			keys[k] = true
		}
		if runtimeSeverity[rt.Status] > runtimeSeverity[status] {
			status = rt.Status
		}
	}
	if hasOwn {
		add(c.Ref(), own)
	}
	for _, name := range c.SubRuntimes {
		ref := c.Type + "/" + name
		if rt, ok := st.Runtimes[ref]; ok {
			add(ref, rt)
		} else {
			status = graph.RuntimeMissing
		}
	}
	out := RuntimeInfo{Status: status}
	if len(hashes) > 0 {
		_, out.Hash = Canonical(hashes)
	}
	for k := range keys {
		out.Keys = append(out.Keys, k)
	}
	sort.Strings(out.Keys)
	return out
}
