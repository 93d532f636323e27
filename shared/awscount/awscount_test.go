package awscount

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	awseb "github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
)

// stubHTTP answers every request with the next canned response (status, JSON body), and
// records the requests' targets (X-Amz-Target).
type stubHTTP struct {
	mu      sync.Mutex
	answers []stubAnswer
	targets []string
}

type stubAnswer struct {
	status int
	body   string
}

func (s *stubHTTP) Do(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.targets = append(s.targets, r.Header.Get("X-Amz-Target"))
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
	}
	if len(s.answers) == 0 {
		return nil, fmt.Errorf("stub: no answer left for %s", r.Header.Get("X-Amz-Target"))
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	return &http.Response{StatusCode: a.status, Header: http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
		Body: io.NopCloser(strings.NewReader(a.body)), Request: r}, nil
}

func stubConfig(h *stubHTTP) aws.Config {
	return aws.Config{Region: "us-east-1", HTTPClient: h,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			})
		}}
}

// Every attempt is a request: a receive that failed with a 500 and was retried counts twice,
// and an empty receive is told apart from one that returned messages.
func TestMiddlewareCountsAttemptsAndEmptyReceives(t *testing.T) {
	h := &stubHTTP{answers: []stubAnswer{
		{500, `{"__type":"InternalError","message":"try again"}`},
		{200, `{}`},
		{200, `{"Messages":[{"MessageId":"m1","ReceiptHandle":"r1","Body":"x"}]}`},
	}}
	c := New(Options{})
	client := awssqs.NewFromConfig(c.Instrument(stubConfig(h)), func(o *awssqs.Options) { o.BaseEndpoint = aws.String("http://sqs.invalid") })
	for range 2 {
		if _, err := client.ReceiveMessage(t.Context(), &awssqs.ReceiveMessageInput{QueueUrl: aws.String("http://sqs.invalid/0/q")}); err != nil {
			t.Fatal(err)
		}
	}
	got := c.Snapshot()
	want := Counts{{SQS, "ReceiveMessage"}: 2, {SQS, EmptyReceive}: 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("counts = %v, want %v (HTTP requests: %q)", got, want, h.targets)
	}
	if n := got.Service(SQS); n != float64(len(h.targets)) {
		t.Errorf("SQS requests counted %v, HTTP requests sent %d", n, len(h.targets))
	}
}

// PutEvents is one request and as many events as entries (EventBridge bills the events).
func TestMiddlewareCountsEvents(t *testing.T) {
	h := &stubHTTP{answers: []stubAnswer{{200, `{"FailedEntryCount":0,"Entries":[{"EventId":"1"},{"EventId":"2"},{"EventId":"3"}]}`}}}
	c := New(Options{})
	client := awseb.NewFromConfig(c.Instrument(stubConfig(h)), func(o *awseb.Options) { o.BaseEndpoint = aws.String("http://events.invalid") })
	entry := ebtypes.PutEventsRequestEntry{Source: aws.String("karma"), DetailType: aws.String("t"), Detail: aws.String("{}")}
	if _, err := client.PutEvents(t.Context(), &awseb.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{entry, entry, entry}}); err != nil {
		t.Fatal(err)
	}
	got := c.Snapshot()
	if got[Key{EventBridge, "PutEvents"}] != 1 || got[Key{EventBridge, PutEventsEntries}] != 3 || got.Service(EventBridge) != 1 {
		t.Errorf("counts = %v, want 1 PutEvents request carrying 3 events", got)
	}
}

// Instrument does not change the configuration it is given: clients built from the original
// count nothing.
func TestInstrumentCopies(t *testing.T) {
	h := &stubHTTP{answers: []stubAnswer{{200, `{}`}}}
	cfg := stubConfig(h)
	c := New(Options{})
	_ = c.Instrument(cfg)
	if len(cfg.APIOptions) != 0 {
		t.Fatalf("Instrument changed the original's APIOptions: %d", len(cfg.APIOptions))
	}
	client := awssqs.NewFromConfig(cfg, func(o *awssqs.Options) { o.BaseEndpoint = aws.String("http://sqs.invalid") })
	if _, err := client.ReceiveMessage(t.Context(), &awssqs.ReceiveMessageInput{QueueUrl: aws.String("http://sqs.invalid/0/q")}); err != nil {
		t.Fatal(err)
	}
	if got := c.Snapshot(); len(got) != 0 {
		t.Errorf("a client of the original configuration was counted: %v", got)
	}
}

// With Capacity, DynamoDB (Local) reports what each request consumed: writes as write units,
// reads as read units.
func TestCapacityOnDynamoDBLocal(t *testing.T) {
	ep := os.Getenv("KARMA_TEST_DYNAMODB")
	if ep == "" {
		t.Skip("needs KARMA_TEST_DYNAMODB (make test starts DynamoDB Local)")
	}
	ctx := t.Context()
	c := New(Options{Capacity: true})
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	db := awsdynamodb.NewFromConfig(c.Instrument(cfg), func(o *awsdynamodb.Options) { o.BaseEndpoint = aws.String(ep) })
	table := fmt.Sprintf("awscount-%d", time.Now().UnixNano())
	if _, err := db.CreateTable(ctx, &awsdynamodb.CreateTableInput{TableName: aws.String(table), BillingMode: ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("g"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema: []ddbtypes.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: ddbtypes.KeyTypeHash}},
		GlobalSecondaryIndexes: []ddbtypes.GlobalSecondaryIndex{{IndexName: aws.String("by-g"),
			KeySchema:  []ddbtypes.KeySchemaElement{{AttributeName: aws.String("g"), KeyType: ddbtypes.KeyTypeHash}},
			Projection: &ddbtypes.Projection{ProjectionType: ddbtypes.ProjectionTypeAll}}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.DeleteTable(context.Background(), &awsdynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	before := c.Snapshot()
	item := map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "a"},
		"v": &ddbtypes.AttributeValueMemberS{Value: strings.Repeat("x", 1500)}} // between 1 and 2 KB: 2 write units
	if _, err := db.PutItem(ctx, &awsdynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
		t.Fatal(err)
	}
	indexed := map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "b"}, "g": &ddbtypes.AttributeValueMemberS{Value: "x"},
		"v": &ddbtypes.AttributeValueMemberS{Value: strings.Repeat("x", 1500)}} // copied into the index: 2 more
	if _, err := db.PutItem(ctx, &awsdynamodb.PutItemInput{TableName: aws.String(table), Item: indexed}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetItem(ctx, &awsdynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Key: map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "a"}}}); err != nil {
		t.Fatal(err)
	}
	got := c.Snapshot().Sub(before)
	if got[Key{DynamoDB, "PutItem"}] != 2 || got[Key{DynamoDB, "GetItem"}] != 1 {
		t.Fatalf("requests = %v, want two PutItem and one GetItem", got)
	}
	if w, r := got[Key{DynamoDB, WriteUnits}], got[Key{DynamoDB, ReadUnits}]; w != 6 || r != 1 {
		t.Errorf("capacity: %v write units (want 2 + 2 for two 1.5 KB items, 2 for the index's copy of one), %v read units (want 1 for a strongly consistent read under 4 KB)", w, r)
	}
	if w := got[Key{DynamoDB, IndexWriteUnits}]; w != 2 {
		t.Errorf("capacity of the index: %v write units, want 2", w)
	}
}

func TestCountsArithmetic(t *testing.T) {
	then := Counts{{SQS, "SendMessage"}: 2, {DynamoDB, "PutItem"}: 1}
	now := Counts{{SQS, "SendMessage"}: 6, {DynamoDB, "PutItem"}: 1, {DynamoDB, WriteUnits}: 8, {Lambda, "Invoke plan"}: 2}
	d := now.Sub(then)
	if _, ok := d[Key{DynamoDB, "PutItem"}]; ok {
		t.Errorf("Sub kept a zero count: %v", d)
	}
	per := d.Per(2)
	if per[Key{SQS, "SendMessage"}] != 2 || per[Key{DynamoDB, WriteUnits}] != 4 || per[Key{Lambda, "Invoke plan"}] != 1 {
		t.Errorf("Per(2) = %v", per)
	}
	if per.Service(DynamoDB) != 0 {
		t.Errorf("units counted as requests: %v", per.Service(DynamoDB))
	}
	table := per.Table()
	for _, want := range []string{"| DynamoDB | write request units | 4 |", "| Lambda | **requests** | **1** |", "| SQS | SendMessage | 2 |"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if Format(2.5) != "2.5" || Format(3) != "3" || Format(0.126) != "0.13" {
		t.Errorf("Format: %s %s %s", Format(2.5), Format(3), Format(0.126))
	}
}
