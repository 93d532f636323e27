package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/model/modeltest"
	"github.com/usekarma/karma/shared/pipeline"
)

// The targets on a 10,000-component graph: GET /graph at 2,000 requests/s or more with
// a p99 of 50 ms at most, GET /impact with a p99 of 10 ms at most. These benchmarks serve the
// handler in-process (no network), with the graph in memory as karma serve keeps it (Snapshot),
// and report requests/s and the p99 of the requests they sent. A load test from a second
// process is separate.

// fixedGraphs are graphs already built, per environment ("" = all): what a Snapshot serves
// between rebuilds.
type fixedGraphs map[string]*model.Result

func (f fixedGraphs) Current(_ context.Context, env string) (*model.Result, error) {
	return f[env], nil
}

// discard is a ResponseWriter that streams the body away, as a socket takes it, keeping the
// status and the size.
type discard struct {
	header http.Header
	code   int
	n      int
}

func (d *discard) Header() http.Header { return d.header }
func (d *discard) WriteHeader(code int) {
	if d.code == 0 {
		d.code = code
	}
}
func (d *discard) Write(b []byte) (int, error) {
	d.WriteHeader(http.StatusOK)
	d.n += len(b)
	return len(b), nil
}

func benchHandler(b *testing.B, spec modeltest.Spec) (http.Handler, *model.Result) {
	b.Helper()
	dir := b.TempDir()
	if _, err := modeltest.Generate(dir, spec); err != nil {
		b.Fatal(err)
	}
	graphs := fixedGraphs{}
	for _, env := range append([]string{""}, spec.Envs...) {
		res, err := model.Build(context.Background(), dir, model.BuildOptions{LoadOptions: model.LoadOptions{Env: env}})
		if err != nil {
			b.Fatal(err)
		}
		graphs[env] = res
	}
	ctx := context.Background()
	db, err := embedded.Open(filepath.Join(b.TempDir(), "karma.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	q, _ := embedded.NewQueue(ctx, db, embedded.QueueOptions{})
	cs, _ := embedded.NewChangeSets(ctx, db)
	lin, _ := embedded.NewLineage(ctx, db)
	al, _ := embedded.NewAuditLog(ctx, db)
	auth, err := ParseTokens([]byte(tokensText()))
	if err != nil {
		b.Fatal(err)
	}
	h, err := New(Config{Graphs: graphs, ChangeSets: cs, Lineage: lin, Audit: al, Publisher: pipeline.QueuePublisher{Queue: q}, Auth: auth})
	if err != nil {
		b.Fatal(err)
	}
	return h, graphs[""]
}

// serve runs the requests in parallel, checking each answers 200, and reports throughput and
// latency percentiles.
func serve(b *testing.B, h http.Handler, next func(i int) *http.Request) {
	b.Helper()
	var mu sync.Mutex
	var lat []time.Duration
	var n, bytes int
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			mu.Lock()
			i := n
			n++
			mu.Unlock()
			r := next(i)
			w := &discard{header: http.Header{}}
			t0 := time.Now()
			h.ServeHTTP(w, r)
			mine = append(mine, time.Since(t0))
			mu.Lock()
			bytes += w.n
			mu.Unlock()
			if w.code != http.StatusOK || w.n == 0 {
				b.Errorf("%s: %d, %d bytes", r.URL, w.code, w.n)
				return
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
		b.ReportMetric(float64(lat[len(lat)*50/100].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(bytes)/float64(len(lat)), "B/resp")
	}
}

func authed(method, url string) *http.Request {
	r := httptest.NewRequest(method, url, nil)
	r.Header.Set("Authorization", "Bearer "+tokens["reader"])
	return r
}

// BenchmarkGetGraph10k: GET /graph of 10,000 components (two environments of 5,000), the whole
// document and one environment's, gzip-compressed as clients ask for it.
func BenchmarkGetGraph10k(b *testing.B) {
	h, res := benchHandler(b, modeltest.Spec{Components: 10_000, Envs: []string{"dev", "prod"}, Layers: 10, RefsPerComponent: 3, Seed: 1})
	// What the first request after a new graph pays: encoding the document (and its gzip).
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			if _, err := encodeGraph(res.Graph, ""); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, c := range []struct{ name, url string }{{"all", "/graph"}, {"env", "/graph?env=prod"}} {
		for _, gz := range []bool{false, true} {
			name := c.name
			if gz {
				name += "-gzip"
			}
			b.Run(name, func(b *testing.B) {
				serve(b, h, func(int) *http.Request {
					r := authed("GET", c.url)
					if gz {
						r.Header.Set("Accept-Encoding", "gzip")
					}
					return r
				})
			})
		}
	}
}

// BenchmarkImpact: GET /impact of components across the 10,000-component graph, from the
// foundations (large blast radius) to the leaves.
func BenchmarkImpact(b *testing.B) {
	h, res := benchHandler(b, modeltest.Spec{Components: 10_000, Envs: []string{"dev", "prod"}, Layers: 10, RefsPerComponent: 3, Seed: 1})
	var ids []string
	for _, c := range res.Graph.Components {
		ids = append(ids, c.ID)
	}
	slices.Sort(ids)
	serve(b, h, func(i int) *http.Request { return authed("GET", "/impact?component="+ids[(i*7919)%len(ids)]) })
}
