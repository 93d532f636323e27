package sqs_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/queue"
	"github.com/usekarma/karma/shared/queue/queuetest"
	"github.com/usekarma/karma/shared/sqs"
)

// endpointEnv names a moto server to run against, e.g. KARMA_TEST_MOTO_ENDPOINT=http://127.0.0.1:15000
// after `scripts/peers.sh start`.
const endpointEnv = "KARMA_TEST_MOTO_ENDPOINT"

const maxReceives = 3

func endpoint(t *testing.T) string {
	t.Helper()
	e := os.Getenv(endpointEnv)
	if e == "" {
		t.Skipf("%s is not set: start moto (`scripts/peers.sh start`, or `moto_server -H 127.0.0.1 -p 15000` "+
			"from pip install 'moto[server]==5.2.5') and set %s=http://127.0.0.1:15000 to run the SQS queue against it",
			endpointEnv, endpointEnv)
	}
	return e
}

// newQueue is a Queue on moto whose names are prefixed uniquely for this test.
func newQueue(t *testing.T, opts sqs.Options) *sqs.Queue {
	t.Helper()
	ep := endpoint(t)
	if opts.Prefix == "" {
		opts.Prefix = fmt.Sprintf("kt%06x-", rand.Uint32()&0xffffff)
	}
	q, err := sqs.NewFromConfig(t.Context(), ep, opts,
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}),
	)
	if err != nil {
		t.Fatalf("NewFromConfig: %v", err)
	}
	return q
}

func TestConformance(t *testing.T) {
	t.Parallel()
	endpoint(t)
	queuetest.Run(t, func(t *testing.T) (queue.Queue, queue.DeadLetters, int) {
		q := newQueue(t, sqs.Options{CreateMissing: true, MaxReceives: maxReceives})
		return q, q, maxReceives
	})
}

// What moto does by itself, which the Queue's receipt bookkeeping covers (see the package doc):
// SQS accepts a Delete with a superseded receipt and a second Delete of a deleted message.
func TestMotoAcceptsStaleDeletes(t *testing.T) {
	t.Parallel()
	q := newQueue(t, sqs.Options{CreateMissing: true})
	ctx, name := t.Context(), "stale"
	if err := q.Send(ctx, name, queue.Message{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	d1 := receiveOne(t, q, name, 30*time.Second)
	if err := q.ChangeVisibility(ctx, name, d1.ReceiptHandle, 0); err != nil {
		t.Fatal(err)
	}
	d2 := receiveOne(t, q, name, 30*time.Second)
	raw := q.Client()
	url := queueURL(t, q, name)
	// Raw SQS: the superseded receipt deletes the message.
	if _, err := raw.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: &d1.ReceiptHandle}); err != nil {
		t.Fatalf("raw DeleteMessage with a superseded receipt: %v (moto 5.2.5 accepted it)", err)
	}
	if _, err := raw.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: &d2.ReceiptHandle}); err != nil {
		t.Fatalf("raw DeleteMessage of a deleted message: %v (moto 5.2.5 accepted it)", err)
	}
	// The Queue refuses both: it saw d1 superseded, and d2 is not known to be used up yet, but
	// a second Delete through it is.
	if err := q.Delete(ctx, name, d1.ReceiptHandle); !errors.Is(err, queue.ErrStaleReceipt) {
		t.Errorf("Delete(superseded) = %v, want ErrStaleReceipt", err)
	}
	if err := q.Delete(ctx, name, d2.ReceiptHandle); err != nil {
		t.Errorf("Delete(d2) = %v (SQS accepts a delete of a deleted message)", err)
	}
	if err := q.Delete(ctx, name, d2.ReceiptHandle); !errors.Is(err, queue.ErrStaleReceipt) {
		t.Errorf("second Delete(d2) = %v, want ErrStaleReceipt", err)
	}
	// A receipt this Queue never saw is up to SQS: garbage is refused.
	if err := q.Delete(ctx, name, "not-a-receipt"); !errors.Is(err, queue.ErrStaleReceipt) {
		t.Errorf("Delete(garbage) = %v, want ErrStaleReceipt", err)
	}
}

// Visibility is rounded up to whole seconds: 300 ms hides for about a second.
func TestVisibilityRoundsUpToSeconds(t *testing.T) {
	t.Parallel()
	q := newQueue(t, sqs.Options{CreateMissing: true})
	ctx, name := t.Context(), "vis"
	if err := q.Send(ctx, name, queue.Message{Body: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d := receiveOne(t, q, name, 300*time.Millisecond)
	// Long polls (as receiveOne's), for 10 s after the receive: under a full test run moto's
	// short polls may answer empty while the message is visible, as SQS's may, and its answers
	// are slow.
	var back time.Duration
	for received := time.Now(); time.Since(received) < 10*time.Second; {
		ds, err := q.Receive(ctx, name, 1, 30*time.Second, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 1 {
			back = time.Since(start)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	switch {
	case back == 0:
		t.Errorf("a 300 ms visibility hid the message for more than 10 s, want about 1 s")
	case back < 900*time.Millisecond || back > 5*time.Second:
		t.Errorf("a 300 ms visibility hid the message for %v, want about 1 s", back)
	}
	_ = d
}

func TestSendManyInBatches(t *testing.T) {
	t.Parallel()
	q := newQueue(t, sqs.Options{CreateMissing: true})
	ctx, name := t.Context(), "big"
	// 12 bodies of 100 KiB: batches are cut by size (two per call) as well as by count.
	var msgs []queue.Message
	for i := range 12 {
		msgs = append(msgs, queue.Message{Body: []byte(fmt.Sprintf("%02d%s", i, strings.Repeat("x", 100*1024)))})
	}
	if err := q.Send(ctx, name, msgs...); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := map[string]bool{}
	deadline := time.Now().Add(15 * time.Second)
	for len(got) < 12 && time.Now().Before(deadline) {
		ds, err := q.Receive(ctx, name, 10, 30*time.Second, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			got[string(d.Body[:2])] = true
			if err := q.Delete(ctx, name, d.ReceiptHandle); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(got) != 12 {
		t.Errorf("received %d distinct messages, want 12", len(got))
	}
}

func TestFIFOSendNeedsGroup(t *testing.T) {
	t.Parallel()
	q := newQueue(t, sqs.Options{CreateMissing: true})
	err := q.Send(t.Context(), "nogroup.fifo", queue.Message{Body: []byte("x")})
	if err == nil || !strings.Contains(err.Error(), "GroupID") {
		t.Errorf("Send to FIFO without GroupID = %v, want an error naming GroupID", err)
	}
}

// A queue that does not exist is an error without CreateMissing.
func TestMissingQueue(t *testing.T) {
	t.Parallel()
	q := newQueue(t, sqs.Options{})
	_, err := q.Receive(t.Context(), "absent", 1, time.Second, 0)
	if err == nil || !strings.Contains(err.Error(), "absent") {
		t.Errorf("Receive(absent) = %v, want an error naming the queue", err)
	}
	if pipeline.IsTransient(err) {
		t.Errorf("a missing queue is not transient: %v", err)
	}
}

// DeadLetter (the Lambda path) finds the DLQ from the queue's ARN; ListDead shows the letter
// with the attributes it was sent with, and Redrive brings it back.
func TestDeadLetterByARN(t *testing.T) {
	t.Parallel()
	q := newQueue(t, sqs.Options{})
	ctx, name := t.Context(), "audit"
	if err := q.EnsureQueues(ctx, []string{name}, 2); err != nil {
		t.Fatalf("EnsureQueues: %v", err)
	}
	arn := queueARN(t, q, name)
	letter := queue.DeadLetter{MessageID: "m-1", Body: []byte(`{"not":"karma"}`), Reason: "poison: bad", ReceiveCount: 1}
	if err := q.DeadLetter(ctx, arn, letter, ""); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	dead := listDeadEventually(t, q, name, 1)
	if len(dead) != 1 {
		t.Fatalf("ListDead = %+v; want 1 letter", dead)
	}
	d := dead[0]
	if d.MessageID != "m-1" || d.Queue != name || d.Reason != "poison: bad" || d.ReceiveCount != 1 || string(d.Body) != `{"not":"karma"}` {
		t.Errorf("letter = %+v", d)
	}
	if n := redriveEventually(t, q, name, 1); n != 1 {
		t.Fatalf("Redrive moved %d, want 1", n)
	}
	if got := receiveOne(t, q, name, 30*time.Second); string(got.Body) != `{"not":"karma"}` {
		t.Errorf("redriven body = %q", got.Body)
	}
	if err := q.DeadLetter(ctx, "arn:aws:sns:us-east-1:123456789012:topic", letter, ""); err == nil {
		t.Error("DeadLetter with a non-SQS ARN succeeded")
	}
}

// Throttling and server errors are transient; the SDK's own retries come first.
func TestServerErrorsAreTransient(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		if strings.Contains(r.Header.Get("X-Amz-Target"), "GetQueueUrl") {
			fmt.Fprintf(w, `{"QueueUrl":"%s/123456789012/q"}`, "http://"+r.Host)
			return
		}
		w.Header().Set("x-amzn-query-error", "RequestThrottled;Sender")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"__type":"com.amazonaws.sqs#RequestThrottled","message":"slow down"}`)
	}))
	defer srv.Close()
	client := awssqs.New(awssqs.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	q := sqs.New(client, sqs.Options{SendRetry: 100 * time.Millisecond})
	_, err := q.Receive(t.Context(), "q", 1, time.Second, 0)
	if err == nil || !pipeline.IsTransient(err) {
		t.Errorf("Receive when throttled = %v, want a transient error", err)
	}
	if err := q.Send(t.Context(), "q", queue.Message{Body: []byte("x")}); err == nil || !pipeline.IsTransient(err) {
		t.Errorf("Send when throttled = %v, want a transient error", err)
	}

	srv500 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv500.Close()
	client = awssqs.New(awssqs.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv500.URL), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	if _, err := sqs.New(client, sqs.Options{}).Receive(t.Context(), "q", 1, time.Second, 0); err == nil || !pipeline.IsTransient(err) {
		t.Errorf("Receive on a 500 = %v, want a transient error", err)
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	client = awssqs.New(awssqs.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(closed.URL), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	if _, err := sqs.New(client, sqs.Options{}).Receive(t.Context(), "q", 1, time.Second, 0); err == nil || !pipeline.IsTransient(err) {
		t.Errorf("Receive with the connection refused = %v, want a transient error", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := sqs.New(client, sqs.Options{}).Receive(ctx, "q", 1, time.Second, 0); err == nil || pipeline.IsTransient(err) {
		t.Errorf("Receive with a cancelled context = %v, want a non-transient error", err)
	}
}

// --- helpers ---

func receiveOne(t *testing.T, q *sqs.Queue, name string, visibility time.Duration) queue.Delivery {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ds, err := q.Receive(t.Context(), name, 1, visibility, time.Second)
		if err != nil {
			t.Fatalf("Receive(%s): %v", name, err)
		}
		if len(ds) == 1 {
			return ds[0]
		}
	}
	t.Fatalf("Receive(%s): nothing", name)
	return queue.Delivery{}
}

// listDeadEventually lists name's dead letters until there are want of them or 10 s passed, and
// redriveEventually redrives until want moved: under a full test run moto's receives (long
// polling included) may answer with fewer messages than a queue holds, as SQS itself may. What
// a short answer leaves stays in the dead-letter queue for the next call.
func listDeadEventually(t *testing.T, q *sqs.Queue, name string, want int) []queue.DeadLetter {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		dead, err := q.ListDead(t.Context(), name)
		if err != nil {
			t.Fatalf("ListDead(%s): %v", name, err)
		}
		if len(dead) >= want || time.Now().After(deadline) {
			return dead
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func redriveEventually(t *testing.T, q *sqs.Queue, name string, want int) int {
	t.Helper()
	deadline, moved := time.Now().Add(10*time.Second), 0
	for {
		n, err := q.Redrive(t.Context(), name)
		if err != nil {
			t.Fatalf("Redrive(%s): %v", name, err)
		}
		if moved += n; moved >= want || time.Now().After(deadline) {
			return moved
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func queueURL(t *testing.T, q *sqs.Queue, name string) string {
	t.Helper()
	out, err := q.Client().GetQueueUrl(t.Context(), &awssqs.GetQueueUrlInput{QueueName: aws.String(q.QueueName(name))})
	if err != nil {
		t.Fatalf("GetQueueUrl(%s): %v", name, err)
	}
	return aws.ToString(out.QueueUrl)
}

func queueARN(t *testing.T, q *sqs.Queue, name string) string {
	t.Helper()
	out, err := q.Client().GetQueueAttributes(t.Context(), &awssqs.GetQueueAttributesInput{
		QueueUrl: aws.String(queueURL(t, q, name)), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatalf("GetQueueAttributes(%s): %v", name, err)
	}
	return out.Attributes["QueueArn"]
}

// Kill and Redrive on a FIFO queue keep the message's group.
func TestFIFOKillAndRedrive(t *testing.T) {
	t.Parallel()
	q := newQueue(t, sqs.Options{CreateMissing: true})
	ctx, name := t.Context(), "kill.fifo"
	if err := q.Send(ctx, name, queue.Message{Body: []byte("f"), GroupID: "dev/vpc/core", DedupID: "f-1"}); err != nil {
		t.Fatal(err)
	}
	d := receiveOne(t, q, name, 30*time.Second)
	if err := q.Kill(ctx, name, d.ReceiptHandle, "bad"); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if dead := listDeadEventually(t, q, name, 1); len(dead) != 1 || dead[0].Reason != "bad" || dead[0].MessageID != d.MessageID {
		t.Fatalf("ListDead = %+v", dead)
	}
	if n := redriveEventually(t, q, name, 1); n != 1 {
		t.Fatalf("Redrive moved %d, want 1", n)
	}
	url := queueURL(t, q, name)
	out, err := q.Client().ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: &url, WaitTimeSeconds: 1,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameMessageGroupId}})
	if err != nil || len(out.Messages) != 1 || aws.ToString(out.Messages[0].Body) != "f" || out.Messages[0].Attributes["MessageGroupId"] != "dev/vpc/core" {
		t.Fatalf("redriven = %+v, %v", out.Messages, err)
	}
}

// SQS (and moto, under load) may return one message more than once in a response, each copy with
// its own receipt handle: Receive hands it out once, with the last handle, which is the live one
// (the copy before it is stale: a delete with it is refused here).
func TestReceiveHandsOutAMessageReturnedTwiceOnce(t *testing.T) {
	t.Parallel()
	const md5x = "9dd4e461268c8034f5c8564e155c67a6" // of the body "x"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		switch target := r.Header.Get("X-Amz-Target"); {
		case strings.Contains(target, "GetQueueUrl"):
			fmt.Fprintf(w, `{"QueueUrl":"%s/123456789012/q"}`, "http://"+r.Host)
		case strings.Contains(target, "ReceiveMessage"):
			msg := func(receipt string) string {
				return `{"MessageId":"m1","ReceiptHandle":"` + receipt + `","Body":"x","MD5OfBody":"` + md5x + `","Attributes":{"ApproximateReceiveCount":"1","SentTimestamp":"1764892800000"}}`
			}
			fmt.Fprint(w, `{"Messages":[`+msg("r1")+`,`+msg("r2")+`,{"MessageId":"m2","ReceiptHandle":"r3","Body":"x","MD5OfBody":"`+md5x+`","Attributes":{"ApproximateReceiveCount":"1"}}]}`)
		default:
			fmt.Fprint(w, `{}`)
		}
	}))
	defer srv.Close()
	client := awssqs.New(awssqs.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	q := sqs.New(client, sqs.Options{})
	ds, err := q.Receive(t.Context(), "q", 10, time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].MessageID != "m1" || ds[0].ReceiptHandle != "r2" || ds[1].MessageID != "m2" {
		t.Fatalf("deliveries %+v, want m1 once (receipt r2) and m2", ds)
	}
	if err := q.Delete(t.Context(), "q", "r1"); !errors.Is(err, queue.ErrStaleReceipt) {
		t.Errorf("Delete with the first copy's receipt = %v, want ErrStaleReceipt", err)
	}
}
