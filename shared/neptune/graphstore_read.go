package neptune

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/usekarma/karma/shared/graph"
)

// Read returns the stored graph: components that have a hash, and depends_on edges.
func (s *GraphStore) Read(ctx context.Context) (*graph.Graph, error) {
	res, err := s.c.Run(ctx, "read graph", func(g *Source) *Traversal {
		return g.V().Has(LabelComponent, "ns", s.n.ns).Has("hash").
			Union(__.ElementMap(anys(componentKeys)...), __.OutE(LabelDependsOn).ElementMap("sources"))
	})
	if err != nil {
		return nil, err
	}
	d := graph.Document{Format: graph.FormatV1}
	for _, r := range res {
		m := stringKeys(r)
		if m == nil {
			return nil, fmt.Errorf("neptune: read graph: unexpected %T", r)
		}
		if _, isEdge := m["OUT"]; isEdge {
			e := graph.EdgeDoc{From: s.n.strip(stringKeys(m["OUT"])["id"]), To: s.n.strip(stringKeys(m["IN"])["id"]), Relation: LabelDependsOn}
			if err := json.Unmarshal([]byte(str(m["sources"])), &e.Sources); err != nil {
				return nil, fmt.Errorf("neptune: read graph: edge %v: sources: %w", m["id"], err)
			}
			d.Edges = append(d.Edges, e)
			continue
		}
		c, err := s.component(m)
		if err != nil {
			return nil, err
		}
		d.Components = append(d.Components, c)
	}
	sort.Slice(d.Components, func(i, j int) bool { return d.Components[i].ID < d.Components[j].ID })
	sort.Slice(d.Edges, func(i, j int) bool {
		if d.Edges[i].From != d.Edges[j].From {
			return d.Edges[i].From < d.Edges[j].From
		}
		return d.Edges[i].To < d.Edges[j].To
	})
	return graph.FromDocument(d)
}

func (s *GraphStore) component(m map[string]any) (graph.Component, error) {
	c := graph.Component{
		ID: s.n.strip(m["id"]), Env: str(m["env"]), Type: str(m["type"]), Nickname: str(m["nickname"]),
		ConfigPath: str(m["config_path"]), RuntimePath: str(m["runtime_path"]), ConfigHash: str(m["config_hash"]),
		RuntimeHash: str(m["runtime_hash"]), RuntimeStatus: str(m["runtime_status"]), Broken: m["broken"] == true,
	}
	if err := unmarshalProp(m, "files", &c.Files); err != nil {
		return c, fmt.Errorf("neptune: read graph: component %s: %w", c.ID, err)
	}
	if err := unmarshalProp(m, "runtime_keys", &c.RuntimeKeys); err != nil {
		return c, fmt.Errorf("neptune: read graph: component %s: %w", c.ID, err)
	}
	if err := unmarshalProp(m, "sub_runtime_paths", &c.SubRuntimePaths); err != nil {
		return c, fmt.Errorf("neptune: read graph: component %s: %w", c.ID, err)
	}
	return c, nil
}

func unmarshalProp(m map[string]any, key string, v any) error {
	s := str(m[key])
	if s == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("property %s: %w", key, err)
	}
	return nil
}
