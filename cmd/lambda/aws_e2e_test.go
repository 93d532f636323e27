package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gremlingo "github.com/apache/tinkerpop/gremlin-go/v3/driver"
	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	awseb "github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	awsssm "github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go/middleware"

	"github.com/usekarma/karma/shared/awscount"
	"github.com/usekarma/karma/shared/dynamo"
	"github.com/usekarma/karma/shared/eventbridge"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
	"github.com/usekarma/karma/shared/lambda"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/sqs"
	"github.com/usekarma/karma/shared/terraform"
)

// TestAWSEndToEnd runs the production topology on the real local servers: a parameter is put
// into SSM (moto) by someone outside Karma and its Parameter Store Change event is put on the
// EventBridge bus (moto does not emit it by itself); a rule routes it to the ingest queue (SQS);
// each stage runs as the Lambda handler does (SQS batches -> lambda.SQSHandler), publishing to
// the bus; Terraform really runs; the runtime is published to SSM; the next wave follows; audit
// records land in DynamoDB Local and the lineage in Gremlin Server. Everything is asserted by
// querying those servers directly with the SDK and the Gremlin driver.
//
// Every request made to AWS on the way is counted (shared/awscount) and logged per deployment,
// priced at list prices (docs/performance.md, "AWS: requests and cost"): the functions' own
// (their AWS configuration and Gremlin client count), the event source mappings' (receive,
// delete) and the rules' deliveries to the queues, and one Lambda invocation per batch handed
// to a function.
func TestAWSEndToEnd(t *testing.T) { awsEndToEnd(t, false) }

// TestAWSEndToEndEveryMessageTwice is the same run with every SQS batch handed to its function
// twice before it is deleted (SQS delivers at least once): same final state, one deployment each.
func TestAWSEndToEndEveryMessageTwice(t *testing.T) { awsEndToEnd(t, true) }

func awsEndToEnd(t *testing.T, twice bool) {
	motoEP, ddbEP, gremlinEP := os.Getenv("KARMA_TEST_MOTO_ENDPOINT"), os.Getenv("KARMA_TEST_DYNAMODB"), os.Getenv("KARMA_TEST_GREMLIN")
	if motoEP == "" || ddbEP == "" || gremlinEP == "" {
		t.Skip("needs KARMA_TEST_MOTO_ENDPOINT, KARMA_TEST_DYNAMODB and KARMA_TEST_GREMLIN (make test starts the servers)")
	}
	tfPath, err := terraform.FindTerraform()
	if err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	prefix := fmt.Sprintf("e2e%06x", rand.Uint32()&0xffffff)
	opts := []func(*config.LoadOptions) error{config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		config.WithSharedConfigFiles([]string{}), config.WithSharedCredentialsFiles([]string{})}
	examples, _ := filepath.Abs(filepath.Join("..", "..", "examples"))

	// The functions' composition root, configured as terraform/ configures them, with the
	// servers' endpoints and test-unique names.
	origin := gittest.OriginFrom(t, "config.git", examples) // the config repository the functions fetch
	ddb, err := dynamo.NewClient(ctx, ddbEP, opts...)
	if err != nil {
		t.Fatal(err)
	}
	tables := dynamo.DefaultTableNames(prefix)
	if err := dynamo.CreateTables(ctx, ddb, tables); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dynamo.DeleteTables(context.Background(), ddb, tables) })
	t.Setenv("AWS_ENDPOINT_URL", motoEP)
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", ddbEP)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	vars := map[string]string{"KARMA_GIT_URL": origin.Bare, "KARMA_CACHE_DIR": t.TempDir(), "KARMA_WORK_DIR": t.TempDir(),
		"KARMA_TERRAFORM": tfPath, "KARMA_EVENT_BUS": prefix + "-bus", "KARMA_QUEUE_PREFIX": prefix + "-", "KARMA_PREFIX": "/" + prefix + "/iac",
		"KARMA_AUDIT_TABLE": tables.Audit, "KARMA_CHANGE_SET_TABLE": tables.ChangeSets, "KARMA_IDEMPOTENCY_TABLE": tables.Seen,
		"KARMA_NEPTUNE_ENDPOINT": gremlinEP, "KARMA_NEPTUNE_NAMESPACE": prefix, "KARMA_ENV": "prod", "KARMA_AUTO_APPROVE": "true"}
	count := awscount.New(awscount.Options{Capacity: true}) // the functions' requests
	esm := awscount.New(awscount.Options{})                 // the event source mappings' and the rules'
	logs := &logBytes{}                                     // what the functions log at info, as in Lambda
	a, err := newApp(env(vars), nil, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})), count)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })

	// Queues, bus and rules: the stages' rules from pipeline.Routes, plus Parameter Store events -> ingest.
	q, err := sqs.NewFromConfig(ctx, motoEP, sqs.Options{Prefix: prefix + "-"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	stages := []string{pipeline.StageIngest, pipeline.StageResolve, pipeline.StageGraphWrite, pipeline.StagePlan, pipeline.StageApply, pipeline.StageAudit}
	if err := q.EnsureQueues(ctx, stages, 5); err != nil {
		t.Fatal(err)
	}
	arn := func(name string) string {
		url, err := q.Client().GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(q.QueueName(name))})
		if err != nil {
			t.Fatal(err)
		}
		out, err := q.Client().GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: url.QueueUrl,
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
		if err != nil {
			t.Fatal(err)
		}
		return out.Attributes["QueueArn"]
	}
	eb, err := eventbridge.NewClient(ctx, motoEP, opts...)
	if err != nil {
		t.Fatal(err)
	}
	bus := prefix + "-bus"
	rules := eventbridge.Rules(bus, arn)
	rules = append(rules, eventbridge.Rule{Name: prefix + "-ssm-to-ingest", Bus: bus, Stage: "ingest",
		Pattern: `{"source":["aws.ssm"],"detail-type":["Parameter Store Change"]}`, Target: eventbridge.Target{ID: "ingest", ARN: arn("ingest")}})
	if err := eventbridge.EnsureRules(ctx, eb, rules); err != nil {
		t.Fatal(err)
	}
	pub, err := a.Publisher(ctx) // the functions' publisher (counted)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := a.Queue(ctx) // the functions' dead-letter sends (counted)
	if err != nil {
		t.Fatal(err)
	}
	// Lambda's event source mappings, played by serveQueue, receive and delete through their own
	// client, counted apart.
	mapped, err := sqs.NewFromConfig(ctx, motoEP, sqs.Options{Prefix: prefix + "-"},
		append(opts, config.WithAPIOptions([]func(*middleware.Stack) error{esm.Middleware}))...)
	if err != nil {
		t.Fatal(err)
	}
	received := &tally{n: map[string]int{}}
	var inflight atomic.Int64 // batches received and not yet settled (invoked, deleted or released)
	for _, name := range stages {
		if _, err := mapped.Depth(ctx, name); err != nil { // looks its URL up: a mapping knows its queue
			t.Fatal(err)
		}
	}

	// The account's state: the upstream runtimes the redeployed components interpolate.
	ssmc := awsssm.NewFromConfig(awsConfig(motoEP))
	store, err := a.Params(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{
		"/iac/route53-zone/main/runtime":     `{"zone_id":"Z1","zone_name":"example.com.","name_servers":["ns1"]}`,
		"/iac/lambda/handlers/runtime":       `{"function_arns":{},"function_versions":{},"role_arn":"arn:aws:iam::0:role/x"}`,
		"/iac/serverless-api/public/runtime": `{"api_domain":"old.example.com","api_endpoint":"https://old","api_id":"old"}`,
	} {
		if _, err := store.Put(ctx, params.PutInput{Name: prefixed(prefix, name), Value: v, Description: params.Provenance("seeded", v)}); err != nil {
			t.Fatal(err)
		}
	}
	// Build every stage as the Lambda does, and run each as SQS -> Lambda handler.
	var wg sync.WaitGroup
	runCtx, stopRun := context.WithCancel(ctx)
	defer func() { stopRun(); wg.Wait() }()
	for _, name := range stages {
		var h lambda.Handler
		if name == pipeline.StageIngest {
			// What KARMA_STAGE=ingest serves: Parameter Store events and triggers from the bus.
			if h, err = setupIngest(ctx, a, env(vars)); err != nil {
				t.Fatalf("stage %s: %v", name, err)
			}
		} else {
			st, err := a.Stage(ctx, name)
			if err != nil {
				t.Fatalf("stage %s: %v", name, err)
			}
			h = lambda.SQSHandler(st, pub, dead.(lambda.DeadLetterer), eventbridge.Unwrap)
		}
		src := mapping{q: mapped, name: name, arn: arn(name), batch: batchSizes[name], count: esm, received: received, inflight: &inflight}
		wg.Add(1)
		go func() { defer wg.Done(); serveQueue(runCtx, t, src, h, twice) }()
	}

	// Dave changes the zone's runtime outside Karma; the (real-shaped) event goes on the bus.
	// From here on, every request counts (the setup above does not).
	counted, mappedBefore, logsBefore, start := count.Snapshot(), esm.Snapshot(), logs.n.Load(), time.Now()
	zone := prefixed(prefix, "/iac/route53-zone/main/runtime")
	if _, err := ssmc.PutParameter(ctx, &awsssm.PutParameterInput{Name: aws.String(zone), Overwrite: aws.Bool(true), Type: "String",
		Value: aws.String(`{"zone_id":"Z2DELEGATED","zone_name":"example.com.","name_servers":["ns1"]}`)}); err != nil {
		t.Fatal(err)
	}
	detail, _ := json.Marshal(map[string]string{"operation": "Update", "name": zone, "type": "String", "description": ""})
	if _, err := eb.PutEvents(ctx, &awseb.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{EventBusName: aws.String(bus),
		Source: aws.String("aws.ssm"), DetailType: aws.String("Parameter Store Change"), Detail: aws.String(string(detail))}}}); err != nil {
		t.Fatal(err)
	}

	// Wait until serverless-site/www (second wave) has published its runtime.
	www := prefixed(prefix, "/iac/serverless-site/www/runtime")
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if _, err := ssmc.GetParameter(ctx, &awsssm.GetParameterInput{Name: aws.String(www)}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("serverless-site/www was never deployed (see the stage logs above)")
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Let the last audit messages land.
	waitFor(t, 30*time.Second, func() bool { return auditCount(t, ctx, ddb, tables.Audit, "prod/serverless-site/www") >= 4 })
	// ... and every message Karma published reach audit (every message goes there), and every
	// batch received be settled (its invocation counted): then the run is over.
	waitFor(t, 30*time.Second, func() bool {
		return inflight.Load() == 0 &&
			float64(received.get("audit")) >= count.Snapshot()[awscount.Key{Service: awscount.EventBridge, Operation: awscount.PutEventsEntries}]
	})
	run := count.Snapshot().Sub(counted).Plus(esm.Snapshot().Sub(mappedBefore))
	run[awscount.Key{Service: awscount.Logs, Operation: awscount.LogBytes}] = float64(logs.n.Load() - logsBefore)
	reportRequests(t, run, time.Since(start), twice)

	// SSM: the first wave's runtime too.
	if _, err := ssmc.GetParameter(ctx, &awsssm.GetParameterInput{Name: aws.String(prefixed(prefix, "/iac/serverless-api/public/runtime"))}); err != nil {
		t.Fatal(err)
	}
	// DynamoDB, queried directly: each deployment's four messages, by component.
	for _, c := range []string{"prod/serverless-api/public", "prod/serverless-site/www"} {
		if n := auditCount(t, ctx, ddb, tables.Audit, c); n != 4 {
			t.Errorf("audit records for %s in DynamoDB = %d, want 4 (scheduled, recorded, planned, applied)", c, n)
		}
	}
	// Gremlin, queried directly: www's deployment was caused by public's, caused by the parameter version.
	conn, err := gremlingo.NewDriverRemoteConnection(gremlinEP)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	g := gremlingo.Traversal_().WithRemote(conn)
	res, err := g.V().HasLabel("deployment").Has("ns", prefix).Has("component", "prod/serverless-site/www").
		Out("caused_by").Has("component", "prod/serverless-api/public").Out("caused_by").Id().ToList()
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || !strings.Contains(fmt.Sprint(res[0].GetInterface()), zone+"@") {
		var ids []any
		for _, r := range res {
			ids = append(ids, r.GetInterface())
		}
		t.Errorf("lineage www <- public <- root: %v, want the parameter version of %s", ids, zone)
	}
	// No dead letters anywhere.
	for _, s := range stages {
		if dead, err := q.ListDead(ctx, s); err != nil || len(dead) != 0 {
			t.Errorf("dead letters in %s: %v %v", s, dead, err)
		}
	}
	// ... and /metrics, read from SQS's counts, says so: every stage queue drained, no dead letters.
	rec := httptest.NewRecorder()
	a.Metrics(ctx).Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, s := range stages {
		for _, want := range []string{`karma_queue_depth{queue="` + s + `"} 0`, `karma_queue_in_flight{queue="` + s + `"} 0`, `karma_dead_letters{queue="` + s + `"} 0`} {
			if !strings.Contains(rec.Body.String(), want+"\n") {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	}
	if !twice {
		reportScheduled(t, ctx, vars) // what still runs when nothing is deployed
	}
}

func prefixed(prefix, name string) string { return "/" + prefix + name }

// batchSizes are the event source mappings' batch sizes, as terraform/ sets them (main.tf,
// local.sizes): one Terraform run per invocation of plan and apply.
var batchSizes = map[string]int{pipeline.StageIngest: 10, pipeline.StageResolve: 10, pipeline.StageGraphWrite: 10,
	pipeline.StagePlan: 1, pipeline.StageApply: 1, pipeline.StageAudit: 10}

// mapping is a Lambda event source mapping: the queue of function name, read through q, with
// its requests, the function's invocations and how long they ran counted into count, and the
// messages it received (the first time) into received; inflight counts the batches it holds.
type mapping struct {
	q        *sqs.Queue
	name     string
	arn      string
	batch    int
	count    *awscount.Counter
	received *tally
	inflight *atomic.Int64
}

// serveQueue is the Lambda event source mapping: receive a batch, invoke, delete what succeeded.
// Each message received for the first time was sent to the queue by an EventBridge rule, which
// is counted as that rule's SendMessage (moto's rules send without a client to count).
func serveQueue(ctx context.Context, t *testing.T, src mapping, h lambda.Handler, twice bool) {
	q, name, arn := src.q, src.name, src.arn
	for ctx.Err() == nil {
		ds, err := q.Receive(ctx, name, src.batch, 60*time.Second, time.Second)
		if err != nil || len(ds) == 0 {
			continue
		}
		// Held until settled, and counted before the messages are, so that a run seen over (every
		// message received) is not one whose last invocation is still uncounted.
		src.inflight.Add(1)
		src.count.Add(awscount.SQS, batchesReceived, 1)
		ev := events.SQSEvent{}
		for _, d := range ds {
			ev.Records = append(ev.Records, events.SQSMessage{MessageId: d.MessageID, ReceiptHandle: d.ReceiptHandle, Body: string(d.Body), EventSourceARN: arn})
			if d.ReceiveCount <= 1 {
				src.count.Add(awscount.SQS, awscount.DeliveredByRule, 1)
				src.received.add(name, 1)
			}
		}
		invoke := func() (events.SQSEventResponse, error) {
			start := time.Now()
			defer func() {
				src.count.Add(awscount.Lambda, awscount.Invoke(name), 1)
				src.count.Add(awscount.Lambda, awscount.Seconds(name), time.Since(start).Seconds())
			}()
			return h(ctx, ev)
		}
		resp, err := invoke()
		if twice && err == nil && len(resp.BatchItemFailures) == 0 {
			resp, err = invoke() // the same batch delivered again
		}
		failed := map[string]bool{}
		for _, f := range resp.BatchItemFailures {
			failed[f.ItemIdentifier] = true
		}
		for _, d := range ds {
			if err != nil || failed[d.MessageID] {
				_ = q.ChangeVisibility(ctx, name, d.ReceiptHandle, time.Second)
				continue
			}
			_ = q.Delete(ctx, name, d.ReceiptHandle)
		}
		src.inflight.Add(-1)
	}
}

func auditCount(t *testing.T, ctx context.Context, ddb *awsdynamodb.Client, table, component string) int {
	t.Helper()
	out, err := ddb.Query(ctx, &awsdynamodb.QueryInput{TableName: aws.String(table), IndexName: aws.String("by-component"),
		KeyConditionExpression:    aws.String("component = :c"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":c": &ddbtypes.AttributeValueMemberS{Value: component}}})
	if err != nil {
		t.Fatal(err)
	}
	return int(out.Count)
}

func waitFor(t *testing.T, d time.Duration, ok func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !ok() {
		if time.Now().After(end) {
			t.Fatal("condition not reached")
		}
		time.Sleep(300 * time.Millisecond)
	}
}
