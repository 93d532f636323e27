package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/model"
)

// GET /graph?env=&type= — the graph as `karma graph export` writes it (graph.Document,
// format karma.graph.v1), of one environment or all, optionally only the components of one
// type (and the edges between them). The document is encoded once per graph and filter and
// kept (graphCache): a request is then a lookup and a write, with a strong ETag (the SHA-256
// of the bytes) for If-None-Match, and the bytes gzip-compressed once for clients that accept
// it.

// encodedGraph is one graph document, ready to send.
type encodedGraph struct {
	body, gzipped []byte
	etag          string
	// missingType is the 404 of a type filter no component of the graph has (a misspelt type
	// answered an empty graph, as if the environment had none of a type it does not know).
	missingType *Problem
}

// graphCache keeps the documents of the latest graphs; a graph is identified by its
// *model.Result (Graphs returns the same one for the same commit).
type graphCache struct {
	mu      sync.Mutex
	entries map[graphKey]*encodedGraph
	order   []graphKey
}

type graphKey struct {
	res *model.Result
	typ string
}

const graphCacheSize = 32

func (c *graphCache) get(res *model.Result, typ string) (*encodedGraph, error) {
	k := graphKey{res, typ}
	c.mu.Lock()
	e, ok := c.entries[k]
	c.mu.Unlock()
	if ok {
		return e, nil
	}
	e, err := encodeGraph(res.Graph, typ)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[graphKey]*encodedGraph{}
	}
	if _, ok := c.entries[k]; !ok {
		c.entries[k] = e
		c.order = append(c.order, k)
		if len(c.order) > graphCacheSize {
			delete(c.entries, c.order[0])
			c.order = c.order[1:]
		}
	}
	return e, nil
}

func encodeGraph(g *graph.Graph, typ string) (*encodedGraph, error) {
	if p := unknownType(g, typ); p != nil {
		return &encodedGraph{missingType: p}, nil
	}
	if typ != "" {
		g = subgraph(g, func(c *graph.Component) bool { return c.Type == typ })
	}
	body, err := json.Marshal(g.Document())
	if err != nil {
		return nil, err
	}
	body = append(body, '\n')
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
	zw.Write(body)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	return &encodedGraph{body: body, gzipped: z.Bytes(), etag: `"` + hex.EncodeToString(sum[:16]) + `"`}, nil
}

// unknownType is the 404 (pointer /query/type) of a type filter that no component of g has,
// naming the types it has; nil for none, or a type g has.
func unknownType(g *graph.Graph, typ string) *Problem {
	if typ == "" {
		return nil
	}
	types := map[string]bool{}
	for i := range g.Components {
		if g.Components[i].Type == typ {
			return nil
		}
		types[g.Components[i].Type] = true
	}
	p := notFound("no component of type %q: the types here are %s", typ, strings.Join(slices.Sorted(maps.Keys(types)), ", "))
	p.Errors = []FieldError{{Pointer: "/query/type", Detail: "no component of this type"}}
	return p
}

// subgraph keeps the components keep accepts and the edges between them.
func subgraph(g *graph.Graph, keep func(*graph.Component) bool) *graph.Graph {
	b := graph.NewBuilder(0)
	index := map[int32]int32{}
	for i := range g.Components {
		if keep(&g.Components[i]) {
			index[int32(i)], _ = b.AddComponent(g.Components[i])
		}
	}
	for _, e := range g.Edges {
		from, ok1 := index[e.From]
		to, ok2 := index[e.To]
		if ok1 && ok2 {
			for _, src := range e.Sources {
				b.AddEdge(from, to, src)
			}
		}
	}
	return b.Graph()
}

func (s *server) getGraph(w http.ResponseWriter, r *http.Request, _ Caller) error {
	q := &query{r: r}
	env, typ := q.str("env"), q.str("type")
	if err := q.err(); err != nil {
		return err
	}
	res, err := s.current(r.Context(), env, "/query/env")
	if err != nil {
		return err
	}
	e, err := s.graphs.get(res, typ)
	if err != nil {
		return err
	}
	if e.missingType != nil {
		return e.missingType
	}
	h := w.Header()
	h.Set("ETag", e.etag)
	h.Set("Cache-Control", "no-cache") // revalidate: the graph moves with the deploy branch
	h.Set("Vary", "Accept-Encoding")
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatches(match, e.etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	h.Set("Content-Type", "application/json")
	body := e.body
	if acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = e.gzipped
	}
	_, err = w.Write(body)
	return err
}

// current is the graph of env, 404 for an unknown environment (pointer names the input).
func (s *server) current(ctx context.Context, env, pointer string) (*model.Result, error) {
	res, err := s.cfg.Graphs.Current(ctx, env)
	if errors.Is(err, ErrUnknownEnvironment) {
		p := notFound("%v", err)
		p.Errors = []FieldError{{Pointer: pointer, Detail: "no such environment"}}
		return nil, p
	}
	return res, err
}

func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// acceptsGzip reads Accept-Encoding: gzip, unless with q=0.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		_, qv, hasQ := strings.Cut(strings.ReplaceAll(params, " ", ""), "q=")
		q, err := strconv.ParseFloat(qv, 64)
		return !hasQ || (err == nil && q > 0)
	}
	return false
}
