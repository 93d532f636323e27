package graph

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// FormatV1 names the JSON export format. Fields are only ever added within a format version;
// removing or changing one means a new version. docs/graph-model.md documents every field.
const FormatV1 = "karma.graph.v1"

// Document is the stable JSON form of a graph, served by the API and UI.
type Document struct {
	Format     string      `json:"format"`
	Components []Component `json:"components"`
	Edges      []EdgeDoc   `json:"edges"`
	Waves      [][]string  `json:"waves"`
	Cycles     []Cycle     `json:"cycles,omitempty"`
}

// EdgeDoc is an edge with component ids instead of indexes. Relation is always "depends_on";
// the runtime views are this edge read backwards (To emits_runtime_to From; From
// consumes_runtime_from To, the keys in Consumes).
type EdgeDoc struct {
	From     string   `json:"from"`
	To       string   `json:"to"`
	Relation string   `json:"relation"`
	Consumes []string `json:"consumes"`
	// Redeploy is "on-any-apply" when From is redeployed after every apply of To, whatever
	// changed (absent: only when a consumed key changed).
	Redeploy string   `json:"redeploy,omitempty"`
	Sources  []Source `json:"sources"`
}

// Document returns the JSON form (waves are empty when the graph has cycles).
func (g *Graph) Document() Document {
	d := Document{Format: FormatV1, Components: g.Components, Edges: make([]EdgeDoc, len(g.Edges)), Waves: [][]string{}}
	for i := range g.Edges {
		d.Edges[i] = g.EdgeDoc(int32(i))
	}
	if waves, err := g.Waves(); err == nil {
		for _, w := range waves {
			d.Waves = append(d.Waves, g.IDs(w))
		}
	} else {
		d.Cycles = g.Cycles()
	}
	return d
}

// EdgeDoc returns edge i with component ids.
func (g *Graph) EdgeDoc(i int32) EdgeDoc {
	e := &g.Edges[i]
	return EdgeDoc{From: g.Components[e.From].ID, To: g.Components[e.To].ID, Relation: "depends_on", Consumes: e.Consumes, Redeploy: e.Redeploy, Sources: e.Sources}
}

// FromDocument rebuilds a graph from its JSON form (as stored or served).
func FromDocument(d Document) (*Graph, error) {
	if d.Format != FormatV1 {
		return nil, fmt.Errorf("graph: unsupported document format %q (want %s)", d.Format, FormatV1)
	}
	b := NewBuilder(len(d.Components))
	for _, c := range d.Components {
		if _, err := b.AddComponent(c); err != nil {
			return nil, err
		}
	}
	for _, e := range d.Edges {
		from, ok1 := b.g.byID[e.From]
		to, ok2 := b.g.byID[e.To]
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("graph: edge %s -> %s names an unknown component", e.From, e.To)
		}
		for _, s := range e.Sources {
			b.AddEdge(from, to, s)
		}
	}
	return b.Graph(), nil
}

// WriteJSON writes the Document, indented.
func (g *Graph) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(g.Document())
}

// WriteDOT writes Graphviz DOT: one cluster per environment, edges dependent -> dependency
// labelled with the consumed keys.
func (g *Graph) WriteDOT(w io.Writer) error {
	var b strings.Builder
	b.WriteString("digraph karma {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n")
	env := ""
	for i, c := range g.Components {
		if c.Env != env {
			if env != "" {
				b.WriteString("  }\n")
			}
			env = c.Env
			fmt.Fprintf(&b, "  subgraph %q {\n    label=%q;\n", "cluster_"+env, env)
		}
		style := ""
		switch {
		case c.Broken:
			style = ", color=red"
		case c.RuntimeStatus == RuntimeMissing || c.RuntimeStatus == RuntimePlaceholder:
			style = ", style=dashed"
		}
		fmt.Fprintf(&b, "    n%d [label=%q%s];\n", i, c.Type+"/"+c.Nickname, style)
	}
	if env != "" {
		b.WriteString("  }\n")
	}
	for _, e := range g.Edges {
		if e.OnAnyApply() { // drawn bold, labelled: redeployed after every apply, whatever changed
			fmt.Fprintf(&b, "  n%d -> n%d [label=%q, style=bold];\n", e.From, e.To, edgeLabel(&e))
			continue
		}
		fmt.Fprintf(&b, "  n%d -> n%d [label=%q];\n", e.From, e.To, edgeLabel(&e))
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMermaid writes a Mermaid flowchart (renders on GitHub and in most docs tools).
func (g *Graph) WriteMermaid(w io.Writer) error {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	env := ""
	for i, c := range g.Components {
		if c.Env != env {
			if env != "" {
				b.WriteString("  end\n")
			}
			env = c.Env
			fmt.Fprintf(&b, "  subgraph env_%s [%s]\n", mermaidID(env), env)
		}
		fmt.Fprintf(&b, "    n%d[\"%s\"]\n", i, mermaidText(c.Type+"/"+c.Nickname))
	}
	if env != "" {
		b.WriteString("  end\n")
	}
	for _, e := range g.Edges {
		arrow := "-->"
		if e.OnAnyApply() {
			arrow = "==>" // thick: redeployed after every apply, whatever changed
		}
		fmt.Fprintf(&b, "  n%d %s|\"%s\"| n%d\n", e.From, arrow, mermaidText(edgeLabel(&e)), e.To)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// edgeLabel is the consumed keys, and "on any apply" for an edge that redeploys whatever changed.
func edgeLabel(e *Edge) string {
	l := strings.Join(e.Consumes, ",")
	if e.OnAnyApply() {
		l += " (on any apply)"
	}
	return l
}

func mermaidID(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
}

func mermaidText(s string) string { return strings.ReplaceAll(s, "\"", "#quot;") }
