package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/terraform"
	"github.com/usekarma/karma/shared/trigger"
)

// BenchmarkPipeline measures change events from ingest to audit on the embedded queue, with
// Terraform replaced by the no-op runner behind the same interface. Each event is a change
// request for one of benchSites leaf components (prod/serverless-site/www-NN, in rotation):
// change.detected -> resolve -> change.resolved + deployment.scheduled -> graph-write ->
// deployment.recorded -> plan -> deployment.planned -> apply (runtime published) ->
// deployment.applied -> resolve, graph-write; every message also to audit. Change sets of one
// site queue behind each other (change-set ordering), those of different sites do not.
func BenchmarkPipeline(b *testing.B) { benchPipeline(b, benchSites) }

// BenchmarkPipelineOneComponent is BenchmarkPipeline with every event for the same component:
// each change set waits for the one before it (change-set ordering), so this measures one
// event's latency through every stage plus the ordering's bookkeeping, which grows with the
// queue (each change set records every earlier one it waits for).
func BenchmarkPipelineOneComponent(b *testing.B) { benchPipeline(b, 1) }

// benchSites is how many leaf components BenchmarkPipeline's events rotate over.
const benchSites = 50

func benchPipeline(b *testing.B, sites int) {
	ctx := context.Background()
	s, st := benchStack(b, sites)
	events := benchEvents(b, b.N, sites)
	// The interpolated upstream runtime must exist: publish it once.
	ps, err := s.params("prod")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := ps.Put(ctx, params.PutInput{Name: "/iac/serverless-api/public/runtime", Value: `{"api_domain":"api.example.com"}`}); err != nil {
		b.Fatal(err)
	}
	run := benchRun(b, st, events)
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
	benchReport(b, run)
}

// BenchmarkRuntimeOverhead is BenchmarkPipeline's message flow with the stages' work taken out:
// resolve, graph-write, plan and apply derive the same messages without touching a store, so
// what is left is the runtime (queue, claims, marks, acknowledgements, middleware) and the audit
// stage. Each event: 6 messages, 13 deliveries, 6 audit records.
func BenchmarkRuntimeOverhead(b *testing.B) {
	ctx := context.Background()
	_, st := benchStack(b, 1)
	events := benchEvents(b, b.N, 1)
	pass := map[string]pipeline.Handler{
		pipeline.StageResolve: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
			if in.Type != message.TypeChangeDetected {
				return nil, nil // deployment.applied: nothing is left to schedule
			}
			var p message.ChangeDetected
			if err := message.Decode(in, &p); err != nil {
				return nil, err
			}
			id, dep := p.ChangeSetID, "dep-"+in.ID
			component := "prod/serverless-site/www"
			return []message.Envelope{
				in.MustDerive(message.TypeChangeResolved, "resolved:"+id, message.ChangeResolved{ChangeSetID: id, Source: p.Source,
					RootCauses: []message.Cause{}, Roots: []string{component}, Affected: []string{component}, Waves: [][]string{{component}}}),
				in.MustDerive(message.TypeDeploymentScheduled, "deployment.scheduled:"+dep, message.DeploymentScheduled{ChangeSetID: id,
					DeploymentID: dep, Component: component, CausedBy: []message.Cause{}, ConfigHash: "h"}),
			}, nil
		},
		pipeline.StageGraphWrite: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
			if in.Type != message.TypeDeploymentScheduled {
				return nil, nil
			}
			var p message.DeploymentScheduled
			if err := message.Decode(in, &p); err != nil {
				return nil, err
			}
			return []message.Envelope{in.MustDerive(message.TypeDeploymentRecorded, "deployment.recorded:"+p.DeploymentID, message.DeploymentRecorded{DeploymentScheduled: p})}, nil
		},
		pipeline.StagePlan: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
			var p message.DeploymentRecorded
			if err := message.Decode(in, &p); err != nil {
				return nil, err
			}
			return []message.Envelope{in.MustDerive(message.TypeDeploymentPlanned, "deployment.planned:"+p.DeploymentID, message.DeploymentPlanned{DeploymentScheduled: p.DeploymentScheduled})}, nil
		},
		pipeline.StageApply: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
			var p message.DeploymentPlanned
			if err := message.Decode(in, &p); err != nil {
				return nil, err
			}
			return []message.Envelope{in.MustDerive(message.TypeDeploymentApplied, "deployment.applied:"+p.DeploymentID, message.DeploymentApplied{ChangeSetID: p.ChangeSetID,
				DeploymentID: p.DeploymentID, Component: p.Component, ChangedKeys: []string{}})}, nil
		},
	}
	for i := range st.runner.Stages {
		if h, ok := pass[st.runner.Stages[i].Name]; ok {
			st.runner.Stages[i].Handler = pipeline.Chain(h, pipeline.Correlation())
			st.runner.Stages[i].Prepare = nil // (the stage's work before its transaction goes too)
		}
	}
	run := benchRun(b, st, events)
	recs, err := st.audit.Query(ctx, audit.Query{})
	if err != nil || len(recs) != 6*b.N {
		b.Fatalf("%d audit records, want %d (%v)", len(recs), 6*b.N, err)
	}
	benchReport(b, run)
}

// benchStack is the embedded stack on a fresh state directory for the examples repository, with
// the no-op Terraform runner and 4 plan and apply workers. The repository gets sites copies of
// prod/serverless-site/www (benchSite), committed.
func benchStack(b *testing.B, sites int) (*session, *stack) {
	ctx := context.Background()
	repo, state := demoRepo(b) // resolve builds every change set from a commit
	www, err := os.ReadFile(filepath.Join(repo, "iac", "prod", "serverless-site", "www", "config.json"))
	if err != nil {
		b.Fatal(err)
	}
	for i := range sites {
		dir := filepath.Join(repo, "iac", "prod", benchSite(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "config.json"), www, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	// The example's ownership policy refuses change requests for prod's site (a request has no
	// commit author to be one of the web team); the other policies stay and are evaluated.
	if err := os.Remove(filepath.Join(repo, "policies", "ownership.rego")); err != nil {
		b.Fatal(err)
	}
	git(b, repo, "add", "-A")
	commitAs(b, repo, "Ada", "bench sites")
	git(b, repo, "repack", "-adq") // as a clone leaves it: resolve reads the commit from a pack
	g := &globals{repo: repo, stateDir: state, paramsBackend: "embedded", testRunner: &terraform.Noop{}}
	s, err := g.open(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.close)
	st, err := s.stack(ctx, stackOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if err := st.workers(ctx, stackOptions{parallelism: 4}); err != nil {
		b.Fatal(err)
	}
	return s, st
}

// benchSite is the i-th copy of serverless-site/www.
func benchSite(i int) string { return fmt.Sprintf("serverless-site/www-%02d", i) }

// benchEvents are n change requests for the sites in rotation, each with another config.
func benchEvents(b *testing.B, n, sites int) []message.Envelope {
	events := make([]message.Envelope, n)
	for i := range events {
		cfg := fmt.Sprintf(`{"karma":{"extends":"serverless-site/site-defaults"},"site_name":"www.example.com","route53_zone_nickname":"main","api_origin":"${serverless-api/public.runtime.api_domain}","revision":%d}`, i)
		e, err := trigger.FromRequest(trigger.Request{Env: "prod", Configs: map[string][]byte{benchSite(i % sites): []byte(cfg)},
			Actor: message.Actor{Kind: "cli", Name: "bench"}, AutoApprove: true})
		if err != nil {
			b.Fatal(err)
		}
		events[i] = e
	}
	return events
}

// sqlProfile, when above 0, makes the pipeline benchmarks print the statements that took the most
// time per event, that many (embedded.ProfileStatements): go test ./cmd/karma/ -run '^$'
// -bench 'Pipeline$' -benchtime 1000x -karma.sqlprofile 25. Timing each statement costs a
// little: compare the other figures from runs without it.
var sqlProfile = flag.Int("karma.sqlprofile", 0, "log the `n` statements that took the most time per event")

// benchRun publishes events (100 per call) and runs the pipeline until idle; it returns what the
// run took.
func benchRun(b *testing.B, st *stack, events []message.Envelope) benchRunResult {
	ctx := context.Background()
	b.ResetTimer()
	if *sqlProfile > 0 {
		stop := embedded.ProfileStatements()
		defer func() { logStatements(b, stop(), *sqlProfile) }()
	}
	cpu0, sql0, io0 := processCPU(), embedded.Counters(), processIO()
	start := time.Now()
	for i := 0; i < len(events); i += 100 {
		if err := st.publish(ctx, events[i:min(i+100, len(events))]...); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.runUntilIdle(ctx, 30*time.Minute); err != nil {
		b.Fatal(err)
	}
	r := benchRunResult{elapsed: time.Since(start), cpu: processCPU() - cpu0, sql: embedded.Counters().Sub(sql0)}
	if io1 := processIO(); io0 != nil && io1 != nil {
		r.written, r.read = io1["wchar"]-io0["wchar"], io1["rchar"]-io0["rchar"]
	}
	b.StopTimer()
	return r
}

// benchRunResult is what one benchRun took: wall and CPU time, what reached SQLite, and the
// bytes the process wrote and read (all files: the state file, its write-ahead log).
type benchRunResult struct {
	elapsed, cpu  time.Duration
	sql           embedded.Stats
	written, read int64
}

func benchReport(b *testing.B, r benchRunResult) {
	n := float64(b.N)
	b.ReportMetric(n/r.elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(r.elapsed.Microseconds())/1000/n, "ms/deployment")
	if r.cpu > 0 {
		// CPU time of the whole process (every stage, SQLite, GC) per event: unlike the wall time,
		// it hardly depends on what else the machine is running.
		b.ReportMetric(float64(r.cpu.Microseconds())/1000/n, "cpu-ms/event")
	}
	// What reached SQLite per event, over every store of the process (embedded.Counters).
	b.ReportMetric(float64(r.sql.Statements())/n, "stmts/event")
	b.ReportMetric(float64(r.sql.Execs)/n, "writes/event")
	b.ReportMetric(float64(r.sql.Queries)/n, "queries/event")
	b.ReportMetric(float64(r.sql.WriteTxs)/n, "tx/event")
	b.ReportMetric(float64(r.sql.Savepoints)/n, "savepoints/event")
	b.ReportMetric(float64(r.sql.Prepares)/n, "prepares/event")
	// How long the file's write lock was held per event: the part of the work that no two
	// writers do at once, whatever the cores; events/s cannot exceed 1000 / lock-ms/event.
	b.ReportMetric(float64(r.sql.LockHeld.Microseconds())/1000/n, "lock-ms/event")
	if r.written > 0 {
		// Bytes written and read per event (the write-ahead log's frames, checkpoints).
		b.ReportMetric(float64(r.written)/1024/n, "KiB-written/event")
		b.ReportMetric(float64(r.read)/1024/n, "KiB-read/event")
	}
}

// logStatements prints the first n statements of a profile (the longest first) per event: time,
// runs and rows, and the text on one line. To stderr: go test keeps only the first lines of a
// benchmark's log.
func logStatements(b *testing.B, ts []embedded.StatementTime, n int) {
	per := float64(b.N)
	var total time.Duration
	for _, t := range ts {
		total += t.Time
	}
	var out strings.Builder
	fmt.Fprintf(&out, "%s, %d events: SQL time per event %.3f ms over %d texts (measured around each run and row; COMMIT is the driver's)\n",
		b.Name(), b.N, total.Seconds()*1000/per, len(ts))
	fmt.Fprintf(&out, "%9s %8s %8s  %s\n", "ms/event", "runs/ev", "rows/ev", "statement")
	for _, t := range ts[:min(n, len(ts))] {
		sql := strings.Join(strings.Fields(t.SQL), " ")
		if len(sql) > 140 {
			sql = sql[:140] + "..."
		}
		fmt.Fprintf(&out, "%9.3f %8.2f %8.2f  %s\n", t.Time.Seconds()*1000/per, float64(t.Runs)/per, float64(t.Rows)/per, sql)
	}
	fmt.Fprint(os.Stderr, out.String())
}

// processIO is this process's I/O counters so far (/proc/self/io: rchar and wchar count the
// bytes of every read and write call); nil where there is none.
func processIO() map[string]int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return nil
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); ok && err == nil {
			out[k] = n
		}
	}
	return out
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
