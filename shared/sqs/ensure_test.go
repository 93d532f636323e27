package sqs_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/usekarma/karma/shared/sqs"
)

// A stage queue keeps its messages 14 days, as terraform/queues.tf makes them: a stopped
// stage's messages (its function failing to start, its event source mapping disabled) are
// deleted by SQS when their retention ends, without passing through the DLQ, and SQS's
// default is 4 days. So EnsureQueues creates the queue with 14 days, and sets them on a queue
// that existed (created by an earlier version with the default).
func TestEnsureQueuesKeepsMessagesFourteenDays(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		existing bool
		name     string
	}{{false, "plan"}, {true, "plan"}, {false, "plan.fifo"}, {true, "plan.fifo"}} {
		existing := c.existing
		t.Run(map[bool]string{false: "created", true: "existing"}[existing]+"/"+c.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			attrs := map[string]map[string]string{} // queue name -> attributes created or set
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var in struct {
					QueueName, QueueUrl string
					Attributes          map[string]string
				}
				body, _ := io.ReadAll(r.Body)
				if err := json.Unmarshal(body, &in); err != nil {
					t.Errorf("request %s: %v", body, err)
				}
				name := in.QueueName
				if name == "" {
					name = in.QueueUrl[strings.LastIndexByte(in.QueueUrl, '/')+1:]
				}
				url := "http://" + r.Host + "/123456789012/" + name
				w.Header().Set("Content-Type", "application/x-amz-json-1.0")
				mu.Lock()
				defer mu.Unlock()
				switch target := r.Header.Get("X-Amz-Target"); {
				case strings.HasSuffix(target, ".CreateQueue"):
					if existing {
						w.WriteHeader(http.StatusBadRequest)
						fmt.Fprint(w, `{"__type":"com.amazonaws.sqs#QueueNameExists","message":"exists with other attributes"}`)
						return
					}
					attrs[name] = in.Attributes
					fmt.Fprintf(w, `{"QueueUrl":%q}`, url)
				case strings.HasSuffix(target, ".GetQueueUrl"):
					fmt.Fprintf(w, `{"QueueUrl":%q}`, url)
				case strings.HasSuffix(target, ".GetQueueAttributes"):
					fmt.Fprintf(w, `{"Attributes":{"QueueArn":"arn:aws:sqs:us-east-1:123456789012:%s"}}`, name)
				case strings.HasSuffix(target, ".SetQueueAttributes"):
					if _, ok := in.Attributes["FifoQueue"]; ok { // as SQS: only at creation
						w.WriteHeader(http.StatusBadRequest)
						fmt.Fprint(w, `{"__type":"com.amazonaws.sqs#InvalidAttributeName","message":"Unknown Attribute FifoQueue."}`)
						return
					}
					if attrs[name] == nil {
						attrs[name] = map[string]string{}
					}
					for k, v := range in.Attributes {
						attrs[name][k] = v
					}
					fmt.Fprint(w, `{}`)
				default:
					t.Errorf("unexpected call %s", target)
					fmt.Fprint(w, `{}`)
				}
			}))
			defer srv.Close()
			client := awssqs.New(awssqs.Options{
				Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
				Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
			})
			q := sqs.New(client, sqs.Options{Prefix: "karma-test-"})
			if err := q.EnsureQueues(t.Context(), []string{c.name}, 5); err != nil {
				t.Fatalf("EnsureQueues: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			full := "karma-test-" + c.name
			if got := attrs[full]["MessageRetentionPeriod"]; got != "1209600" {
				t.Errorf("queue %s: MessageRetentionPeriod %q, want 1209600 (14 days, as terraform/queues.tf); attributes %v", full, got, attrs[full])
			}
			dlq := sqs.DeadLetterQueueName(full)
			if got := attrs[dlq]["MessageRetentionPeriod"]; got != "1209600" {
				t.Errorf("queue %s: MessageRetentionPeriod %q, want 1209600; attributes %v", dlq, got, attrs[dlq])
			}
		})
	}
}
