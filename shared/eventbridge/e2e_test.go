package eventbridge_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awseb "github.com/aws/aws-sdk-go-v2/service/eventbridge"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/usekarma/karma/shared/eventbridge"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/sqs"
)

const endpointEnv = "KARMA_TEST_MOTO_ENDPOINT"

// moto returns EventBridge and SQS clients on the moto server, and a prefix unique to the test.
func moto(t *testing.T) (*awseb.Client, *sqs.Queue, string) {
	t.Helper()
	ep := os.Getenv(endpointEnv)
	if ep == "" {
		t.Skipf("%s is not set: start moto (`scripts/peers.sh start`, or `moto_server -H 127.0.0.1 -p 15000` "+
			"from pip install 'moto[server]==5.2.5') and set %s=http://127.0.0.1:15000 to run against it", endpointEnv, endpointEnv)
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}),
	}
	eb, err := eventbridge.NewClient(t.Context(), ep, opts...)
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("keb%06x-", rand.Uint32()&0xffffff)
	q, err := sqs.NewFromConfig(t.Context(), ep, sqs.Options{Prefix: prefix}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return eb, q, prefix
}

func queueARN(t *testing.T, q *sqs.Queue, name string) string {
	t.Helper()
	url, err := q.Client().GetQueueUrl(t.Context(), &awssqs.GetQueueUrlInput{QueueName: aws.String(q.QueueName(name))})
	if err != nil {
		t.Fatal(err)
	}
	out, err := q.Client().GetQueueAttributes(t.Context(), &awssqs.GetQueueAttributesInput{QueueUrl: url.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Attributes["QueueArn"]
}

// Publisher -> bus -> rules -> SQS, on moto: each stage queue gets exactly the types routed to
// it, the audit queue all of them, and Unwrap recovers every envelope from what EventBridge
// delivered.
func TestEndToEndRouting(t *testing.T) {
	t.Parallel()
	eb, q, prefix := moto(t)
	ctx := t.Context()
	stages := []string{pipeline.StageIngest, pipeline.StageResolve, pipeline.StageGraphWrite, pipeline.StagePlan, pipeline.StageApply, pipeline.StageAudit}
	if err := q.EnsureQueues(ctx, stages, 5); err != nil {
		t.Fatal(err)
	}
	bus := prefix + "bus"
	rules := eventbridge.Rules(bus, func(stage string) string { return queueARN(t, q, stage) })
	if err := eventbridge.EnsureRules(ctx, eb, rules); err != nil {
		t.Fatalf("EnsureRules: %v", err)
	}
	if err := eventbridge.EnsureRules(ctx, eb, rules); err != nil { // idempotent
		t.Fatalf("EnsureRules again: %v", err)
	}

	msgs := envelopes(t, 25, 10)
	pub := eventbridge.NewPublisher(eb, bus, eventbridge.PublisherOptions{})
	if err := pub.Publish(ctx, msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	for _, stage := range stages {
		var want []string
		for _, m := range msgs {
			if slices.Contains(pipeline.Destinations(m.Type), stage) {
				want = append(want, m.ID)
			}
		}
		got := drain(t, q, stage, len(want))
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("queue %s received %d messages %v\nwant %d %v", stage, len(got), got, len(want), want)
		}
		if stage == pipeline.StageAudit && len(got) != 25 {
			t.Errorf("audit received %d messages, want all 25", len(got))
		}
	}
}

// drain receives queue name until n messages came (and a little longer, to catch extras), and
// returns their envelope ids, sorted.
func drain(t *testing.T, q *sqs.Queue, name string, n int) []string {
	t.Helper()
	var ids []string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		wait := time.Second
		if len(ids) >= n {
			wait = 0 // one more short look for extras
		}
		ds, err := q.Receive(t.Context(), name, 10, 30*time.Second, wait)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			body, err := eventbridge.Unwrap(d.Body)
			if err != nil {
				t.Fatalf("Unwrap(%s): %v", d.Body, err)
			}
			env, err := message.Parse(body)
			if err != nil {
				t.Fatalf("Parse: %v\n%s", err, body)
			}
			// What arrived is EventBridge's event, not a raw envelope.
			if ev, err := eventbridge.ParseEvent(d.Body); err != nil || ev.Source != "karma" || ev.DetailType != env.Type || ev.ID == "" {
				t.Errorf("queue %s body is not the EventBridge event of %s: %+v, %v", name, env.Type, ev, err)
			}
			ids = append(ids, env.ID)
			if err := q.Delete(t.Context(), name, d.ReceiptHandle); err != nil {
				t.Fatal(err)
			}
		}
		if len(ds) == 0 && len(ids) >= n {
			break
		}
	}
	slices.Sort(ids)
	return ids
}

// A FIFO queue behind EventBridge gets the target's fixed group (EventBridge cannot take one
// from the event); moto delivers it because EnsureQueues enables content-based deduplication.
func TestFIFOTargetHasFixedGroup(t *testing.T) {
	t.Parallel()
	eb, q, prefix := moto(t)
	ctx := t.Context()
	const name = pipeline.StagePlan + ".fifo"
	if err := q.EnsureQueues(ctx, []string{name}, 5); err != nil {
		t.Fatal(err)
	}
	bus := prefix + "fifo-bus"
	var rules []eventbridge.Rule
	for _, r := range eventbridge.Rules(bus, func(string) string { return queueARN(t, q, name) }) {
		if r.Stage == pipeline.StagePlan {
			rules = append(rules, r)
		}
	}
	if len(rules) != 1 || rules[0].Target.MessageGroupID != "karma-plan" {
		t.Fatalf("plan rule = %+v", rules)
	}
	if err := eventbridge.EnsureRules(ctx, eb, rules); err != nil {
		t.Fatal(err)
	}
	msgs := envelopes(t, 9, 10) // one of each type; only deployment.recorded goes to plan
	if err := eventbridge.NewPublisher(eb, bus, eventbridge.PublisherOptions{}).Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	url, err := q.Client().GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(q.QueueName(name))})
	if err != nil {
		t.Fatal(err)
	}
	out, err := q.Client().ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: url.QueueUrl, MaxNumberOfMessages: 10,
		WaitTimeSeconds: 1, MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameMessageGroupId}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != 1 {
		t.Fatalf("FIFO plan queue got %d messages, want 1", len(out.Messages))
	}
	m := out.Messages[0]
	if g := m.Attributes["MessageGroupId"]; g != "karma-plan" {
		t.Errorf("MessageGroupId = %q, want karma-plan", g)
	}
	body, err := eventbridge.Unwrap([]byte(aws.ToString(m.Body)))
	if err != nil {
		t.Fatal(err)
	}
	if env, err := message.Parse(body); err != nil || env.Type != message.TypeDeploymentRecorded {
		t.Errorf("FIFO plan queue got %+v, %v", env, err)
	}
}
