package neptune

// Writing the graph: the delta the package comment describes (doc.go, "Write is a delta"):
// stored hashes say what is unchanged, new and changed rows are merged in batches, removed
// elements are dropped by id.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"

	gremlingo "github.com/apache/tinkerpop/gremlin-go/v3/driver"
	"github.com/usekarma/karma/shared/graph"
)

// contentHash is the first 128 bits of the SHA-256 of v's JSON form, in hex. The JSON of a
// component or edge includes its id, so no two elements share a hash.
func contentHash(v any) string {
	sum := sha256.Sum256([]byte(jsonString(v)))
	return hex.EncodeToString(sum[:16])
}

// elem is a component or depends_on edge of the graph being written: its vertex or edge id and
// its content hash; the map to send is built only when it has to be written.
type elem struct {
	key, hash string
	i         int32 // index in Graph.Components or Graph.Edges
}

func (s *GraphStore) componentMap(c graph.Component, hash string) map[any]any {
	return map[any]any{
		"m":   map[any]any{tID: s.n.id(c.ID), tLabel: LabelComponent},
		"env": c.Env, "type": c.Type, "nickname": c.Nickname, "config_path": c.ConfigPath, "runtime_path": c.RuntimePath,
		"config_hash": c.ConfigHash, "runtime_hash": c.RuntimeHash, "runtime_status": c.RuntimeStatus, "broken": c.Broken,
		"files": jsonString(c.Files), "runtime_keys": jsonString(c.RuntimeKeys),
		"sub_runtime_paths": jsonString(c.SubRuntimePaths), "hash": hash,
	}
}

func (s *GraphStore) dependsOnID(from, to string) string {
	return s.n.id(from + "|" + LabelDependsOn + "|" + to)
}

func (s *GraphStore) emitsID(from, to string) string {
	return s.n.id(to + "|" + LabelEmitsRuntimeTo + "|" + from)
}

// edgeMap is a depends_on edge and its emits_runtime_to twin, with their properties.
func (s *GraphStore) edgeMap(e graph.EdgeDoc, env, hash string) map[any]any {
	from, to := s.n.id(e.From), s.n.id(e.To)
	consumes := jsonString(e.Consumes)
	return map[any]any{
		"d":  map[any]any{tID: s.dependsOnID(e.From, e.To), tLabel: LabelDependsOn, dirOut: from, dirIn: to},
		"dp": map[any]any{"ns": s.n.ns, "env": env, "consumes": consumes, "sources": jsonString(e.Sources), "hash": hash},
		"e":  map[any]any{tID: s.emitsID(e.From, e.To), tLabel: LabelEmitsRuntimeTo, dirOut: to, dirIn: from},
		"ep": map[any]any{"ns": s.n.ns, "env": env, "keys": consumes, "hash": hash},
	}
}

func approxSize(v any) int {
	switch x := v.(type) {
	case string:
		return len(x) + 8
	case map[any]any:
		n := 8
		for k, v := range x {
			n += approxSize(k) + approxSize(v)
		}
		return n
	default:
		return 16
	}
}

// Write replaces the given environments' components and edges with g's, writing only what
// changed (see the package comment); an environment whose graph changed forgets its commit.
func (s *GraphStore) Write(ctx context.Context, g *graph.Graph, envs []string) (graph.WriteStats, error) {
	st, changed, err := s.write(ctx, g, envs)
	if err != nil || len(changed) == 0 {
		return st, err
	}
	var ids []any
	for _, env := range envs {
		if changed[env] {
			ids = append(ids, s.commitID(env))
		}
	}
	if len(ids) == 0 { // g.V() of no id would be every vertex
		return st, nil
	}
	st.RoundTrips++
	if _, err := s.c.Run(ctx, "forget graph commits", func(g *Source) *Traversal {
		return g.V(ids...).HasLabel(LabelGraphCommit).Drop()
	}); err != nil {
		return st, err
	}
	return st, nil
}

// WriteAt is Write of env's graph built at commit, then records commit (once the graph is
// written: a write that fails half-way leaves the commit recorded before it).
func (s *GraphStore) WriteAt(ctx context.Context, g *graph.Graph, env, commit string) (graph.WriteStats, error) {
	if commit == "" {
		return graph.WriteStats{}, fmt.Errorf("neptune: graph write of %s: no commit", env)
	}
	st, _, err := s.write(ctx, g, []string{env})
	if err != nil {
		return st, err
	}
	st.RoundTrips++
	_, err = s.c.Run(ctx, "record graph commit", func(g *Source) *Traversal {
		return g.MergeV(map[any]any{tID: s.commitID(env), tLabel: LabelGraphCommit}).
			Property(single, "ns", s.n.ns).Property(single, "env", env).Property(single, "commit", commit).Count()
	})
	return st, err
}

// Commit is the commit env's graph was last written at, "" when none is known.
func (s *GraphStore) Commit(ctx context.Context, env string) (string, error) {
	res, err := s.c.Run(ctx, "read graph commit", func(g *Source) *Traversal {
		return g.V(s.commitID(env)).HasLabel(LabelGraphCommit).Values("commit")
	})
	if err != nil || len(res) == 0 {
		return "", err
	}
	return str(res[0]), nil
}

// commitID is the id of the vertex recording env's commit.
func (s *GraphStore) commitID(env string) string { return s.n.id("graph-commit:" + env) }

// write is Write without the commits; changed are the environments whose graph it changed.
func (s *GraphStore) write(ctx context.Context, g *graph.Graph, envs []string) (st graph.WriteStats, changed map[string]bool, err error) {
	if len(envs) == 0 {
		return st, changed, nil
	}
	inScope := map[string]bool{}
	for _, e := range envs {
		inScope[e] = true
	}
	var comps, edges []elem
	for i, c := range g.Components {
		if inScope[c.Env] {
			comps = append(comps, elem{key: s.n.id(c.ID), hash: contentHash(c), i: int32(i)})
		}
	}
	for i := range g.Edges {
		if inScope[g.Components[g.Edges[i].From].Env] {
			e := g.EdgeDoc(int32(i))
			edges = append(edges, elem{key: s.dependsOnID(e.From, e.To), hash: contentHash(e), i: int32(i)})
		}
	}

	// 1. What is stored, as hashes: unchanged elements need no more than that.
	have, err := s.storedHashes(ctx, envs)
	st.RoundTrips++
	if err != nil {
		return graph.WriteStats{}, nil, err
	}
	wanted := make(map[string]bool, len(comps)+len(edges))
	var changedV, changedE []elem
	for _, e := range comps {
		wanted[e.hash] = true
		if have[e.hash] {
			st.Unchanged++
		} else {
			changedV = append(changedV, e)
		}
	}
	for _, e := range edges {
		wanted[e.hash] = true
		if have[e.hash] {
			st.Unchanged++
		} else {
			changedE = append(changedE, e)
		}
	}
	// 2. Stored hashes no longer wanted are old versions of changed elements, or elements gone.
	var goneV, goneE []string
	if stale := staleHashes(have, wanted); len(stale) > 0 {
		staleV, staleE, err := s.idsOf(ctx, envs, stale)
		st.RoundTrips++
		if err != nil {
			return st, changed, err
		}
		keep := make(map[string]bool, len(changedV)+len(changedE))
		for _, e := range changedV {
			keep[e.key] = true
		}
		for _, e := range changedE {
			keep[e.key] = true
		}
		for _, id := range staleV {
			if !keep[id] {
				goneV = append(goneV, id)
			}
		}
		for _, id := range staleE {
			if !keep[id] {
				goneE = append(goneE, id)
			}
		}
	}

	changed = map[string]bool{}
	for _, e := range changedV {
		changed[g.Components[e.i].Env] = true
	}
	for _, e := range changedE {
		changed[g.Components[g.Edges[e.i].From].Env] = true
	}
	for _, id := range slices.Concat(goneV, goneE) {
		env, _, _ := strings.Cut(s.n.strip(id), "/")
		changed[env] = true
	}

	// 3. Edges out first, vertices in before their edges, vertices out last.
	if len(goneE) > 0 {
		ids := make([]any, 0, 2*len(goneE))
		for _, id := range goneE {
			ids = append(ids, id, s.emitsIDFromDependsOn(id))
		}
		n, err := s.dropAll(ctx, "drop edges", ids, func(g *Source, batch []any) *Traversal { return g.E(batch...).Drop() })
		st.RoundTrips += n
		if err != nil {
			return st, changed, err
		}
		st.EdgesDeleted = len(goneE)
	}
	n, err := s.writeBatches(ctx, "write components", changedV, func(e elem) map[any]any {
		return s.componentMap(g.Components[e.i], e.hash)
	}, s.mergeComponents)
	st.RoundTrips += n
	if err != nil {
		return st, changed, err
	}
	st.ComponentsWritten = len(changedV)
	n, err = s.writeBatches(ctx, "write edges", changedE, func(e elem) map[any]any {
		return s.edgeMap(g.EdgeDoc(e.i), g.Components[g.Edges[e.i].From].Env, e.hash)
	}, s.mergeEdges)
	st.RoundTrips += n
	if err != nil {
		return st, changed, err
	}
	st.EdgesWritten = len(changedE)
	if len(goneV) > 0 {
		ids := make([]any, len(goneV))
		for i, id := range goneV {
			ids[i] = id
		}
		// A component that lineage points at — a deployment, or a drift event — keeps its vertex,
		// minus the hash that makes it part of the graph; any other is dropped with whatever
		// edges it still has.
		n, err := s.dropAll(ctx, "drop components", ids, func(g *Source, batch []any) *Traversal {
			return g.V(batch...).Choose(__.InE(LabelDeploys, LabelDrifted), __.Properties("hash").Drop(), __.Drop())
		})
		st.RoundTrips += n
		if err != nil {
			return st, changed, err
		}
		st.ComponentsDeleted = len(goneV)
	}
	return st, changed, nil
}

// emitsIDFromDependsOn maps "<ns:>a|depends_on|b" to "<ns:>b|emits_runtime_to|a".
func (s *GraphStore) emitsIDFromDependsOn(id string) string {
	from, to, _ := strings.Cut(strings.TrimPrefix(id, s.n.prefix), "|"+LabelDependsOn+"|")
	return s.emitsID(from, to)
}

func staleHashes(have, wanted map[string]bool) []string {
	var out []string
	for h := range have {
		if !wanted[h] {
			out = append(out, h)
		}
	}
	sort.Strings(out)
	return out
}

// storedHashes reads the hashes of the environments' components and of their depends_on edges
// (an edge belongs to its dependent's environment): one request, whose answer is only strings.
// Edges are reached from their vertices, not by a mid-traversal E(), which Neptune's engine
// may not optimise.
func (s *GraphStore) storedHashes(ctx context.Context, envs []string) (map[string]bool, error) {
	res, err := s.c.Run(ctx, "read graph state", func(g *Source) *Traversal {
		return g.V().Has(LabelComponent, "ns", s.n.ns).Has("env", within(envs)).
			Union(__.Values("hash"), __.OutE(LabelDependsOn).Values("hash"))
	})
	if err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(res))
	for _, r := range res {
		have[str(r)] = true
	}
	return have, nil
}

// lookupLimit is the most hashes idsOf looks up by value: the server tests within() against a
// list, so beyond a few hundred it is cheaper to read every (id, hash) pair of the scope.
const lookupLimit = 256

// idsOf returns the component and depends_on edge ids that have these hashes: one request.
func (s *GraphStore) idsOf(ctx context.Context, envs, hashes []string) (vertices, edges []string, err error) {
	byValue := len(hashes) <= lookupLimit
	res, err := s.c.Run(ctx, "read stale ids", func(g *Source) *Traversal {
		v, e := __.Has("hash"), __.OutE(LabelDependsOn)
		if byValue {
			v, e = v.Has("hash", within(hashes)), e.Has("hash", within(hashes))
		}
		return g.V().Has(LabelComponent, "ns", s.n.ns).Has("env", within(envs)).Union(
			v.Project("v", "i", "h").By(__.Constant(true)).By(tID).By("hash"),
			e.Project("v", "i", "h").By(__.Constant(false)).By(tID).By("hash"),
		)
	})
	if err != nil {
		return nil, nil, err
	}
	wanted := make(map[string]bool, len(hashes))
	for _, h := range hashes {
		wanted[h] = true
	}
	for _, r := range res {
		m := stringKeys(r)
		if !wanted[str(m["h"])] {
			continue
		}
		if m["v"] == true {
			vertices = append(vertices, str(m["i"]))
		} else {
			edges = append(edges, str(m["i"]))
		}
	}
	sort.Strings(vertices)
	sort.Strings(edges)
	return vertices, edges, nil
}

// mergeComponents upserts component vertices, replacing every property (single cardinality:
// the default may be set, as on Neptune, where a plain property() would add a value).
func (s *GraphStore) mergeComponents(g *Source, rows []any) *Traversal {
	t := g.Inject(rows).Unfold().As("r").MergeV(__.Select("m")).Property(single, "ns", s.n.ns)
	for _, k := range componentKeys {
		t = t.Property(single, k, __.Select("r").Select(k))
	}
	return t.Count()
}

// mergeEdges upserts each depends_on edge and its emits_runtime_to twin (edge properties have
// one value each, so the option maps replace them).
func (s *GraphStore) mergeEdges(g *Source, rows []any) *Traversal {
	return g.Inject(rows).Unfold().Union(
		__.MergeE(__.Select("d")).Option(gremlingo.Merge.OnCreate, __.Select("dp")).Option(gremlingo.Merge.OnMatch, __.Select("dp")),
		__.MergeE(__.Select("e")).Option(gremlingo.Merge.OnCreate, __.Select("ep")).Option(gremlingo.Merge.OnMatch, __.Select("ep")),
	).Count()
}

// writeBatches sends elems in batches of at most s.batch and maxBatchBytes, building each map
// with mk; returns the number of requests made.
func (s *GraphStore) writeBatches(ctx context.Context, op string, elems []elem, mk func(elem) map[any]any, build func(g *Source, rows []any) *Traversal) (int, error) {
	trips := 0
	for start := 0; start < len(elems); {
		var batch []any
		size, end := 0, start
		for end < len(elems) && end-start < s.batch {
			m := mk(elems[end])
			sz := approxSize(m)
			if end > start && size+sz > maxBatchBytes {
				break
			}
			batch = append(batch, m)
			size += sz
			end++
		}
		trips++
		res, err := s.c.Run(ctx, op, func(g *Source) *Traversal { return build(g, batch) })
		if err != nil {
			return trips, err
		}
		if len(res) != 1 || toInt(res[0]) < int64(len(batch)) {
			return trips, &Error{Op: op, Err: fmt.Errorf("wrote %v for %d rows", res, len(batch)), transient: true}
		}
		start = end
	}
	return trips, nil
}

func (s *GraphStore) dropAll(ctx context.Context, op string, ids []any, build func(g *Source, batch []any) *Traversal) (int, error) {
	trips := 0
	for start := 0; start < len(ids); start += s.batch {
		end := min(start+s.batch, len(ids))
		trips++
		if _, err := s.c.Run(ctx, op, func(g *Source) *Traversal { return build(g, ids[start:end]) }); err != nil {
			return trips, err
		}
	}
	return trips, nil
}
