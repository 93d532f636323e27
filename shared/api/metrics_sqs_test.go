package api

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/usekarma/karma/shared/queue"
	"github.com/usekarma/karma/shared/sqs"
)

// On SQS (moto), the queue gauges come from the queues' own counts: depth is what a queue holds
// (waiting and in flight), in flight apart, and the dead-letter queue's messages; a queue that
// cannot be read makes its gauges errors, not zeros.
func TestQueueMetricsOnSQS(t *testing.T) {
	ep := os.Getenv("KARMA_TEST_MOTO_ENDPOINT")
	if ep == "" {
		t.Skip("needs KARMA_TEST_MOTO_ENDPOINT (make test starts moto)")
	}
	ctx := t.Context()
	q, err := sqs.NewFromConfig(ctx, ep, sqs.Options{Prefix: fmt.Sprintf("km%06x-", rand.Uint32()&0xffffff)},
		config.WithRegion("us-east-1"), config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		config.WithSharedConfigFiles([]string{}), config.WithSharedCredentialsFiles([]string{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.EnsureQueues(ctx, []string{"plan", "apply"}, 5); err != nil {
		t.Fatal(err)
	}
	if err := q.Send(ctx, "plan", queue.Message{Body: []byte("a")}, queue.Message{Body: []byte("b")}, queue.Message{Body: []byte("c")}); err != nil {
		t.Fatal(err)
	}
	// SQS may answer a receive with fewer messages than it holds: receive until two are in flight.
	var ds []queue.Delivery
	for deadline := time.Now().Add(20 * time.Second); len(ds) < 2; {
		got, err := q.Receive(ctx, "plan", 2-len(ds), time.Minute, 0)
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("receive: %d so far, %v", len(ds), err)
		}
		ds = append(ds, got...)
	}
	if err := q.Kill(ctx, "plan", ds[0].ReceiptHandle, "poison"); err != nil {
		t.Fatal(err)
	}
	scrape := func(m *Metrics) string {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		b, _ := io.ReadAll(rec.Body)
		return string(b)
	}
	body := scrape(NewMetrics(q, []string{"plan", "apply"}))
	for _, want := range []string{
		`karma_queue_depth{queue="plan"} 2`, `karma_queue_in_flight{queue="plan"} 1`, `karma_dead_letters{queue="plan"} 1`,
		`karma_queue_depth{queue="apply"} 0`, `karma_queue_in_flight{queue="apply"} 0`, `karma_dead_letters{queue="apply"} 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %s:\n%s", want, grep([]byte(body), "karma_"))
		}
	}
	// A queue that does not exist: no gauge of it, an error instead (promhttp reports it).
	body = scrape(NewMetrics(q, []string{"apply", "missing"}))
	if strings.Contains(body, `queue="missing"`) || !strings.Contains(body, `karma_queue_depth{queue="apply"} 0`) {
		t.Errorf("with a missing queue:\n%s", grep([]byte(body), "karma_"))
	}
}
