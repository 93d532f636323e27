package lambda_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/usekarma/karma/shared/eventbridge"
	"github.com/usekarma/karma/shared/lambda"
	"github.com/usekarma/karma/shared/queue"
	"github.com/usekarma/karma/shared/sqs"
)

const endpointEnv = "KARMA_TEST_MOTO_ENDPOINT"

// The function dead-letters a record's last failure with its reason at the queue's own limit.
var _ lambda.MaxReceiver = (*sqs.Queue)(nil)

// With the real DeadLetterer (*sqs.Queue) on moto: the poison record lands in the DLQ of the
// queue its eventSourceARN names, with the reason; ListDead shows it.
func TestPoisonReachesTheQueuesDLQ(t *testing.T) {
	ep := os.Getenv(endpointEnv)
	if ep == "" {
		t.Skipf("%s is not set: start moto (`scripts/peers.sh start`) and set %s=http://127.0.0.1:15000", endpointEnv, endpointEnv)
	}
	ctx := t.Context()
	q, err := sqs.NewFromConfig(ctx, ep, sqs.Options{Prefix: fmt.Sprintf("kl%06x-", rand.Uint32()&0xffffff)},
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		config.WithSharedConfigFiles([]string{}), config.WithSharedCredentialsFiles([]string{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"plan", "apply.fifo"} {
		if err := q.EnsureQueues(ctx, []string{name}, 5); err != nil {
			t.Fatal(err)
		}
		url, err := q.Client().GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(q.QueueName(name))})
		if err != nil {
			t.Fatal(err)
		}
		attrs, err := q.Client().GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: url.QueueUrl,
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
		if err != nil {
			t.Fatal(err)
		}
		arn, group := attrs.Attributes["QueueArn"], ""
		if n, err := q.MaxReceives(ctx, arn); err != nil || n != 5 {
			t.Errorf("%s: MaxReceives = %d, %v; want the RedrivePolicy's 5", name, n, err)
		}
		if strings.HasSuffix(name, ".fifo") {
			group = "dev/vpc/core"
		}
		var mu sync.Mutex
		var calls []string
		h := lambda.SQSHandler(stage(&calls, &mu), &publisher{}, q, eventbridge.Unwrap)
		poison := body(t, "poison", true)
		resp, err := h(ctx, events.SQSEvent{Records: []events.SQSMessage{
			rec("m-poison", poison, arn, group),
			rec("m-ok", body(t, "ok", true), arn, group),
		}})
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("%s: response %+v, %v", name, resp, err)
		}
		dead := listDeadEventually(t, q, name, 1)
		if len(dead) != 1 || dead[0].MessageID != "m-poison" || dead[0].Queue != name || string(dead[0].Body) != poison ||
			!strings.Contains(dead[0].Reason, "payload does not match its type") || dead[0].ReceiveCount != 1 {
			t.Errorf("%s: dead letters %+v", name, dead)
		}
	}
}

// listDeadEventually lists name's dead letters until there are want of them or 10 s passed: on a
// loaded machine moto's receive (long polling included) may answer with fewer messages than the
// queue holds, as SQS itself may.
func listDeadEventually(t *testing.T, q *sqs.Queue, name string, want int) []queue.DeadLetter {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		dead, err := q.ListDead(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		if len(dead) >= want || time.Now().After(deadline) {
			return dead
		}
		time.Sleep(200 * time.Millisecond)
	}
}
