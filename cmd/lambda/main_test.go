package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/eventbridge"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/sqs"
	"github.com/usekarma/karma/shared/terraform"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func awsConfig(endpoint string) aws.Config {
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	if endpoint != "" {
		cfg.BaseEndpoint = aws.String(endpoint)
	}
	return cfg
}

func TestSetupErrors(t *testing.T) {
	builders := stageBuilders(&backends{}) // nothing wired
	for _, tc := range []struct {
		name string
		vars map[string]string
		want string
	}{
		{"no stage", map[string]string{"KARMA_EVENT_BUS": "b"}, `KARMA_STAGE="": want one of apply, audit, graph-write, ingest, plan, resolve`},
		{"unknown stage", map[string]string{"KARMA_STAGE": "deploy", "KARMA_EVENT_BUS": "b"}, `KARMA_STAGE="deploy"`},
		{"no bus", map[string]string{"KARMA_STAGE": "audit"}, "KARMA_EVENT_BUS is not set"},
		{"audit without its log", map[string]string{"KARMA_STAGE": "audit", "KARMA_EVENT_BUS": "b"},
			"stage audit cannot start: backend not wired into this binary yet: the audit log (DynamoDB)"},
		{"graph-write names every missing backend", map[string]string{"KARMA_STAGE": "graph-write", "KARMA_EVENT_BUS": "b"},
			"the config repository (KARMA_GIT_URL), the graph store (Neptune), the lineage store (Neptune), idempotency records (DynamoDB)"},
		{"ingest", map[string]string{"KARMA_STAGE": "ingest", "KARMA_EVENT_BUS": "b"}, "not a pipeline handler"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := setup(t.Context(), awsConfig(""), env(tc.vars), builders)
			if err == nil || !strings.Contains(err.Error(), tc.want) || h != nil {
				t.Errorf("setup = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// The wiring (newBackends): every SQS stage either starts or names the setting it lacks.
func TestTodaysWiring(t *testing.T) {
	b := newBackends(awsConfig("http://127.0.0.1:1"), env(map[string]string{"KARMA_MODULES_DIR": t.TempDir()}), nil)
	for name, build := range stageBuilders(b) {
		st, err := build(t.Context())
		switch {
		case err == nil && st.Name != name:
			t.Errorf("stage %s built as %q", name, st.Name)
		case err != nil && name != pipeline.StageIngest && !strings.Contains(err.Error(), "is not set"):
			t.Errorf("stage %s: %v; want it built or an error naming the missing backend", name, err)
		case err != nil:
			t.Logf("stage %s: %v", name, err)
		}
	}
}

// Once the backends exist, every SQS stage builds: here with the embedded (SQLite) stores, which
// implement the same interfaces as the DynamoDB and Neptune adapters.
func TestEveryStageBuildsOnceItsBackendsExist(t *testing.T) {
	ctx := t.Context()
	db, err := embedded.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b := newBackends(awsConfig("http://127.0.0.1:1"), env(map[string]string{"KARMA_GIT_URL": t.TempDir(), "KARMA_CACHE_DIR": t.TempDir()}), nil)
	b.AuditLog = func(ctx context.Context) (audit.Log, error) { return embedded.NewAuditLog(ctx, db) }
	b.ChangeSets = func(ctx context.Context) (changeset.Store, error) { return embedded.NewChangeSets(ctx, db) }
	b.Seen = func(ctx context.Context) (pipeline.Seen, error) { return embedded.NewSeen(ctx, db) }
	b.GraphStore = func(ctx context.Context) (graph.Store, error) { return embedded.NewGraphStore(ctx, db) }
	b.Lineage = func(ctx context.Context) (lineage.Store, error) { return embedded.NewLineage(ctx, db) }
	b.Terraform = func(context.Context) (terraform.Runner, error) { return terraform.NewTFExec("/bin/false"), nil }
	for name, build := range stageBuilders(b) {
		st, err := build(ctx)
		if name == pipeline.StageIngest {
			continue
		}
		if err != nil || st.Name != name || st.Handler == nil {
			t.Errorf("stage %s: %+v, %v", name, st, err)
		}
	}
	// A backend that fails to open fails its stage, naming both.
	b.Seen = func(context.Context) (pipeline.Seen, error) { return nil, errors.New("table missing") }
	if _, err := stageBuilders(b)[pipeline.StagePlan](ctx); err == nil || !strings.Contains(err.Error(), "stage plan: table missing") {
		t.Errorf("plan with a failing Seen: %v", err)
	}
}

// The whole function on moto: records of the plan queue are handled, outputs reach the audit
// queue through the bus and its rule, and a poison record lands in the plan queue's DLQ.
func TestHandlerOnMoto(t *testing.T) {
	ep := os.Getenv("KARMA_TEST_MOTO_ENDPOINT")
	if ep == "" {
		t.Skip("KARMA_TEST_MOTO_ENDPOINT is not set: start moto (`scripts/peers.sh start`) and set it to http://127.0.0.1:15000")
	}
	ctx := t.Context()
	prefix := fmt.Sprintf("kfn%06x-", rand.Uint32()&0xffffff)
	q, err := sqs.NewFromConfig(ctx, ep, sqs.Options{Prefix: prefix},
		config.WithRegion("us-east-1"), config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		config.WithSharedConfigFiles([]string{}), config.WithSharedCredentialsFiles([]string{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.EnsureQueues(ctx, []string{pipeline.StagePlan, pipeline.StageAudit}, 5); err != nil {
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
	bus := prefix + "bus"
	cfg := awsConfig(ep)
	eb, err := eventbridge.NewClient(ctx, ep, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		config.WithSharedConfigFiles([]string{}), config.WithSharedCredentialsFiles([]string{}))
	if err != nil {
		t.Fatal(err)
	}
	var rules []eventbridge.Rule
	for _, r := range eventbridge.Rules(bus, func(stage string) string {
		if stage != pipeline.StageAudit {
			return "" // only the audit rule is created
		}
		return arn(stage)
	}) {
		if r.Stage == pipeline.StageAudit {
			rules = append(rules, r)
		}
	}
	if err := eventbridge.EnsureRules(ctx, eb, rules); err != nil {
		t.Fatal(err)
	}

	planStage := func(context.Context) (pipeline.Stage, error) {
		return pipeline.Stage{Name: pipeline.StagePlan, Handler: func(_ context.Context, in message.Envelope) ([]message.Envelope, error) {
			if in.IdempotencyKey == "poison" {
				return nil, pipeline.Permanent(errors.New("no such component"))
			}
			return []message.Envelope{in.MustDerive(message.TypeDeploymentPlanned, "planned-"+in.IdempotencyKey, struct{}{})}, nil
		}}, nil
	}
	h, err := setup(ctx, cfg, env(map[string]string{"KARMA_STAGE": "plan", "KARMA_EVENT_BUS": bus, "KARMA_QUEUE_PREFIX": prefix}),
		map[string]func(context.Context) (pipeline.Stage, error){pipeline.StagePlan: planStage})
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	record := func(id, key string) events.SQSMessage {
		e, err := message.New(message.TypeDeploymentRecorded, "dev", message.Actor{Kind: "cli", Name: "t"}, key, struct{}{})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := message.Encode(e)
		return events.SQSMessage{MessageId: id, Body: string(b), EventSourceARN: arn(pipeline.StagePlan), EventSource: "aws:sqs",
			Attributes: map[string]string{"ApproximateReceiveCount": "1"}}
	}
	resp, err := h(ctx, events.SQSEvent{Records: []events.SQSMessage{record("r1", "ok"), record("r2", "poison")}})
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("handler: %+v, %v", resp, err)
	}
	dead, err := q.ListDead(ctx, pipeline.StagePlan)
	if err != nil || len(dead) != 1 || dead[0].MessageID != "r2" || dead[0].Reason != "no such component" {
		t.Errorf("plan DLQ: %+v, %v", dead, err)
	}
	ds, err := q.Receive(ctx, pipeline.StageAudit, 10, 30*time.Second, 2*time.Second)
	if err != nil || len(ds) != 1 {
		t.Fatalf("audit queue: %d messages, %v", len(ds), err)
	}
	body, err := eventbridge.Unwrap(ds[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := message.Parse(body); err != nil || out.IdempotencyKey != "planned-ok" {
		t.Errorf("audit got %+v, %v", out, err)
	}
}
