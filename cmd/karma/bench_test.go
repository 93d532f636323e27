package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/terraform"
	"github.com/usekarma/karma/workers/ingest"
)

// BenchmarkPipeline measures change events from ingest to audit on the embedded queue, with
// Terraform replaced by the no-op runner behind the same interface. Each event is a change
// request for a leaf component (prod/serverless-site/www): change.detected -> resolve ->
// change.resolved + deployment.scheduled -> graph-write -> deployment.recorded -> plan ->
// deployment.planned -> apply (runtime published) -> deployment.applied -> resolve, graph-write;
// every message also to audit.
func BenchmarkPipeline(b *testing.B) {
	ctx := context.Background()
	repo, err := filepath.Abs(filepath.Join("..", "..", "examples"))
	if err != nil {
		b.Fatal(err)
	}
	g := &globals{repo: repo, stateDir: b.TempDir(), paramsBackend: "embedded", testRunner: &terraform.Noop{}}
	s, err := g.open(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	st, err := s.stack(ctx, stackOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if err := st.workers(ctx, stackOptions{parallelism: 4}); err != nil {
		b.Fatal(err)
	}
	events := make([]message.Envelope, b.N)
	for i := range events {
		cfg := fmt.Sprintf(`{"karma":{"extends":"serverless-site/site-defaults"},"site_name":"www.example.com","route53_zone_nickname":"main","api_origin":"${serverless-api/public.runtime.api_domain}","revision":%d}`, i)
		e, err := ingest.FromRequest(ingest.Request{Env: "prod", Configs: map[string][]byte{"serverless-site/www": []byte(cfg)},
			Actor: message.Actor{Kind: "cli", Name: "bench"}, AutoApprove: true})
		if err != nil {
			b.Fatal(err)
		}
		events[i] = e
	}
	// The interpolated upstream runtime must exist: publish it once.
	ps, err := s.params("prod")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := ps.Put(ctx, params.PutInput{Name: "/iac/serverless-api/public/runtime", Value: `{"api_domain":"api.example.com"}`}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < len(events); i += 100 {
		if err := st.publish(ctx, events[i:min(i+100, len(events))]...); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.runUntilIdle(ctx, 30*time.Minute); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	all, _ := st.changeSets.List(ctx)
	applied := 0
	for _, cs := range all {
		for _, n := range cs.Nodes {
			if n.State == "applied" {
				applied++
			}
		}
	}
	if applied != b.N {
		b.Fatalf("%d of %d deployments applied", applied, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(elapsed.Microseconds())/1000/float64(b.N), "ms/deployment")
}
