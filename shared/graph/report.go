package graph

// ImpactReport is an impact (or upstream) query as people and programs read it: component ids
// instead of indexes, each affected component's wave and the chain of edges that links it to a
// seed. `karma impact --json`, `karma propose-change` and the API (GET /impact, POST
// /request-change) all answer with it.
type ImpactReport struct {
	Seeds    []string         `json:"seeds"`
	Affected []AffectedReport `json:"affected"` // seeds first, then breadth-first
	Waves    [][]string       `json:"waves"`
}

// AffectedReport is one affected component.
type AffectedReport struct {
	ID     string       `json:"id"`
	Depth  int          `json:"depth"` // 0 for a seed
	Wave   int          `json:"wave"`
	Reason []ReasonStep `json:"reason"` // empty for a seed
}

// ReasonStep is one edge of a reason chain, from the seed outwards.
type ReasonStep struct {
	From     string   `json:"from"` // the dependent
	To       string   `json:"to"`   // what it depends on (closer to the seed)
	Consumes []string `json:"consumes"`
	Sources  []Source `json:"sources"`
}

// Report describes imp with component ids.
func (g *Graph) Report(imp *Impact) ImpactReport {
	wave := map[int32]int{}
	r := ImpactReport{Seeds: g.IDs(imp.Seeds), Waves: [][]string{}, Affected: make([]AffectedReport, 0, len(imp.Affected))}
	for i, w := range imp.Waves {
		for _, v := range w {
			wave[v] = i
		}
		if len(w) > 0 {
			r.Waves = append(r.Waves, g.IDs(w))
		}
	}
	for _, a := range imp.Affected {
		ar := AffectedReport{ID: g.Components[a.Index].ID, Depth: a.Depth, Wave: wave[a.Index], Reason: []ReasonStep{}}
		for _, step := range imp.Chain(a.Index) {
			e := g.Edges[step.Edge]
			ar.Reason = append(ar.Reason, ReasonStep{From: g.Components[e.From].ID, To: g.Components[e.To].ID, Consumes: e.Consumes, Sources: e.Sources})
		}
		r.Affected = append(r.Affected, ar)
	}
	return r
}
