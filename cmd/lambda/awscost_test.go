package main

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/usekarma/karma/shared/awscount"
	"github.com/usekarma/karma/shared/pipeline"
)

// The counting side of the AWS end-to-end test (aws_e2e_test.go): what one deployment costs in
// requests, reported and priced (docs/performance.md, "AWS: requests and cost").

// e2eDeployments is how many deployments the end-to-end run makes: serverless-api/public and
// serverless-site/www (it asserts both, with their four audit records each).
const e2eDeployments = 2

// platformLogBytes is what Lambda logs per invocation on its own (START, END and REPORT lines,
// about 100 bytes each with the request id): an assumption, stated in docs/performance.md.
const platformLogBytes = 300

// batchesReceived counts the batches the emulated mappings received (a ReceiveMessage that
// returned messages), each to be handed to its function.
const batchesReceived = "batches received"

// reportRequests logs run's requests per deployment and what 1,000 deployments cost at list
// prices, and checks what must hold of any run: every service of the flow was counted, every
// function invoked, one invocation per batch received.
func reportRequests(t *testing.T, run awscount.Counts, took time.Duration, twice bool) {
	t.Helper()
	empty := awscount.Key{Service: awscount.SQS, Operation: awscount.EmptyReceive}
	polls := run[empty]
	delete(run, empty) // the emulated mappings poll every second: what polling costs is the idle month's
	received := awscount.Key{Service: awscount.SQS, Operation: batchesReceived}
	batches := run[received] // not ReceiveMessage requests: a retried attempt is one more of those
	delete(run, received)
	per := run.Per(e2eDeployments)
	t.Logf("AWS requests per deployment (%d deployments in %s; every batch handed to its function %s; %s empty receives of the emulated mappings left out):\n%s",
		e2eDeployments, took.Round(time.Millisecond), map[bool]string{false: "once", true: "twice"}[twice], awscount.Format(polls), per.Table())
	bill := awscount.Usage(per, 1000, awscount.Memory, awscount.USEast1, platformLogBytes)
	t.Logf("1,000 such deployments at us-east-1 list prices (largest: %s %s):\n%s", bill.Largest().Service, bill.Largest().Item, bill.Table())

	for _, s := range []string{awscount.SQS, awscount.Lambda, awscount.DynamoDB, awscount.EventBridge, awscount.SSM, awscount.Neptune} {
		if run.Service(s) == 0 {
			t.Errorf("no %s request counted", s)
		}
	}
	var invocations float64
	for _, fn := range append([]string{pipeline.StageIngest}, pipeline.StageResolve, pipeline.StageGraphWrite, pipeline.StagePlan, pipeline.StageApply, pipeline.StageAudit) {
		n := run[awscount.Key{Service: awscount.Lambda, Operation: awscount.Invoke(fn)}]
		if n == 0 {
			t.Errorf("function %s was never invoked", fn)
		}
		if s := run[awscount.Key{Service: awscount.Lambda, Operation: awscount.Seconds(fn)}]; n > 0 && s <= 0 {
			t.Errorf("function %s: %v invocations that took %v s", fn, n, s)
		}
		invocations += n
	}
	if invocations < batches || (!twice && invocations != batches) || invocations > 2*batches {
		t.Errorf("%v invocations for %v batches received (twice: %v)", invocations, batches, twice)
	}
	events := run[awscount.Key{Service: awscount.EventBridge, Operation: awscount.PutEventsEntries}]
	if puts := run[awscount.Key{Service: awscount.EventBridge, Operation: "PutEvents"}]; events < puts {
		t.Errorf("%v events in %v PutEvents requests", events, puts)
	}
	if delivered := run[awscount.Key{Service: awscount.SQS, Operation: awscount.DeliveredByRule}]; delivered < events {
		t.Errorf("%v messages delivered to the queues, fewer than the %v events published (each goes to audit at least)", delivered, events)
	}
	if run[awscount.Key{Service: awscount.DynamoDB, Operation: awscount.WriteUnits}] == 0 {
		t.Error("DynamoDB reported no write units: the audit records and change sets were written")
	}
}

// tally counts messages by queue.
type tally struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *tally) add(name string, n int) {
	c.mu.Lock()
	c.n[name] += n
	c.mu.Unlock()
}

func (c *tally) get(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[name]
}

// logBytes counts what the functions log (as CloudWatch Logs would ingest it) and shows the
// warnings and errors on stderr.
type logBytes struct{ n atomic.Int64 }

func (w *logBytes) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	if bytes.Contains(p, []byte(`"level":"WARN"`)) || bytes.Contains(p, []byte(`"level":"ERROR"`)) {
		_, _ = os.Stderr.Write(p)
	}
	return len(p), nil
}

// reportScheduled invokes the scheduled functions that run in an idle month (promote,
// reconcile) as their schedules do, each twice on its own App (a cold and a warm invocation),
// and logs what the warm one asked of AWS and how long it took: the idle month of
// docs/performance.md prices them.
func reportScheduled(t *testing.T, ctx context.Context, vars map[string]string) {
	t.Helper()
	for _, fn := range []string{stagePromote, stageReconcile} {
		v := maps.Clone(vars)
		v["KARMA_STAGE"] = fn
		count := awscount.New(awscount.Options{Capacity: true})
		a, err := newApp(env(v), nil, slog.New(slog.DiscardHandler), count)
		if err != nil {
			t.Fatal(err)
		}
		h, err := lambdaHandler(ctx, a, env(v))
		if err != nil {
			t.Fatalf("%s: %v", fn, err)
		}
		handler := h.(func(context.Context, events.EventBridgeEvent) error)
		if err := handler(ctx, events.EventBridgeEvent{}); err != nil {
			t.Fatalf("%s, cold: %v", fn, err)
		}
		before, start := count.Snapshot(), time.Now()
		if err := handler(ctx, events.EventBridgeEvent{}); err != nil {
			t.Fatalf("%s, warm: %v", fn, err)
		}
		took := time.Since(start)
		warm := count.Snapshot().Sub(before)
		a.Close()
		t.Logf("one warm invocation of %s, idle, took %s:\n%s", fn, took.Round(time.Millisecond), warm.Table())
		// Each asks its store what is due: the change sets (promote), Parameter Store (reconcile).
		if s := map[string]string{stagePromote: awscount.DynamoDB, stageReconcile: awscount.SSM}[fn]; warm.Service(s) == 0 {
			t.Errorf("%s made no %s request", fn, s)
		}
	}
}
