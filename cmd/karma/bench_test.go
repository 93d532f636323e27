package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	cpu0 := processCPU()
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
	cpu := processCPU() - cpu0
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
	if cpu > 0 {
		// CPU time of the whole process (every stage, SQLite, GC) per event: unlike the wall time,
		// it hardly depends on what else the machine is running.
		b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/event")
	}
}

// processCPU is the CPU time (user + system) this process used so far, from /proc/self/stat
// (Linux; 0 elsewhere). Clock ticks are taken as 100 Hz, the value on every Linux platform Go
// supports.
func processCPU() time.Duration {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; the fields after its closing parenthesis are
	// state (3), ... utime (14), stime (15).
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
