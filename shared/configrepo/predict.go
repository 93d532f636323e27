package configrepo

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"reflect"
	"slices"
	"strings"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/tfoutputs"
)

// Predicting a proposal's blast radius. A change set redeploys its root, then each dependent
// whose upstream's apply changed a runtime key it consumes; the others are skipped
// (docs/pipeline.md). Before anything is planned, which runtime keys the root's apply will
// change is predicted from the config: the JSON pointers the proposal changes in the resolved
// config, and which of the module's outputs derive from them (tfoutputs, reading the module at
// the same commit). Dependents consuming a predicted key would redeploy in the first hop;
// further down, a dependent of a redeployed component may redeploy (its upstream's new
// outputs are not known before its plan). The rest of the downstream set would be skipped,
// each with its reason.

// Skip reasons of a prediction (the first is the pipeline's own).
const (
	SkipNoConsumedKey = changeset.ReasonNoConsumedKey // consumes none of the keys predicted to change
	SkipUpstreamKept  = "upstream-not-redeployed"     // none of its upstreams in the set would redeploy
)

// Prediction is what a checked proposal is expected to redeploy and to skip.
type Prediction struct {
	// ChangedConfig are the JSON pointers of the resolved config the proposal changes.
	ChangedConfig []string `json:"changed_config"`
	// Keys are the component's runtime keys (its module's outputs) and whether each changes.
	Keys []KeyPrediction `json:"keys"`
	// ChangedKeys are the runtime keys predicted to change; null when it cannot be told
	// (Unknown says why): every dependent may then redeploy.
	ChangedKeys []string `json:"changed_keys"`
	Unknown     string   `json:"unknown,omitempty"`
	// Redeploy is what would (the root, the first hop) or may (further down) redeploy, in
	// waves, each with its reason chain.
	Redeploy graph.ImpactReport `json:"redeploy"`
	// Skipped are the other components downstream, which would not redeploy.
	Skipped []Skipped `json:"skipped"`
}

// KeyPrediction is one runtime key and whether the proposal changes it.
type KeyPrediction struct {
	Key     string   `json:"key"`
	Changes bool     `json:"changes"`
	Because []string `json:"because,omitempty"` // the changed config pointers it derives from
	Unknown string   `json:"unknown,omitempty"` // why it may change with anything
}

// Skipped is a downstream component that would not redeploy, and why.
type Skipped struct {
	ID     string `json:"id"`
	Wave   int    `json:"wave"` // its wave in the whole downstream set
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

// Predict predicts what the checked proposal c redeploys and skips.
func (s *Source) Predict(ctx context.Context, c *Checked) (*Prediction, error) {
	g := c.Result.Graph
	seed, ok := g.Index(c.ID())
	if !ok {
		return nil, fmt.Errorf("%w: %s is not in the graph", ErrNoSuchComponent, c.ID())
	}
	before, err := s.Build(ctx, c.Env, c.Base, nil)
	if err != nil {
		return nil, err
	}
	p := &Prediction{Keys: []KeyPrediction{}, Skipped: []Skipped{}}
	p.ChangedConfig = changedPointers(resolvedOf(before, c.ID()), resolvedOf(c.Result, c.ID()))
	p.ChangedKeys, p.Unknown = s.predictKeys(ctx, c, p)
	full, err := g.Downstream([]int32{seed}, graph.ImpactOptions{})
	if err != nil {
		return nil, err
	}
	narrowed := full
	switch {
	case p.ChangedKeys == nil:
	case len(p.ChangedKeys) == 0:
		narrowed, err = g.Downstream([]int32{seed}, graph.ImpactOptions{Filter: func(x *graph.Component) bool { return x.ID == c.ID() }})
	default:
		narrowed, err = g.Downstream([]int32{seed}, graph.ImpactOptions{ChangedKeys: p.ChangedKeys})
	}
	if err != nil {
		return nil, err
	}
	if len(c.Extending) > 0 {
		// The components extending the proposed one merge its file too, and deploy with it
		// (resolve makes them roots of the request): they and everything downstream of them
		// may redeploy — what their own changed outputs are is not predicted.
		keep := map[string]bool{}
		for _, a := range g.Report(narrowed).Affected {
			keep[a.ID] = true
		}
		var more []int32
		for _, id := range c.Extending {
			i, _ := g.Index(id)
			more = append(more, i)
		}
		theirs, err := g.Downstream(more, graph.ImpactOptions{})
		if err != nil {
			return nil, err
		}
		for _, a := range g.Report(theirs).Affected {
			keep[a.ID] = true
		}
		seeds := append([]int32{seed}, more...)
		if full, err = g.Downstream(seeds, graph.ImpactOptions{}); err != nil {
			return nil, err
		}
		if narrowed, err = g.Downstream(seeds, graph.ImpactOptions{Filter: func(x *graph.Component) bool { return keep[x.ID] }}); err != nil {
			return nil, err
		}
	}
	p.Redeploy = g.Report(narrowed)
	p.Skipped = skipped(g, seed, g.Report(full), p.Redeploy, p.ChangedKeys)
	return p, nil
}

// extending are the components of the proposal's graph, other than the proposed one, whose
// layers include its environment file: they extend it (at any depth), and a request deploys
// them with it, as resolve does (workers/resolve/roots.go).
func extending(c *Checked) []string {
	var out []string
	for _, mc := range c.Result.Repo.Components {
		if mc.ID() == c.ID() || !slices.Contains(mc.Files, c.File) {
			continue
		}
		if _, ok := c.Result.Graph.Index(mc.ID()); ok {
			out = append(out, mc.ID())
		}
	}
	return out
}

// predictKeys fills p.Keys from the module of the component's type at the proposal's commit;
// nil keys (and why) when the module cannot be read.
func (s *Source) predictKeys(ctx context.Context, c *Checked, p *Prediction) ([]string, string) {
	settings, err := s.SettingsAt(ctx, c.Base)
	if err != nil {
		return nil, "the repository's settings: " + err.Error()
	}
	tree, err := s.Repo.Tree(ctx, c.Base)
	if err != nil {
		return nil, err.Error()
	}
	dir := path.Join(path.Clean(settings.ModulesDir), c.Type)
	if path.IsAbs(settings.ModulesDir) {
		return nil, "the modules folder is outside the repository: its outputs are not read"
	}
	outs, err := tfoutputs.Read(tree, dir)
	if err != nil {
		return nil, fmt.Sprintf("the module %s: %v", dir, err)
	}
	changed := []string{}
	for _, name := range sortedNames(outs) {
		ok, why := outs[name].ChangedBy(p.ChangedConfig)
		p.Keys = append(p.Keys, KeyPrediction{Key: name, Changes: ok, Because: why, Unknown: outs[name].Unknown})
		if ok {
			changed = append(changed, name)
		}
	}
	return changed, ""
}

// skipped lists what full reaches and redeploy does not, with the reason of each.
func skipped(g *graph.Graph, seed int32, full, redeploy graph.ImpactReport, changed []string) []Skipped {
	in := map[string]bool{}
	for _, a := range redeploy.Affected {
		in[a.ID] = true
	}
	reached := map[string]bool{}
	for _, a := range full.Affected {
		reached[a.ID] = true
	}
	out := []Skipped{}
	for _, a := range full.Affected {
		if in[a.ID] {
			continue
		}
		i, _ := g.Index(a.ID)
		sk := Skipped{ID: a.ID, Wave: a.Wave, Reason: SkipUpstreamKept}
		var kept []string
		for _, ei := range g.Dependencies(i) {
			e := g.Edges[ei]
			switch {
			case e.To == seed:
				sk.Reason = SkipNoConsumedKey
				sk.Detail = fmt.Sprintf("consumes %s of %s; the proposal changes %s", strings.Join(e.Consumes, ", "), g.Components[seed].ID, describeKeys(changed))
			case reached[g.Components[e.To].ID]:
				kept = append(kept, g.Components[e.To].ID)
			}
		}
		if sk.Reason == SkipUpstreamKept {
			sk.Detail = "none of its upstreams in the blast radius would redeploy: " + strings.Join(kept, ", ")
		}
		out = append(out, sk)
	}
	return out
}

func describeKeys(keys []string) string {
	if len(keys) == 0 {
		return "no runtime key"
	}
	return strings.Join(keys, ", ")
}

// resolvedOf is a component's resolved config as a JSON value (nil when absent or broken).
func resolvedOf(res *model.Result, id string) any {
	for _, c := range res.Repo.Components {
		var v any
		if c.ID() == id && c.Resolved != nil && json.Unmarshal(c.Resolved, &v) == nil {
			return v
		}
	}
	return nil
}

// changedPointers are the JSON pointers where a and b differ: the members of objects added,
// removed or changed, recursively; an array or a value of another kind, whole.
func changedPointers(a, b any) []string {
	out := []string{}
	var walk func(ptr string, a, b any)
	walk = func(ptr string, a, b any) {
		am, aok := a.(map[string]any)
		bm, bok := b.(map[string]any)
		if !aok || !bok {
			if !reflect.DeepEqual(a, b) {
				out = append(out, ptr)
			}
			return
		}
		keys := slices.Collect(maps.Keys(am))
		for k := range bm {
			if _, ok := am[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			walk(ptr+"/"+strings.NewReplacer("~", "~0", "/", "~1").Replace(k), am[k], bm[k])
		}
	}
	walk("", a, b)
	return out
}

func sortedNames(m map[string]tfoutputs.Output) []string {
	return slices.Sorted(maps.Keys(m))
}
