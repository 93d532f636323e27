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
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/usekarma/karma/shared/queue"
	"github.com/usekarma/karma/shared/sqs"
)

// sizeLimitedSQS answers what DeadLetter asks (the queue's URL, its RedrivePolicy, the DLQ's
// URL) and takes SendMessage as SQS does: refused when the body and the attributes (names, data
// types, values) are over sqs.MaxMessageBytes. sent holds each message taken.
type sizeLimitedSQS struct {
	mu   sync.Mutex
	sent []sentMessage
}

type sentMessage struct {
	Body  string `json:"MessageBody"`
	Attrs map[string]struct {
		DataType    string
		StringValue string
	} `json:"MessageAttributes"`
}

func (f *sizeLimitedSQS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	b, _ := io.ReadAll(r.Body)
	switch op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS."); op {
	case "GetQueueUrl":
		var in struct{ QueueName string }
		_ = json.Unmarshal(b, &in)
		fmt.Fprintf(w, `{"QueueUrl":"http://%s/123456789012/%s"}`, r.Host, in.QueueName)
	case "GetQueueAttributes":
		policy, _ := json.Marshal(`{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:karma-dev-plan-dlq","maxReceiveCount":5}`)
		fmt.Fprintf(w, `{"Attributes":{"RedrivePolicy":%s}}`, policy)
	case "SendMessage":
		var m sentMessage
		_ = json.Unmarshal(b, &m)
		size := len(m.Body)
		for k, v := range m.Attrs {
			size += len(k) + len(v.DataType) + len(v.StringValue)
		}
		if size > sqs.MaxMessageBytes {
			w.Header().Set("x-amzn-query-error", "InvalidParameterValue;Sender")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"__type":"com.amazonaws.sqs#InvalidParameterValue","message":"One or more parameters are invalid. Reason: Message must be shorter than %d bytes."}`, sqs.MaxMessageBytes)
			return
		}
		f.mu.Lock()
		f.sent = append(f.sent, m)
		f.mu.Unlock()
		fmt.Fprint(w, `{"MessageId":"dlq-1"}`)
	default:
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"__type":"com.amazonaws.sqs#UnsupportedOperation","message":"%s"}`, op)
	}
}

// A message as large as its queue allowed is dead-lettered however long its reason: the reason
// (an attribute, counted with the body against SQS's limit) is cut to fit, and says so. Before,
// SQS refused the dead letter, and the function left the message to be retried, then moved by
// SQS's redrive with no reason at all.
func TestDeadLetterCutsAReasonTooLongForTheMessage(t *testing.T) {
	t.Parallel()
	fake := &sizeLimitedSQS{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	client := awssqs.New(awssqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
		DisableMessageChecksumValidation: true, Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	q := sqs.New(client, sqs.Options{Prefix: "karma-dev-"})
	source := "arn:aws:sqs:us-east-1:123456789012:karma-dev-plan"

	body := `{"payload":"` + strings.Repeat("x", sqs.MaxMessageBytes-2000) + `"}`
	reason := "payload does not match its type: " + strings.Repeat("é field missing; ", 500) // 9 KiB, two-byte characters
	if err := q.DeadLetter(t.Context(), source, queue.DeadLetter{MessageID: "m-big", Body: []byte(body), Reason: reason, ReceiveCount: 1, DeadAt: time.Now()}, ""); err != nil {
		t.Fatalf("DeadLetter of a message near the limit: %v", err)
	}
	// A short reason is kept whole.
	if err := q.DeadLetter(t.Context(), source, queue.DeadLetter{MessageID: "m-small", Body: []byte(`{}`), Reason: reason, ReceiveCount: 1}, ""); err != nil {
		t.Fatal(err)
	}
	if len(fake.sent) != 2 {
		t.Fatalf("sent %d dead letters, want 2", len(fake.sent))
	}
	big, small := fake.sent[0], fake.sent[1]
	got := big.Attrs["karma-reason"].StringValue
	if big.Body != body || !strings.HasPrefix(got, "payload does not match its type: é field missing") ||
		!strings.HasSuffix(got, "[cut: the dead letter is at SQS's message size limit]") || !utf8.ValidString(got) {
		t.Errorf("the large message's dead letter: body kept %v, reason %.80q…%q", big.Body == body, got, got[max(0, len(got)-60):])
	}
	if big.Attrs["karma-message-id"].StringValue != "m-big" {
		t.Errorf("the large message's dead letter names %q, want m-big", big.Attrs["karma-message-id"].StringValue)
	}
	if small.Attrs["karma-reason"].StringValue != reason {
		t.Errorf("a short message's reason was changed: %.80q", small.Attrs["karma-reason"].StringValue)
	}
}
